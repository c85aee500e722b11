"""Sessions on the server: the cookie names a session record; ending it ends every copy."""

from __future__ import annotations

import json
from base64 import urlsafe_b64decode
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from dispatch_pay.accounts.sessions import TOUCH_INTERVAL
from models import User, UserSession, db, utcnow
from tests.support.browser_session import client_with_cookie, session_cookie
from tests.support.factories import PASSWORD, make_user
from tests.support.web import csrf_token_from
from tests.support.web import log_in as login_browser


def sessions_of(user: User) -> list[UserSession]:
    db.session.expire_all()
    return list(db.session.scalars(select(UserSession).where(UserSession.user_id == user.id)))


def logged_in(app: Flask, client: FlaskClient) -> bool:
    return client.get("/api/v1/me").status_code == 200


def test_login_creates_a_session_record_and_the_cookie_carries_no_user_id(
    client: FlaskClient,
) -> None:
    user = make_user()
    login_browser(client, user.email)
    (record,) = sessions_of(user)
    assert record.user_agent and record.address == "127.0.0.1"
    payload = session_cookie(client).split(".")[0].lstrip(".")
    decoded = urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    data = json.loads(decoded)
    assert "_user_id" not in data and str(user.id) not in data.values()
    assert set(data) <= {"sid", "csrf_token", "_flashes"}


def test_a_cookie_copied_before_logout_no_longer_works(app: Flask, client: FlaskClient) -> None:
    user = make_user()
    login_browser(client, user.email)
    copied = session_cookie(client)
    thief = client_with_cookie(app, copied)
    assert logged_in(app, thief)
    token = csrf_token_from(client, "/wallet")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert sessions_of(user) == []
    assert thief.get("/api/v1/me").status_code == 401
    page = thief.get("/wallet")
    assert page.status_code == 302 and "/login" in page.headers["Location"]


def test_log_out_everywhere_ends_every_session(app: Flask, client: FlaskClient) -> None:
    user = make_user()
    other_browser = app.test_client()
    login_browser(other_browser, user.email)
    login_browser(client, user.email)
    copy = client_with_cookie(app, session_cookie(client))
    assert len(sessions_of(user)) == 2
    token = csrf_token_from(client, "/account")
    response = client.post("/account/sessions/end-all", data={"csrf_token": token})
    assert response.status_code == 302
    assert sessions_of(user) == []
    for browser in (client, other_browser, copy):
        assert browser.get("/api/v1/me").status_code == 401


def test_the_account_page_lists_sessions_and_ends_one(app: Flask, client: FlaskClient) -> None:
    user = make_user()
    other_browser = app.test_client()
    other_browser.environ_base["HTTP_USER_AGENT"] = "OtherBrowser/1.0"
    login_browser(other_browser, user.email)
    login_browser(client, user.email)
    page = client.get("/account").get_data(as_text=True)
    assert "OtherBrowser/1.0" in page and "(this browser)" in page
    assert "Log out everywhere" in page and user.email in page
    other = next(s for s in sessions_of(user) if s.user_agent == "OtherBrowser/1.0")
    token = csrf_token_from(client, "/account")
    response = client.post(f"/account/sessions/{other.id}/end", data={"csrf_token": token})
    assert response.status_code == 302
    assert other_browser.get("/api/v1/me").status_code == 401
    assert logged_in(app, client)


def test_a_reader_cannot_end_another_readers_session(app: Flask, client: FlaskClient) -> None:
    victim = make_user()
    victim_browser = app.test_client()
    login_browser(victim_browser, victim.email)
    (record,) = sessions_of(victim)
    login_browser(client, make_user().email)
    token = csrf_token_from(client, "/account")
    response = client.post(f"/account/sessions/{record.id}/end", data={"csrf_token": token})
    assert response.status_code == 404
    assert logged_in(app, victim_browser)


def test_password_change_ends_every_other_session_and_copies(
    app: Flask, client: FlaskClient
) -> None:
    user = make_user()
    other_browser = app.test_client()
    login_browser(other_browser, user.email)
    login_browser(client, user.email)
    copy = client_with_cookie(app, session_cookie(client))
    token = csrf_token_from(client, "/account")
    response = client.post(
        "/account/password",
        data={
            "csrf_token": token,
            "current_password": PASSWORD,
            "new_password": "a brand new password",
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    assert logged_in(app, client)  # this browser stays in, under a new session
    assert other_browser.get("/api/v1/me").status_code == 401
    assert copy.get("/api/v1/me").status_code == 401
    assert len(sessions_of(user)) == 1


def test_password_change_needs_the_current_password(app: Flask, client: FlaskClient) -> None:
    user = make_user()
    login_browser(client, user.email)
    token = csrf_token_from(client, "/account")
    response = client.post(
        "/account/password",
        data={"csrf_token": token, "current_password": "wrong", "new_password": "x" * 12},
    )
    assert response.status_code == 422
    assert "The password is wrong." in response.get_data(as_text=True)
    login_browser(app.test_client(), user.email)  # the old password still works


def test_the_csrf_token_from_before_login_is_refused_after_it(client: FlaskClient) -> None:
    """Issue 11 item 13: login rotates the CSRF token."""
    user = make_user()
    before = csrf_token_from(client, "/login")
    response = client.post(
        "/login", data={"email": user.email, "password": PASSWORD, "csrf_token": before}
    )
    assert response.status_code == 302
    stale = client.post("/logout", data={"csrf_token": before})
    assert stale.status_code == 400
    fresh = csrf_token_from(client, "/wallet")
    assert fresh != before
    assert client.post("/logout", data={"csrf_token": fresh}).status_code == 302


def test_reading_pages_does_not_write_the_session_every_time(client: FlaskClient) -> None:
    user = make_user()
    login_browser(client, user.email)
    (record,) = sessions_of(user)
    seen = record.last_seen_at
    for _ in range(3):
        assert client.get("/api/v1/me").status_code == 200
    (record,) = sessions_of(user)
    assert record.last_seen_at == seen
    record.last_seen_at = utcnow() - TOUCH_INTERVAL - timedelta(seconds=1)
    db.session.commit()
    assert client.get("/api/v1/me").status_code == 200
    (record,) = sessions_of(user)
    assert utcnow() - record.last_seen_at < timedelta(minutes=1)


def test_an_idle_session_expires(client: FlaskClient) -> None:
    user = make_user()
    login_browser(client, user.email)
    (record,) = sessions_of(user)
    record.last_seen_at = utcnow() - timedelta(days=31)
    db.session.commit()
    assert client.get("/api/v1/me").status_code == 401


@pytest.mark.parametrize(
    "target",
    ["/%0D%0ASet-Cookie:%20x=1", "/ok%0Aevil", "//evil.example/", "https://evil.example/"],
)
def test_next_with_control_characters_or_other_hosts_goes_home(
    client: FlaskClient, target: str
) -> None:
    """Issue 11 item 11: CR/LF in `next` gave a 500; now it is replaced by `/`."""
    user = make_user()
    token = csrf_token_from(client, "/login")
    response = client.post(
        f"/login?next={target}",
        data={"email": user.email, "password": PASSWORD, "csrf_token": token},
    )
    assert response.status_code == 302
    assert response.headers["Location"] in {"/", "http://dispatch.test/"}
    assert db.session.scalar(select(func.count(UserSession.id))) == 1
