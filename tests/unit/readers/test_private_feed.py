"""The private feed: RSS 2.0 of a reader's library in full, read with PyPI feedparser."""

from __future__ import annotations

import secrets
from typing import Any

import feedparser
from flask.testing import FlaskClient

from tests.support.factories import bearer, make_article, make_token, make_user
from tests.support.wallet import buy, fund, refund
from tests.support.web import assert_error, csrf_token_from, log_in


def parse(client: FlaskClient, path: str, **headers: str) -> tuple[Any, Any]:
    response = client.get(path, headers=headers)
    return response, feedparser.parse(response.get_data())


def feed_path(client: FlaskClient, token: str) -> str:
    response = client.get("/api/v1/me/feed", headers=bearer(token))
    assert response.status_code == 200
    return str(response.get_json()["url"]).split("dispatch.test", 1)[1]


def test_the_feed_carries_the_full_text_and_verification(client: FlaskClient) -> None:
    reader = make_user()
    token = make_token(reader)
    mine = make_article(title="Mine", body="Owned-text-in-the-feed **bold**.", price=39)
    other = make_article(title="Not mine", body="Unowned-text-never-in-the-feed.", price=39)
    fund(reader, 500)
    buy(reader, mine)
    path = feed_path(client, token)
    assert path == feed_path(client, token)  # stable until renewed

    response, feed = parse(client, path)
    assert response.status_code == 200
    assert response.mimetype == "application/rss+xml"
    assert "private" in response.headers["Cache-Control"]
    assert not feed.bozo, feed.bozo_exception
    assert feed.version == "rss20"
    (entry,) = feed.entries
    assert entry.title == "Mine"
    assert "Owned-text-in-the-feed" in entry.description
    assert "<strong>bold</strong>" in entry.description
    assert "3 claims checked: 1 supported, 1 weak, 1 unverified" in entry.description
    assert entry.link.endswith(f"/articles/{mine.slug}")
    assert "Unowned-text-never-in-the-feed" not in response.get_data(as_text=True)
    assert other.slug not in response.get_data(as_text=True)


def test_conditional_get_answers_304_until_the_library_changes(client: FlaskClient) -> None:
    reader = make_user()
    token = make_token(reader)
    fund(reader, 500)
    buy(reader, make_article(price=39))
    path = feed_path(client, token)
    first = client.get(path)
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert client.get(path, headers={"If-None-Match": etag}).status_code == 304
    assert client.get(path, headers={"If-Modified-Since": modified}).status_code == 304
    # feedparser's own conditional GET support sends the same headers.
    buy(reader, make_article(price=39))
    changed = client.get(path, headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert len(feedparser.parse(changed.get_data()).entries) == 2


def test_the_gate_holds_for_the_feed(client: FlaskClient) -> None:
    reader, stranger = make_user(), make_user()
    publisher = make_user(role="publisher")
    token, stranger_token = make_token(reader), make_token(stranger)
    article = make_article(body="Refundable-text-in-the-feed.", price=39)
    fund(reader, 500)
    purchase = buy(reader, article)
    path = feed_path(client, token)
    assert "Refundable-text-in-the-feed" in client.get(path).get_data(as_text=True)

    # Another reader's secret is their own library, not this one's.
    _, theirs = parse(client, feed_path(client, stranger_token))
    assert theirs.entries == []

    # A refunded article leaves the feed (and a 304 cannot keep it: the ETag changes).
    etag = client.get(path).headers["ETag"]
    refund(publisher, purchase)
    response, feed = parse(client, path, **{"If-None-Match": etag})
    assert response.status_code == 200 and feed.entries == []
    assert "Refundable-text-in-the-feed" not in response.get_data(as_text=True)

    # A new secret revokes the old one.
    renewed = client.post("/api/v1/me/feed", headers=bearer(token))
    assert renewed.status_code == 200
    new_path = renewed.get_json()["url"].split("dispatch.test", 1)[1]
    assert new_path != path
    assert client.get(path).status_code == 404
    assert client.get(new_path).status_code == 200
    for bad in ("short", secrets.token_urlsafe(32), path.split("/")[-1][:-4][::-1]):
        assert client.get(f"/feed/{bad}.xml").status_code == 404


def test_feed_api_needs_a_reader(client: FlaskClient) -> None:
    assert_error(client.get("/api/v1/me/feed"), 401)
    assert_error(client.post("/api/v1/me/feed"), 401)


def test_the_library_page_shows_and_renews_the_address(client: FlaskClient) -> None:
    reader = make_user()
    log_in(client, reader)
    page = client.get("/library").get_data(as_text=True)
    old = page.split('id="feed-url" type="text" readonly value="', 1)[1].split('"', 1)[0]
    assert "/feed/" in old
    csrf = csrf_token_from(client, "/library")
    assert client.post("/library/feed", data={"csrf_token": csrf}).status_code == 302
    page = client.get("/library").get_data(as_text=True)
    assert old not in page
    assert client.get(old.split("dispatch.test", 1)[1]).status_code == 404


def test_guessing_feed_secrets_is_rate_limited(client: FlaskClient) -> None:
    statuses = [client.get(f"/feed/{secrets.token_urlsafe(32)}.xml").status_code for _ in range(25)]
    assert statuses[:20] == [404] * 20
    assert 429 in statuses[20:]


def shown_address(client: FlaskClient, path: str) -> str:
    page = client.get(path).get_data(as_text=True)
    return page.split('id="feed-url" type="text" readonly value="', 1)[1].split('"', 1)[0]


def test_the_account_page_shows_the_address_and_renews_it(client: FlaskClient) -> None:
    """Issue 15: the private feed's secret is on /account too, with a button for a new one."""
    reader = make_user()
    token = make_token(reader)
    log_in(client, reader)
    old = shown_address(client, "/account")
    assert "/feed/" in old
    assert old == shown_address(client, "/library")
    assert client.get(old.split("dispatch.test", 1)[1]).status_code == 200

    csrf = csrf_token_from(client, "/account")
    renewed = client.post("/library/feed", data={"csrf_token": csrf, "return_to": "account"})

    assert renewed.status_code == 302
    assert renewed.headers["Location"].endswith("/account#private-feed")
    new = shown_address(client, "/account")
    assert new != old
    assert new == shown_address(client, "/library")
    assert feed_path(client, token) == new.split("dispatch.test", 1)[1]
    assert client.get(old.split("dispatch.test", 1)[1]).status_code == 404
    assert client.get(new.split("dispatch.test", 1)[1]).status_code == 200


def test_a_new_address_needs_the_csrf_token_and_returns_only_to_known_pages(
    client: FlaskClient,
) -> None:
    reader = make_user()
    log_in(client, reader)
    old = shown_address(client, "/account")

    assert client.post("/library/feed", data={"return_to": "account"}).status_code == 400
    assert shown_address(client, "/account") == old

    csrf = csrf_token_from(client, "/account")
    elsewhere = client.post(
        "/library/feed", data={"csrf_token": csrf, "return_to": "https://evil.example/"}
    )
    assert elsewhere.status_code == 302
    assert elsewhere.headers["Location"].endswith("/library#private-feed")
    assert shown_address(client, "/account") != old
