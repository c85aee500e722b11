"""The baseline: a bare hello-world Flask app, served by the same gunicorn command."""

from __future__ import annotations

from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello() -> str:
    return "Hello, World!"
