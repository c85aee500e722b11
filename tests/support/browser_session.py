"""Copying a browser's session cookie into another client (a stolen or kept cookie)."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

COOKIE_DOMAIN = "dispatch.test"  # the test configuration's SERVER_NAME


def session_cookie(client: FlaskClient) -> str:
    cookie = client.get_cookie("session", domain=COOKIE_DOMAIN)
    assert cookie is not None, "the client has no session cookie"
    return cookie.value


def client_with_cookie(app: Flask, value: str) -> FlaskClient:
    copy = app.test_client()
    copy.set_cookie("session", value, domain=COOKIE_DOMAIN)
    return copy
