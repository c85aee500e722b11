"""Accounts: sign-up, passwords, login sessions, CSRF on every form, safe `next`
redirects, API tokens and the create-publisher command."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import IntegerConverter
from werkzeug.security import check_password_hash

from dispatch_pay.accounts.schemas import PASSWORD_MIN_LENGTH
from dispatch_pay.accounts.services import find_user_by_email, register_user
from dispatch_pay.config import load_config
from dispatch_pay.errors import DomainError
from models import ApiToken, User, db
from tests.support.factories import PASSWORD, bearer, make_article, make_token, make_user
from tests.support.web import assert_error, csrf_token_from, log_in


def logged_in_as(client: FlaskClient) -> str | None:
    me = client.get("/api/v1/me")
    return me.get_json()["user"]["email"] if me.status_code == 200 else None


# ---- sign-up and passwords -----------------------------------------------------------


def test_email_unique_regardless_of_case(client: FlaskClient) -> None:
    register_user("Mixed.Case@Example.com", PASSWORD)
    db.session.commit()
    assert find_user_by_email("mixed.case@example.com") is not None
    assert find_user_by_email("  MIXED.CASE@EXAMPLE.COM ") is not None
    with pytest.raises(DomainError) as caught:
        register_user("MIXED.case@example.COM", PASSWORD)
    assert caught.value.code == "email_taken"
    db.session.rollback()
    assert db.session.query(User).count() == 1


def test_signup_form(client: FlaskClient) -> None:
    token = csrf_token_from(client, "/signup")
    response = client.post(
        "/signup",
        data={"email": "Form@Example.com", "password": PASSWORD, "csrf_token": token},
    )
    assert response.status_code == 302
    assert logged_in_as(client) == "form@example.com"


def test_signup_form_refuses_taken_email_and_short_password(client: FlaskClient) -> None:
    make_user("taken@example.com")
    token = csrf_token_from(client, "/signup")
    taken = client.post(
        "/signup", data={"email": "TAKEN@example.com", "password": PASSWORD, "csrf_token": token}
    )
    assert taken.status_code == 409
    assert "already exists" in taken.get_data(as_text=True)
    short = client.post(
        "/signup",
        data={
            "email": "new@example.com",
            "password": "x" * (PASSWORD_MIN_LENGTH - 1),
            "csrf_token": token,
        },
    )
    assert short.status_code == 422
    assert f"{PASSWORD_MIN_LENGTH}" in short.get_data(as_text=True)
    assert db.session.query(User).count() == 1
    assert logged_in_as(client) is None


def test_password_minimum_length_in_the_api(client: FlaskClient) -> None:
    short = "x" * (PASSWORD_MIN_LENGTH - 1)
    response = client.post("/api/v1/readers", json={"email": "a@example.com", "password": short})
    assert "password" in assert_error(response, 422, "invalid_fields")["error"]["fields"]
    exact = "x" * PASSWORD_MIN_LENGTH
    ok = client.post("/api/v1/readers", json={"email": "a@example.com", "password": exact})
    assert ok.status_code == 201


def test_passwords_are_hashed_with_scrypt(client: FlaskClient, tmp_path: Path) -> None:
    user = make_user("hash@example.com", password="a long secret phrase")
    assert "a long secret phrase" not in user.password_hash
    assert user.password_hash.startswith("scrypt:")
    assert check_password_hash(user.password_hash, "a long secret phrase")
    other = make_user("hash2@example.com", password="a long secret phrase")
    assert other.password_hash != user.password_hash  # salted
    # Production uses scrypt with werkzeug's default (strong) parameters.
    production = load_config(tmp_path, {"SECRET_KEY": "x", "PRODUCTION": True})
    assert production["PASSWORD_HASH_METHOD"] == "scrypt"


# ---- login and logout through the forms ----------------------------------------------


def test_csrf_is_on_in_the_test_configuration(app: Flask) -> None:
    assert app.config.get("WTF_CSRF_ENABLED", True) is True
    assert app.config.get("WTF_CSRF_CHECK_DEFAULT", True) is True


def test_login_and_logout_forms(client: FlaskClient) -> None:
    make_user("login@example.com")
    page = client.get("/login").get_data(as_text=True)
    for name in ("email", "password", "csrf_token"):
        assert f'name="{name}"' in page
    token = csrf_token_from(client, "/login")
    wrong = client.post(
        "/login", data={"email": "login@example.com", "password": "wrong", "csrf_token": token}
    )
    assert wrong.status_code == 401
    assert logged_in_as(client) is None

    log_in(client, "LOGIN@example.com")
    assert logged_in_as(client) == "login@example.com"
    assert "Log out" in client.get("/").get_data(as_text=True)

    # GET /logout only shows a form: a link or an image cannot log anyone out.
    assert client.get("/logout").status_code == 200
    assert logged_in_as(client) == "login@example.com"
    no_token = client.post("/logout")
    assert no_token.status_code == 400
    assert logged_in_as(client) == "login@example.com"
    out = client.post("/logout", data={"csrf_token": csrf_token_from(client)})
    assert out.status_code == 302
    assert logged_in_as(client) is None


def form_post_routes(app: Flask) -> list[str]:
    """Every browser form target: the POST routes outside the JSON API and webhooks."""
    adapter = app.url_map.bind("dispatch.test")
    urls = []
    for rule in app.url_map.iter_rules():
        if not rule.methods or "POST" not in rule.methods:
            continue
        if rule.rule.startswith(("/api/", "/webhooks/")):
            continue
        values = {
            name: 1 if isinstance(rule._converters[name], IntegerConverter) else "x"
            for name in rule.arguments
        }
        urls.append(adapter.build(rule.endpoint, values, method="POST"))
    return urls


def test_csrf_enforced_on_every_form(app: Flask, client: FlaskClient) -> None:
    reader = make_user("csrf@example.com")
    article = make_article()
    urls = form_post_routes(app)
    assert {"/signup", "/login", "/logout", "/articles/x/buy"} <= set(urls)
    urls.append(f"/articles/{article.slug}/buy")
    log_in(client, reader.email)
    users_before = db.session.query(User).count()
    for url in urls:
        for data in (
            {},
            {"csrf_token": "forged"},
            {"email": "e@example.com", "password": PASSWORD},
        ):
            response = client.post(url, data=data)
            assert response.status_code == 400, (url, data, response.status_code)
            assert "expired" in response.get_data(as_text=True)
    assert logged_in_as(client) == reader.email
    assert db.session.query(User).count() == users_before
    # A token from another session is refused too.
    other = app.test_client()
    foreign = csrf_token_from(other, "/login")
    response = client.post("/logout", data={"csrf_token": foreign})
    assert response.status_code == 400
    assert logged_in_as(client) == reader.email


def test_forms_without_a_session_need_csrf_too(client: FlaskClient) -> None:
    make_user("nosession@example.com")
    response = client.post("/login", data={"email": "nosession@example.com", "password": PASSWORD})
    assert response.status_code == 400
    assert logged_in_as(client) is None


# ---- next redirects ------------------------------------------------------------------

BROWSER_STRIPS = re.compile(r"[\t\n\r]")


def where_a_browser_goes(location: str) -> tuple[str, str]:
    """(scheme, host) a browser would resolve this Location to, as WHATWG URL parsing does."""
    cleaned = BROWSER_STRIPS.sub("", location).strip("\x00 ").replace("\\", "/")
    parts = urlsplit(cleaned)
    return parts.scheme, parts.netloc


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example",
        "//evil.example/path",
        "https://evil.example",
        "http://evil.example/articles/x",
        "/\\evil.example",
        "\\\\evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        "/\r\n/evil.example",
        "///evil.example",
        "javascript:alert(1)",
        "https:evil.example",
        " //evil.example",
        "http://dispatch.test@evil.example/",
        "evil.example",
    ],
)
def test_next_redirects_only_to_this_site(client: FlaskClient, target: str) -> None:
    make_user("next@example.com")
    token = csrf_token_from(client, "/login")
    response = client.post(
        "/login",
        data={
            "email": "next@example.com",
            "password": PASSWORD,
            "csrf_token": token,
            "next": target,
        },
    )
    assert response.status_code == 302
    scheme, host = where_a_browser_goes(response.headers["Location"])
    assert host in ("", "dispatch.test"), response.headers["Location"]
    assert scheme in ("", "http"), response.headers["Location"]


def test_next_keeps_a_path_on_this_site(client: FlaskClient) -> None:
    make_user("keep@example.com")
    article = make_article()
    target = f"/articles/{article.slug}?from=login"
    page = client.get("/login", query_string={"next": target}).get_data(as_text=True)
    assert 'name="next"' in page
    token = csrf_token_from(client, "/login")
    response = client.post(
        "/login",
        data={
            "email": "keep@example.com",
            "password": PASSWORD,
            "csrf_token": token,
            "next": target,
        },
    )
    assert response.headers["Location"] == target


# ---- API tokens ----------------------------------------------------------------------


def test_tokens_are_random_and_stored_hashed(client: FlaskClient) -> None:
    user = make_user()
    secrets_ = {make_token(user) for _ in range(5)}
    assert len(secrets_) == 5
    assert all(len(s) >= 40 for s in secrets_)
    rows = db.session.query(ApiToken).filter_by(user_id=user.id).all()
    stored = {r.token_hash for r in rows}
    assert stored == {hashlib.sha256(s.encode()).hexdigest() for s in secrets_}
    for row in rows:
        for column in ("token_hash", "prefix", "name"):
            assert getattr(row, column) not in secrets_
        assert len(row.prefix) < 12  # enough to recognise a token, not to use it


def test_revoked_token_gets_401(client: FlaskClient) -> None:
    user = make_user()
    token = make_token(user)
    other = make_token(user)
    listed = client.get("/api/v1/tokens", headers=bearer(token)).get_json()["tokens"]
    assert len(listed) == 2 and all("token_hash" not in t for t in listed)
    victim = next(
        t
        for t in listed
        if db.session.get(ApiToken, t["id"]).token_hash  # type: ignore[union-attr]
        == hashlib.sha256(token.encode()).hexdigest()
    )
    response = client.delete(f"/api/v1/tokens/{victim['id']}", headers=bearer(other))
    assert response.status_code == 200
    assert response.get_json()["token_details"]["revoked_at"]
    assert_error(client.get("/api/v1/me", headers=bearer(token)), 401, "invalid_token")
    assert client.get("/api/v1/me", headers=bearer(other)).status_code == 200


def test_cannot_revoke_someone_elses_token(client: FlaskClient) -> None:
    owner = make_user()
    owner_token = make_token(owner)
    stranger_token = make_token(make_user())
    token_id = db.session.query(ApiToken).filter_by(user_id=owner.id).one().id
    response = client.delete(f"/api/v1/tokens/{token_id}", headers=bearer(stranger_token))
    assert_error(response, 404)
    assert client.get("/api/v1/me", headers=bearer(owner_token)).status_code == 200


# ---- create-publisher ----------------------------------------------------------------


def test_create_publisher_prints_token_last(app: Flask, client: FlaskClient) -> None:
    result = app.test_cli_runner().invoke(
        args=["create-publisher", "Editor@Example.com", "--password", "editor password 1"]
    )
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    me = client.get("/api/v1/me", headers=bearer(token)).get_json()
    assert me["user"]["email"] == "editor@example.com" and me["user"]["role"] == "publisher"
    create = client.post(
        "/api/v1/articles",
        json={
            "title": "From the CLI token",
            "teaser": "t",
            "body": "b",
            "price": {"amount": 39, "currency": "usd"},
        },
        headers=bearer(token),
    )
    assert create.status_code == 201
    log_in(client, "editor@example.com", "editor password 1")


def test_create_publisher_promotes_a_reader(app: Flask, client: FlaskClient) -> None:
    make_user("promote@example.com")
    result = app.test_cli_runner().invoke(args=["create-publisher", "promote@example.com"])
    assert result.exit_code == 0, result.output
    user = find_user_by_email("promote@example.com")
    assert user is not None
    db.session.refresh(user)
    assert user.is_publisher
    assert db.session.query(User).count() == 1
    token = result.output.strip().splitlines()[-1]
    assert client.get("/api/v1/publisher/articles", headers=bearer(token)).status_code == 200
    # The reader's password still works: promotion without --password keeps it.
    log_in(client, "promote@example.com")


@pytest.mark.parametrize(
    "args",
    [
        ["create-publisher", "not-an-email"],
        ["create-publisher", "ok@example.com", "--password", "short"],
    ],
)
def test_create_publisher_refuses_bad_credentials(
    app: Flask, client: FlaskClient, args: list[str]
) -> None:
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code != 0
    assert db.session.query(User).count() == 0
    assert db.session.query(ApiToken).count() == 0
