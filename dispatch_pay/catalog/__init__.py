"""Articles as readers see them: listings, teasers, the read gate, feeds."""
