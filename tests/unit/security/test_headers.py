"""Security headers on every response, session cookie flags, proxy headers, no inline script."""

from __future__ import annotations

import re
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from dispatch_pay import create_app
from dispatch_pay.security import content_security_policy
from tests.conftest import test_config as app_config
from tests.support.factories import PASSWORD, make_article, make_user
from tests.support.html import executable_problems
from tests.support.web import csrf_token_from
from tests.support.web import log_in as login

ROOT = Path(__file__).resolve().parents[3]


def csp(response: Any) -> dict[str, list[str]]:
    header = response.headers["Content-Security-Policy"]
    directives: dict[str, list[str]] = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def sample_paths(client: FlaskClient) -> list[tuple[str, str]]:
    article = make_article()
    return [
        ("GET", "/"),
        ("GET", f"/articles/{article.slug}"),
        ("GET", "/articles/no-such-dispatch"),
        ("GET", "/login"),
        ("GET", "/feed.xml"),
        ("GET", "/sitemap.xml"),
        ("GET", "/healthz"),
        ("GET", "/static/style.css"),
        ("GET", "/api/v1/articles"),
        ("GET", f"/api/v1/articles/{article.slug}"),
        ("POST", "/api/v1/tokens"),
        ("POST", "/webhooks/stripe"),
        ("POST", "/login"),  # CSRF refusal
    ]


def test_every_response_carries_the_security_headers(client: FlaskClient) -> None:
    for method, path in sample_paths(client):
        response = client.open(path, method=method)
        headers = response.headers
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin", path
        assert headers["X-Frame-Options"] == "DENY", path
        policy = csp(response)
        assert policy["frame-ancestors"] == ["'none'"], path
        assert "Strict-Transport-Security" not in headers, "HSTS only in production"
        response.close()  # the static file's handle


def test_csp_allows_only_this_site_and_stripe_js() -> None:
    policy = content_security_policy(None)
    directives = {p.split()[0]: p.split()[1:] for p in policy.split("; ")}
    assert directives["default-src"] == ["'self'"]
    assert directives["script-src"] == [
        "'self'",
        "https://js.stripe.com",
        "https://*.js.stripe.com",
    ]
    assert directives["connect-src"] == ["'self'", "https://api.stripe.com"]
    assert "https://hooks.stripe.com" in directives["frame-src"]  # 3-D Secure challenges
    assert directives["object-src"] == ["'none'"]
    assert directives["base-uri"] == ["'none'"]
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
    assert "*" not in [v for values in directives.values() for v in values]


def test_csp_follows_localstripe_origin(app: Flask, db_connection: Any) -> None:
    local = create_app(
        app_config(app.config["DATABASE_URL"], STRIPE_API_BASE="http://127.0.0.1:8420"),
        configure_database=False,
    )
    with local.app_context():
        response = local.test_client().get("/login")
    policy = csp(response)
    assert policy["script-src"] == ["'self'", "http://127.0.0.1:8420"]
    assert policy["connect-src"] == ["'self'", "http://127.0.0.1:8420"]
    assert "https://js.stripe.com" not in response.headers["Content-Security-Policy"]


def _set_cookie(response: Any, name: str) -> str:
    for header in response.headers.getlist("Set-Cookie"):
        if header.startswith(f"{name}="):
            return str(header)
    raise AssertionError(f"no {name} cookie set")


def _flags(header: str) -> set[str]:
    return {part.strip().split("=")[0].lower() for part in header.split(";")[1:]}


def test_session_cookie_is_httponly_and_samesite_lax(client: FlaskClient) -> None:
    user = make_user()
    response = _login_response(client, user.email)
    assert response.status_code == 302
    header = _set_cookie(response, "session")
    flags = _flags(header)
    assert "httponly" in flags
    assert re.search(r";\s*SameSite=Lax", header)
    assert "secure" not in flags  # development serves plain http


def _login_response(client: FlaskClient, email: str) -> Any:
    token = csrf_token_from(client, "/login")
    return client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token})


@pytest.fixture()
def production_app(app: Flask) -> Flask:
    return create_app(
        app_config(app.config["DATABASE_URL"], PRODUCTION=True), configure_database=False
    )


def test_production_cookie_is_secure_and_hsts_is_sent(
    production_app: Flask, db_connection: Any
) -> None:
    assert production_app.config["SESSION_COOKIE_SECURE"] is True
    assert production_app.config["REMEMBER_COOKIE_SECURE"] is True
    with production_app.app_context():
        user = make_user()
        client = production_app.test_client()
        client.environ_base["wsgi.url_scheme"] = "https"
        response = _login_response(client, user.email)
    assert response.status_code == 302
    header = _set_cookie(response, "session")
    assert {"secure", "httponly", "samesite"} <= _flags(header)
    assert "SameSite=Lax" in header
    cookie = SimpleCookie()
    cookie.load(header)
    assert cookie["session"]["secure"]
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_production_refuses_to_start_without_secret_key(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dispatch_pay.config import ConfigurationError

    monkeypatch.delenv("SECRET_KEY", raising=False)
    config = app_config(app.config["DATABASE_URL"], PRODUCTION=True)
    config.pop("SECRET_KEY")
    with pytest.raises(ConfigurationError):
        create_app(config, configure_database=False)


def test_trusted_proxy_headers_set_client_address_and_scheme(
    app: Flask, db_connection: Any
) -> None:
    proxied = create_app(
        app_config(app.config["DATABASE_URL"], TRUSTED_PROXIES=1), configure_database=False
    )
    seen: dict[str, Any] = {}

    @proxied.get("/_probe")
    def _probe() -> str:
        from flask import request, url_for

        seen["addr"] = request.remote_addr
        seen["url"] = url_for("catalog.front_page", _external=True)
        return "ok"

    with proxied.app_context():
        proxied.test_client().get(
            "/_probe",
            headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"},
        )
    assert seen["addr"] == "203.0.113.9"
    assert seen["url"].startswith("https://")


def test_untrusted_proxy_headers_are_ignored(client: FlaskClient) -> None:
    from flask import request

    response = client.get("/healthz", headers={"X-Forwarded-For": "203.0.113.9"})
    assert response.status_code == 200
    with client.application.test_request_context(
        "/", headers={"X-Forwarded-For": "203.0.113.9"}, environ_base={"REMOTE_ADDR": "10.0.0.1"}
    ):
        assert request.remote_addr == "10.0.0.1"


def test_templates_and_static_have_no_inline_script() -> None:
    for path in sorted((ROOT / "templates").glob("*.html")):
        text = path.read_text()
        for match in re.finditer(r"<script\b([^>]*)>", text):
            attrs = match.group(1)
            assert "src=" in attrs or 'type="application/ld+json"' in attrs, (
                f"{path.name}: inline script {match.group(0)}"
            )
        assert not re.search(r"\son[a-z]+\s*=", text, re.IGNORECASE), f"{path.name}: handler"
        assert not re.search(r"(href|src|action)\s*=\s*\"?\s*javascript:", text, re.I), path.name
    for path in sorted((ROOT / "static").glob("*.js")):
        text = path.read_text()
        assert not re.search(r"\beval\s*\(|new Function\s*\(", text), path.name
        assert ".innerHTML" not in text, path.name


def test_rendered_pages_have_no_inline_script(client: FlaskClient) -> None:
    user = make_user()
    article = make_article()
    login(client, user.email)
    for path in ("/", f"/articles/{article.slug}", "/wallet", "/library", "/verification"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert executable_problems(response.get_data(as_text=True)) == [], path
