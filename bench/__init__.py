"""Benchmarks: seed a database at scale, then compare the app with a bare Flask app."""
