"""CSRF: every state-changing HTML route, and the JSON API used with the login session."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask, url_for
from flask.testing import FlaskClient
from werkzeug.routing import IntegerConverter

from models import Article
from tests.support.factories import bearer, make_article, make_token, make_user
from tests.support.web import csrf_token_from, json_error, table_counts
from tests.support.web import log_in as login

SAFE = {"GET", "HEAD", "OPTIONS"}
# Machine endpoints with their own authentication: bearer tokens (or the session plus
# the X-CSRFToken header, tested below) and Stripe's signature.
NOT_FORMS = ("/api/", "/webhooks/stripe", "/static/")


def html_form_routes(app: Flask, article: Article) -> list[tuple[str, str]]:
    """(method, url) for every non-GET route outside the API, with real URL arguments."""
    found: list[tuple[str, str]] = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(NOT_FORMS):
            continue
        args: dict[str, Any] = {}
        for name, converter in rule._converters.items():
            args[name] = 1 if isinstance(converter, IntegerConverter) else article.slug
        for method in sorted((rule.methods or set()) - SAFE):
            with app.test_request_context():
                found.append((method, url_for(rule.endpoint, **args)))
    return found


def test_the_enumeration_finds_the_known_forms(app: Flask, client: FlaskClient) -> None:
    routes = html_form_routes(app, make_article())
    paths = {path for _method, path in routes}
    assert {"/signup", "/login", "/logout"} <= paths
    assert any(p.endswith("/buy") for p in paths)


@pytest.mark.parametrize("token", [None, "", "forged-token"])
def test_every_html_form_refuses_a_missing_or_wrong_token(
    app: Flask, client: FlaskClient, token: str | None
) -> None:
    user = make_user()
    article = make_article()
    login(client, user.email)
    before = table_counts()
    for method, path in html_form_routes(app, article):
        data = {"email": "new@example.com", "password": "long enough password"}
        if token is not None:
            data["csrf_token"] = token
        response = client.open(path, method=method, data=data)
        assert response.status_code == 400, (method, path, response.status_code)
        assert response.mimetype == "text/html"
        page = response.get_data(as_text=True)
        assert "was not sent by this site" in page, path
        assert table_counts() == before, f"{method} {path} changed the database"
    # Still logged in: the refused logout did nothing either.
    assert client.get("/wallet").status_code == 200


def test_a_token_from_another_session_is_refused(app: Flask, client: FlaskClient) -> None:
    other = app.test_client()
    stolen = csrf_token_from(other, "/login")
    response = client.post(
        "/signup",
        data={"email": "x@example.com", "password": "long enough password", "csrf_token": stolen},
    )
    assert response.status_code == 400
    assert table_counts()["users"] == 0


def test_the_forms_work_with_the_token(client: FlaskClient) -> None:
    token = csrf_token_from(client, "/signup")
    response = client.post(
        "/signup",
        data={"email": "new@example.com", "password": "long enough password", "csrf_token": token},
    )
    assert response.status_code == 302
    response = client.post("/logout", data={"csrf_token": csrf_token_from(client, "/")})
    assert response.status_code == 302
    assert client.get("/wallet").status_code == 302  # logged out: sent to the login page


def test_session_api_calls_need_the_csrf_header(client: FlaskClient) -> None:
    user = make_user()
    article = make_article(price=39)
    login(client, user.email)
    before = table_counts()
    for path, body in (
        (f"/api/v1/articles/{article.slug}/purchase", None),
        ("/api/v1/wallet/topups", {"amount": 500, "currency": "usd"}),
        ("/api/v1/tokens", {"email": user.email, "password": "whatever"}),
        ("/api/v1/purchases/1/refund", None),
    ):
        for headers in ({}, {"X-CSRFToken": "forged"}):
            response = client.post(path, json=body, headers=headers)
            assert response.status_code == 403, (path, response.status_code)
            assert json_error(response)["code"] == "csrf_failed"
    response = client.delete("/api/v1/tokens/1")
    assert response.status_code == 403
    assert table_counts() == before
    # Reads need no token, and the real token is accepted.
    assert client.get("/api/v1/wallet").status_code == 200
    token = csrf_token_from(client, "/")
    response = client.post(
        f"/api/v1/articles/{article.slug}/purchase", headers={"X-CSRFToken": token}
    )
    assert response.status_code == 402  # past CSRF: the empty wallet is the answer


def test_bearer_tokens_need_no_csrf_header(client: FlaskClient) -> None:
    user = make_user()
    article = make_article()
    response = client.post(
        f"/api/v1/articles/{article.slug}/purchase", headers=bearer(make_token(user))
    )
    assert response.status_code == 402
    assert json_error(response)["code"] == "insufficient_funds"
