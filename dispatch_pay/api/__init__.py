"""JSON API wiring: every capability's API blueprint is made here, under /api/v1."""
