"""No account enumeration through login: same answer, same work, known email or not."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from dispatch_pay.accounts import services
from tests.support.factories import make_user
from tests.support.web import csrf_token_from, json_error, table_counts


@pytest.fixture()
def kdf_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every password-hash check login performs, by the hash method it ran."""
    calls: list[str] = []
    real: Callable[[str, str], bool] = services.check_password_hash

    def counting(pwhash: str, password: str) -> bool:
        calls.append(pwhash.split("$", 1)[0])
        return real(pwhash, password)

    monkeypatch.setattr(services, "check_password_hash", counting)
    return calls


def without_head(page: str) -> str:
    """The page without its <head> and without the CSRF tokens of its forms: a token is
    signed with the current second, so two answers a second apart would differ by it."""
    body = page.split("<head>")[0] + page.split("</head>")[1]
    return re.sub(r'name="csrf_token" value="[^"]*"', 'name="csrf_token"', body)


def html_login(client: FlaskClient, email: str, password: str) -> Any:
    token = csrf_token_from(client, "/login")
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token})


def test_html_login_answers_the_same_for_unknown_email_and_wrong_password(
    app: Flask, client: FlaskClient, kdf_calls: list[str]
) -> None:
    user = make_user("known@example.com")
    wrong = html_login(client, user.email, "not the password")
    unknown = html_login(client, "nobody@example.com", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    page_wrong = wrong.get_data(as_text=True).replace(user.email, "EMAIL")
    page_unknown = unknown.get_data(as_text=True).replace("nobody@example.com", "EMAIL")
    assert without_head(page_wrong) == without_head(page_unknown)
    assert "Email or password is wrong." in page_wrong
    # Both paths ran the key-derivation function once, with the configured method.
    method = app.config["PASSWORD_HASH_METHOD"]
    assert kdf_calls == [method, method]


def test_api_login_answers_the_same_for_unknown_email_and_wrong_password(
    app: Flask, client: FlaskClient, kdf_calls: list[str]
) -> None:
    user = make_user("known@example.com")
    wrong = client.post("/api/v1/tokens", json={"email": user.email, "password": "nope nope"})
    unknown = client.post(
        "/api/v1/tokens", json={"email": "nobody@example.com", "password": "nope nope"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.get_json() == unknown.get_json()
    assert json_error(wrong)["code"] == "invalid_credentials"
    method = app.config["PASSWORD_HASH_METHOD"]
    assert kdf_calls == [method, method]


def test_the_dummy_hash_costs_what_a_real_one_does(app: Flask, client: FlaskClient) -> None:
    user = make_user()
    dummy = services._dummy_hash()
    assert dummy.split("$", 1)[0] == user.password_hash.split("$", 1)[0]
    assert services._dummy_hash() == dummy  # made once, not per attempt


def test_production_hashes_with_full_strength_scrypt(tmp_path: Any) -> None:
    from dispatch_pay.config import load_config

    assert load_config(tmp_path, {"SECRET_KEY": "x"})["PASSWORD_HASH_METHOD"] == "scrypt"


def test_signup_reveals_a_taken_email_only_as_the_contract_requires(client: FlaskClient) -> None:
    """POST /api/v1/readers must answer 409 email_taken (the contract); the page says the
    same and nothing more: not the role, not whether a password matched, and no login."""
    reader = make_user("reader@example.com")
    publisher = make_user("editor@example.com", role="publisher")
    before = table_counts()
    pages = []
    for email in (reader.email, publisher.email.upper()):
        token = csrf_token_from(client, "/signup")
        response = client.post(
            "/signup",
            data={"email": email, "password": "long enough password", "csrf_token": token},
        )
        assert response.status_code == 409
        pages.append(response.get_data(as_text=True).replace(email, "EMAIL"))
        api = client.post("/api/v1/readers", json={"email": email, "password": "long password!"})
        assert api.status_code == 409 and json_error(api)["code"] == "email_taken"
    assert without_head(pages[0]) == without_head(pages[1])
    assert "publisher" not in pages[1].lower()
    assert table_counts() == before
    assert client.get("/wallet").status_code == 302  # not logged in as anyone
