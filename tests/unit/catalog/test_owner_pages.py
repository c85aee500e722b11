"""A reader's full page answered before Flask (catalog/owner_pages.py): the same page the
view renders, with a working CSRF token of the reader's own, and only while the read
gate, the session and everything else the page shows would give the same answer."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from models import ROLE_PUBLISHER, Entitlement, GiftLink, UserSession, db, utcnow
from tests.support.factories import grant, make_article, make_user
from tests.support.web import CSRF_META, answered_before_flask, log_in

TEXT = "Words that only owners read."
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def kept(caplog: pytest.LogCaptureFixture, response: TestResponse) -> bool:
    """`response` was the kept page, answered before Flask."""
    return answered_before_flask(caplog, response, "owner-page")


def csrf_of(response: TestResponse) -> str:
    match = CSRF_META.search(response.get_data(as_text=True))
    assert match is not None
    return match.group(1)


@pytest.fixture
def owner(client: FlaskClient) -> tuple[str, str]:
    """A reader logged in on `client` who owns an article: (page path, slug)."""
    article = make_article(body=TEXT)
    reader = make_user()
    grant(reader, article)
    log_in(client, reader)
    return f"/articles/{article.slug}", article.slug


def test_the_kept_page_is_the_views_page_with_a_working_token_of_its_own(
    client: FlaskClient, owner: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="dispatch_pay.request")
    page, slug = owner
    first = client.get(page)  # the view renders and keeps it
    second = client.get(page)
    assert not kept(caplog, first)
    assert kept(caplog, second)
    assert TEXT in second.get_data(as_text=True)
    token = csrf_of(second)
    assert second.get_data(as_text=True).replace(token, "T") == first.get_data(
        as_text=True
    ).replace(csrf_of(first), "T")
    assert CSRF_FIELD.findall(second.get_data(as_text=True)) == [token, token]  # logout, gift
    same = {k: v for k, v in first.headers.items() if k not in ("X-Request-ID", "Content-Length")}
    assert same == {
        k: v for k, v in second.headers.items() if k not in ("X-Request-ID", "Content-Length")
    }
    assert "no-store" in second.headers["Cache-Control"] and "Set-Cookie" not in second.headers
    # The token signed before Flask is accepted by Flask's CSRF check.
    made = client.post(f"/articles/{slug}/gifts", data={"csrf_token": token})
    assert made.status_code in (302, 303), made.get_data(as_text=True)[:300]
    assert db.session.query(GiftLink).count() == 1


def test_the_gate_the_session_and_the_reader_decide_every_time(
    client: FlaskClient, owner: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="dispatch_pay.request")
    page, _slug = owner
    client.get(page)
    assert kept(caplog, client.get(page))
    # A refund takes the entitlement back: the teaser, from Flask, without the text.
    db.session.query(Entitlement).delete()
    db.session.commit()
    locked = client.get(page)
    assert locked.status_code == 200 and TEXT not in locked.get_data(as_text=True)
    assert not kept(caplog, locked)


def test_an_ended_session_a_forged_cookie_and_another_reader_get_no_kept_page(
    client: FlaskClient, owner: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="dispatch_pay.request")
    page, _slug = owner
    client.get(page)
    assert kept(caplog, client.get(page))
    # Another reader, who owns nothing, on another browser.
    other = client.application.test_client()
    log_in(other, make_user())
    assert TEXT not in other.get(page).get_data(as_text=True)
    # A forged cookie: the owner's, with its signature changed.
    name = client.application.config["SESSION_COOKIE_NAME"]
    cookie = next(c for c in client._cookies.values() if c.key == name)
    forged = cookie.value[:-2] + ("AA" if cookie.value[-2:] != "AA" else "BB")
    client.set_cookie(name, forged, domain=cookie.domain)
    assert TEXT not in client.get(page).get_data(as_text=True)
    # The owner's cookie again, after their session was ended (all sessions deleted).
    client.set_cookie(name, cookie.value, domain=cookie.domain)
    assert kept(caplog, client.get(page))
    db.session.query(UserSession).delete()
    db.session.commit()
    ended = client.get(page)
    assert TEXT not in ended.get_data(as_text=True)
    assert not kept(caplog, ended)


def test_a_publisher_gets_the_publisher_nav_not_a_readers_kept_page(
    client: FlaskClient, owner: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="dispatch_pay.request")
    page, _slug = owner
    client.get(page)
    assert "/wallet" in client.get(page).get_data(as_text=True)
    log_in(client, make_user(role=ROLE_PUBLISHER))
    for _ in range(2):
        html = client.get(page).get_data(as_text=True)
        assert TEXT in html and "Dashboard" in html and 'href="/wallet"' not in html
        assert 'id="gift-button"' not in html


def test_flashed_messages_query_strings_and_due_touches_go_to_flask(
    client: FlaskClient, owner: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="dispatch_pay.request")
    page, _slug = owner
    client.get(page)
    with client.session_transaction() as flask_session:
        flask_session["_flashes"] = [("message", "Only for this reader.")]
    flashed = client.get(page)
    assert "Only for this reader." in flashed.get_data(as_text=True)
    assert not kept(caplog, flashed)
    assert "Only for this reader." not in client.get(page).get_data(as_text=True)
    assert not kept(caplog, client.get(page + "?ref=mail"))
    # The session's last use is due to be recorded: Flask records it.
    stored = db.session.query(UserSession).one()
    stored.last_seen_at = utcnow() - timedelta(hours=1)
    db.session.commit()
    touched = client.get(page)
    assert not kept(caplog, touched) and TEXT in touched.get_data(as_text=True)
    db.session.expire_all()
    assert utcnow() - db.session.query(UserSession).one().last_seen_at < timedelta(minutes=1)
    assert kept(caplog, client.get(page))
