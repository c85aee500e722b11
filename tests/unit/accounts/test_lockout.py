"""Issue 11 item 9: guessing from many addresses must not lock the owner out.

OWASP's device cookies: a browser (or cookie-keeping API client) that logged in to an
account before is exempt from that account's lockout; the lock counts only wrong
passwords, by account and address together, and never outlives its window."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from dispatch_pay.accounts.devices import COOKIE
from tests.support.browser_session import COOKIE_DOMAIN
from tests.support.factories import PASSWORD, make_user
from tests.support.web import csrf_token_from
from tests.support.web import log_in as login_browser

pytestmark = pytest.mark.usefixtures("client")  # the app context and rolled-back database


def attempt(client: FlaskClient, email: str, password: str, addr: str, api: bool = False) -> Any:
    if api:
        return client.post(
            "/api/v1/tokens",
            json={"email": email, "password": password},
            environ_base={"REMOTE_ADDR": addr},
        )
    token = csrf_token_from(client, "/login")
    return client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": token},
        environ_base={"REMOTE_ADDR": addr},
    )


def guess_from_ten_addresses(app: Flask, email: str) -> None:
    attacker = app.test_client()
    for i in range(10):
        assert (
            attempt(attacker, email, "wrong guess", f"10.9.0.{i}", api=bool(i % 2)).status_code
            == 401
        )


def test_the_owner_on_a_known_browser_still_logs_in(app: Flask, client: FlaskClient) -> None:
    user = make_user()
    login_browser(client, user.email)  # the owner's browser, some day before
    assert client.get_cookie(COOKIE, domain=COOKIE_DOMAIN) is not None
    client.post("/logout", data={"csrf_token": csrf_token_from(client, "/wallet")})
    guess_from_ten_addresses(app, user.email)
    # A device that never logged in to the account is locked out for the window...
    stranger = attempt(app.test_client(), user.email, PASSWORD, "10.9.1.1")
    assert stranger.status_code == 429
    assert 0 < int(stranger.headers["Retry-After"]) <= 15 * 60
    # ...but the owner's browser is not, by form or API.
    assert attempt(client, user.email, PASSWORD, "192.0.2.7").status_code == 302
    client.post("/logout", data={"csrf_token": csrf_token_from(client, "/wallet")})
    assert attempt(client, user.email, PASSWORD, "192.0.2.7", api=True).status_code == 201


def test_an_api_client_that_keeps_cookies_is_remembered_too(app: Flask) -> None:
    user = make_user()
    owner = app.test_client()
    assert attempt(owner, user.email, PASSWORD, "192.0.2.8", api=True).status_code == 201
    guess_from_ten_addresses(app, user.email)
    assert attempt(owner, user.email, PASSWORD, "192.0.2.8", api=True).status_code == 201


def test_a_forged_device_cookie_is_not_trusted(app: Flask, client: FlaskClient) -> None:
    user = make_user()
    guess_from_ten_addresses(app, user.email)
    forger = app.test_client()
    forger.set_cookie(COOKIE, "WyJhYmMiXQ.forged", domain=COOKIE_DOMAIN)
    assert attempt(forger, user.email, PASSWORD, "10.9.2.1").status_code == 429


def test_a_device_cookie_for_one_account_does_not_unlock_another(
    app: Flask, client: FlaskClient
) -> None:
    mine = make_user()
    victim = make_user()
    login_browser(client, mine.email)
    guess_from_ten_addresses(app, victim.email)
    assert attempt(client, victim.email, "still guessing", "10.9.3.1").status_code == 429


def test_wrong_passwords_are_limited_by_account_and_address_together(
    app: Flask, client: FlaskClient
) -> None:
    user = make_user()
    login_browser(client, user.email)  # even a trusted device: five wrong, then wait
    for _ in range(5):
        assert attempt(client, user.email, "wrong", "198.51.100.1").status_code == 401
    assert attempt(client, user.email, "wrong", "198.51.100.1").status_code == 429
    # The same account from another address, and another account from this one, still answer.
    assert attempt(client, user.email, PASSWORD, "198.51.100.2").status_code == 302
    other = make_user()
    assert attempt(client, other.email, PASSWORD, "198.51.100.1").status_code == 302


def test_successful_logins_do_not_count_towards_the_lock(app: Flask) -> None:
    user = make_user()
    for i in range(9):
        assert attempt(app.test_client(), user.email, PASSWORD, f"10.8.0.{i}").status_code == 302
    guess_from_ten_addresses(app, user.email)  # still ten wrong ones allowed after them
