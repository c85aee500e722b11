"""Mailed one-time links: sign-in (and sign-up), password reset, email change."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from models import AccountLink, OutboxMessage, User, UserSession, db, utcnow
from tests.support.browser_session import client_with_cookie, session_cookie
from tests.support.factories import PASSWORD, make_user
from tests.support.mail import deliver
from tests.support.smtp import SMTPServer, html_part, text_part
from tests.support.web import csrf_token_from
from tests.support.web import log_in as login_browser

LINK = re.compile(r"http://dispatch\.test/[^\s\"<>]+")


def post_form(client: FlaskClient, path: str, **data: str) -> object:
    token = csrf_token_from(client, path if "/login" not in path else "/login")
    return client.post(path, data={**data, "csrf_token": token})


def ask(client: FlaskClient, path: str, email: str, address: str = "127.0.0.1") -> str:
    response = client.post(
        path,
        data={"email": email, "csrf_token": csrf_token_from(client)},
        environ_base={"REMOTE_ADDR": address},
    )
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return response.get_data(as_text=True)


def mailed_link(smtp: SMTPServer, address: str) -> str:
    assert deliver(smtp)[1] == 0
    message = smtp.inbox.to(address)[-1]
    links = LINK.findall(text_part(message))
    assert links, text_part(message)
    assert links[0] in html_part(message)
    return links[0]


def path_of(link: str) -> str:
    return link.removeprefix("http://dispatch.test")


def confirm(client: FlaskClient, link: str, **data: str) -> object:
    page = client.get(path_of(link))
    assert page.status_code == 200, page.get_data(as_text=True)[:300]
    return client.post(
        path_of(link), data={**data, "csrf_token": csrf_token_from(client, path_of(link))}
    )


def me(client: FlaskClient) -> dict[str, object] | None:
    response = client.get("/api/v1/me")
    return response.get_json()["user"] if response.status_code == 200 else None


def assert_dead_link(client: FlaskClient, link: str) -> None:
    for method in ("GET", "POST"):
        response = client.open(
            path_of(link), method=method, data={"csrf_token": csrf_token_from(client)}
        )
        assert response.status_code == 400, (method, response.status_code)
        text = response.get_data(as_text=True)
        assert "expired" in text and "Nothing was changed" in text


def test_sign_in_by_link(client: FlaskClient, smtp: SMTPServer) -> None:
    user = make_user()
    page = ask(client, "/login/link", user.email.upper())
    assert "sign-in link is on its way" in page
    link = mailed_link(smtp, user.email)
    assert me(client) is None
    assert "Sign in as" in client.get(path_of(link)).get_data(as_text=True)
    assert me(client) is None  # opening the link (a mail scanner) does not sign in
    response = confirm(client, link)
    assert response.status_code == 302
    assert me(client) == {"id": user.id, "email": user.email, "role": "reader"}
    assert_dead_link(app_client(client), link)  # single use


def app_client(client: FlaskClient) -> FlaskClient:
    return client.application.test_client()


def test_a_link_to_an_unknown_address_creates_the_account_when_confirmed(
    client: FlaskClient, smtp: SMTPServer
) -> None:
    email = "newcomer@example.com"
    ask(client, "/login/link", email)
    link = mailed_link(smtp, email)
    assert db.session.scalar(select(User).where(User.email == email)) is None
    page = client.get(path_of(link)).get_data(as_text=True)
    assert "Create my account" in page
    assert db.session.scalar(select(User).where(User.email == email)) is None
    assert confirm(client, link).status_code == 302
    user = db.session.scalar(select(User).where(User.email == email))
    assert user is not None and me(client) == {"id": user.id, "email": email, "role": "reader"}


def test_known_and_unknown_addresses_get_the_same_answer(
    client: FlaskClient, smtp: SMTPServer
) -> None:
    user = make_user("known@example.com")
    for path in ("/login/link", "/password/reset"):
        known = ask(client, path, user.email).replace(user.email, "X")
        unknown = ask(client, path, "unknown@example.com").replace("unknown@example.com", "X")
        strip = re.compile(r'content="[^"]+"|value="[^"]+"')  # CSRF tokens
        assert strip.sub("", known) == strip.sub("", unknown)


def test_expired_reused_and_tampered_links_change_nothing(
    app: Flask, client: FlaskClient, smtp: SMTPServer
) -> None:
    user = make_user()
    ask(client, "/login/link", user.email)
    link = mailed_link(smtp, user.email)
    assert_dead_link(client, link[:-2] + ("AA" if not link.endswith("AA") else "BB"))
    assert_dead_link(client, link + "x")
    db.session.execute(
        AccountLink.__table__.update().values(expires_at=utcnow() - timedelta(seconds=1))
    )
    db.session.commit()
    assert_dead_link(client, link)
    assert me(client) is None
    assert db.session.scalar(select(func.count(UserSession.id))) == 0


def test_only_hashes_of_link_tokens_are_stored(client: FlaskClient, smtp: SMTPServer) -> None:
    user = make_user()
    ask(client, "/login/link", user.email)
    token = mailed_link(smtp, user.email).rsplit("/", 1)[1]
    (row,) = db.session.scalars(select(AccountLink))
    assert token not in row.token_hash and len(row.token_hash) == 64


def test_a_sign_in_link_is_bound_to_the_address(
    app: Flask, client: FlaskClient, smtp: SMTPServer
) -> None:
    user = make_user()
    ask(client, "/login/link", user.email)
    link = mailed_link(smtp, user.email)
    user.email = "moved@example.com"  # the account's address changed since
    db.session.commit()
    assert_dead_link(client, link)


def test_sign_in_links_expire_after_15_minutes(client: FlaskClient, smtp: SMTPServer) -> None:
    user = make_user()
    ask(client, "/login/link", user.email)
    (row,) = db.session.scalars(select(AccountLink))
    assert timedelta(minutes=14) < row.expires_at - row.created_at <= timedelta(minutes=15)


def test_forms_cannot_mail_bomb_an_address(client: FlaskClient, smtp: SMTPServer) -> None:
    victim = "victim@example.com"
    for i in range(4):  # from many addresses, so the per-address form limit is not what stops it
        ask(client, "/login/link", victim, f"10.0.0.{i}")
        ask(client, "/password/reset", victim, f"10.0.1.{i}")
    queued = db.session.scalar(
        select(func.count(OutboxMessage.id)).where(OutboxMessage.to_address == victim)
    )
    assert queued == 5


def test_plus_tags_do_not_multiply_the_mail_a_mailbox_gets(
    client: FlaskClient, smtp: SMTPServer
) -> None:
    """Found by attack: victim+1@, victim+2@, ... each had a limit of their own, and all
    of them land in one mailbox."""
    for i in range(8):
        ask(client, "/login/link", f"victim+{i}@example.com", f"10.0.2.{i}")
        ask(client, "/password/reset", f"Victim+x{i}@Example.com", f"10.0.3.{i}")
    ask(client, "/login/link", "victim@example.com", "10.0.4.1")
    ask(client, "/login/link", "victim_other@example.com", "10.0.4.2")  # not the same mailbox
    queued = db.session.scalars(select(OutboxMessage.to_address)).all()
    assert len([a for a in queued if a.startswith("victim+") or a == "victim@example.com"]) == 5
    assert "victim_other@example.com" in queued


@pytest.mark.parametrize(
    "email",
    ["a@example.com\r\nBcc: victim@example.com", "Ann <a@example.com>", "a@example.com,b@x.com"],
)
def test_header_injection_in_the_address_is_refused(client: FlaskClient, email: str) -> None:
    for path in ("/login/link", "/password/reset"):
        response = client.post(path, data={"email": email, "csrf_token": csrf_token_from(client)})
        assert response.status_code == 422
    assert db.session.scalar(select(func.count(OutboxMessage.id))) == 0


def test_password_reset_by_link_ends_every_session(
    app: Flask, client: FlaskClient, smtp: SMTPServer
) -> None:
    user = make_user()
    old_browser = app.test_client()
    login_browser(old_browser, user.email)
    kept_copy = client_with_cookie(app, session_cookie(old_browser))
    ask(client, "/password/reset", user.email)
    link = mailed_link(smtp, user.email)
    assert "one hour" in text_part(smtp.inbox.to(user.email)[-1])
    short = confirm(client, link, password="short")
    assert short.status_code == 422  # too short: the link stays usable
    response = client.post(
        path_of(link),
        data={"password": "my new password!", "csrf_token": csrf_token_from(client, path_of(link))},
    )
    assert response.status_code == 302
    assert me(client) is not None
    assert me(old_browser) is None and me(kept_copy) is None
    fresh = app.test_client()
    login_browser(fresh, user.email, "my new password!")
    token = csrf_token_from(fresh, "/login")
    wrong = fresh.post(
        "/login", data={"email": user.email, "password": PASSWORD, "csrf_token": token}
    )
    assert wrong.status_code == 401
    assert_dead_link(app.test_client(), link)


def test_reset_for_an_unknown_address_mails_no_link(client: FlaskClient, smtp: SMTPServer) -> None:
    ask(client, "/password/reset", "nobody@example.com")
    assert deliver(smtp) == (1, 0)
    (message,) = smtp.inbox.to("nobody@example.com")
    assert "there is no account" in text_part(message)


def test_a_reset_does_the_same_work_for_known_and_unknown_addresses(client: FlaskClient) -> None:
    """Found by attack: only a known address wrote a link row; the extra write is a timing
    difference that tells who has an account. An unknown address gets a row whose token is
    never sent, so it opens nothing."""
    user = make_user("known@example.com")
    ask(client, "/password/reset", user.email, "10.0.5.1")
    ask(client, "/password/reset", "nobody@example.com", "10.0.5.2")
    rows = db.session.scalars(select(AccountLink).order_by(AccountLink.id)).all()
    assert [(r.email, r.purpose) for r in rows] == [
        ("known@example.com", rows[0].purpose),
        ("nobody@example.com", rows[0].purpose),
    ]
    assert rows[1].user_id is None
    queued = db.session.scalars(select(OutboxMessage.to_address)).all()
    assert sorted(queued) == ["known@example.com", "nobody@example.com"]


def test_email_change_is_confirmed_from_the_new_address_and_the_old_one_is_told(
    client: FlaskClient, smtp: SMTPServer
) -> None:
    user = make_user("old@example.com")
    login_browser(client, user.email)
    token = csrf_token_from(client, "/account")
    response = client.post(
        "/account/email",
        data={"email": "new@example.com", "password": PASSWORD, "csrf_token": token},
    )
    assert response.status_code == 302
    link = mailed_link(smtp, "new@example.com")
    db.session.expire_all()
    assert db.session.get(User, user.id).email == "old@example.com"  # not before confirming
    assert confirm(client, link).status_code == 302
    db.session.expire_all()
    assert db.session.get(User, user.id).email == "new@example.com"
    deliver(smtp)
    (notice,) = smtp.inbox.to("old@example.com")
    assert "new@example.com" in text_part(notice)
    assert_dead_link(client, link)


def test_email_change_needs_the_password_and_a_free_address(client: FlaskClient) -> None:
    make_user("taken@example.com")
    user = make_user()
    login_browser(client, user.email)
    token = csrf_token_from(client, "/account")
    wrong = client.post(
        "/account/email", data={"email": "x@example.com", "password": "nope", "csrf_token": token}
    )
    assert wrong.status_code == 422
    taken = client.post(
        "/account/email",
        data={"email": "taken@example.com", "password": PASSWORD, "csrf_token": token},
    )
    assert taken.status_code == 409
    assert db.session.scalar(select(func.count(OutboxMessage.id))) == 0


def test_one_address_cannot_send_link_requests_without_limit(client: FlaskClient) -> None:
    statuses = [
        client.post(
            "/login/link",
            data={"email": f"r{i}@example.com", "csrf_token": csrf_token_from(client)},
        ).status_code
        for i in range(7)
    ]
    assert statuses[:5] == [200] * 5 and statuses[-1] == 429
