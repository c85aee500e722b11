"""Readers and publishers: sign-up, login sessions, API tokens and roles."""
