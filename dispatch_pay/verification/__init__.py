"""Verifier reports, bound to the exact text they checked, and the publish gate."""
