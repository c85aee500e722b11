"""Talking to the app as a browser or an API client does: CSRF tokens, logging in, error shapes."""

from __future__ import annotations

import html
import re
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from models import User, db
from models.base import Base
from tests.support.factories import PASSWORD

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def csrf_token_from(client: FlaskClient, path: str = "/") -> str:
    """The CSRF token a browser would find on a page of this site."""
    html = client.get(path).get_data(as_text=True)
    match = CSRF_META.search(html)
    if match is None:  # anonymous public pages are cached and carry no token; /login does
        match = CSRF_META.search(client.get("/login").get_data(as_text=True))
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def log_in(client: FlaskClient, who: User | str, password: str = PASSWORD) -> str:
    """Log in through the HTML form, as a browser does (with the page's CSRF token).

    `who` is a user or an email. Returns the logged-in session's CSRF token.
    """
    email = who if isinstance(who, str) else who.email
    token = csrf_token_from(client, "/login")
    response = client.post(
        "/login", data={"email": email, "password": password, "csrf_token": token}
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return csrf_token_from(client, "/")


def assert_error(response: TestResponse, status: int, code: str | None = None) -> dict[str, Any]:
    """The contract's error shape: {"error": {"code", "message", "fields"?}}."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    body = response.get_json(silent=True)
    assert isinstance(body, dict), response.get_data(as_text=True)[:300]
    error = body.get("error")
    assert isinstance(error, dict), body
    assert isinstance(error.get("code"), str) and re.fullmatch(r"[a-z][a-z0-9_]*", error["code"])
    assert isinstance(error.get("message"), str) and error["message"]
    assert isinstance(error.get("fields"), dict), body  # always present, {} when no field
    if code is not None:
        assert error["code"] == code, body
    return body


def json_error(response: TestResponse) -> dict[str, Any]:
    """The `error` object of a response in the contract's error shape, whatever its status."""
    return dict(assert_error(response, response.status_code)["error"])


def table_counts() -> dict[str, int]:
    """Rows per table: equal before and after means a refused request changed nothing."""
    db.session.expire_all()
    return {
        table.name: int(db.session.scalar(select(func.count()).select_from(table)) or 0)
        for table in Base.metadata.sorted_tables
    }


# Namespaces in XML and JSON-LD, not links of this site.
NAMESPACES = ("schema.org", "sitemaps.org", "w3.org")


def public_page_paths(slug: str) -> list[str]:
    """Every page the public cache may store, for an article's slug."""
    return [
        f"/articles/{slug}",
        f"/api/v1/articles/{slug}",
        "/api/v1/articles",
        "/feed.xml",
        "/sitemap.xml",
        "/",
        "/verification",
    ]


def links_outside(text: str, origin: str) -> list[str]:
    """Absolute URLs in a page that do not lead to `origin` (namespaces aside).

    Character references are read first: `"https://site&#34;` is the URL `https://site`
    followed by a quote (as in the program printed on /verification)."""
    urls = re.findall(r"https?://[^\s\"'<>]+", html.unescape(text))
    return [
        u
        for u in urls
        if u != origin and not u.startswith(origin + "/") and not any(ns in u for ns in NAMESPACES)
    ]


def answered_before_flask(caplog: Any, response: TestResponse, cache: str) -> bool:
    """`response` was answered before Flask by the layer that logs `cache` (its request
    line says so; Flask's own lines take their request id from `g`, not their fields)."""
    rid = response.headers["X-Request-ID"]
    for record in caplog.records:
        fields = getattr(record, "fields", None) or {}
        if fields.get("request_id") == rid:
            return bool(fields.get("cache") == cache)
    return False
