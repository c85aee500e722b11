"""Writing, pricing and publishing articles (the pipeline's API and, later, the dashboard)."""
