"""Gift links: a reader who owns a dispatch lets a few people read it, through the read gate."""

from __future__ import annotations

import secrets

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from dispatch_pay.catalog.gate import entitled_article_ids
from models import Article, GiftRead, User, db
from tests.support.factories import bearer, make_article, make_token, make_user
from tests.support.html import parse_page
from tests.support.wallet import buy, fund, refund
from tests.support.web import assert_error, csrf_token_from, log_in

SECRET = "Gifted-text-only-for-those-holding-the-link"


def owner_with_article(price: int = 39) -> tuple[User, str, str]:
    owner = make_user()
    article = make_article(body=f"{SECRET} and more.", price=price)
    fund(owner, 500)
    buy(owner, article)
    return owner, make_token(owner), article.slug


def make_gift(client: FlaskClient, token: str, slug: str) -> dict:
    response = client.post(f"/api/v1/articles/{slug}/gifts", headers=bearer(token))
    assert response.status_code == 201, response.get_data(as_text=True)
    gift = response.get_json()["gift"]
    assert set(gift) >= {"id", "url", "reads_left"}
    return gift


def path_of(url: str) -> str:
    return url.split("dispatch.test", 1)[1]


def claim(client: FlaskClient, path: str) -> str:
    """Open a gift as a person does: the page, then its "Read the gift" button."""
    csrf = csrf_token_from(client, path)
    response = client.post(path, data={"csrf_token": csrf})
    assert response.status_code == 303, response.status_code
    return client.get(response.headers["Location"]).get_data(as_text=True)


def test_three_people_read_then_the_link_shows_the_paywall(app: Flask, client: FlaskClient) -> None:
    _owner, token, slug = owner_with_article()
    gift = make_gift(client, token, slug)
    assert gift["reads_left"] == 3
    path = path_of(gift["url"])
    assert len(path.rsplit("/", 1)[1]) >= 43  # 256 bits, url-safe base64

    for _ in range(3):
        browser = app.test_client()
        first = browser.get(path)
        # Looking at the link (a link preview, a prefetch) takes no read: a button does.
        assert first.status_code == 200 and SECRET not in first.get_data(as_text=True)
        assert 'id="open-gift"' in first.get_data(as_text=True)
        assert SECRET in claim(browser, path)
        # The same person again: still readable, and it costs no second read.
        again = browser.get(path)
        assert SECRET in again.get_data(as_text=True)
    listed = client.get(f"/api/v1/articles/{slug}/gifts", headers=bearer(token)).get_json()
    assert listed["gifts"][0]["reads_left"] == 0

    fourth = app.test_client()
    html = fourth.get(path).get_data(as_text=True)
    assert 'id="open-gift"' not in html
    assert SECRET not in claim(fourth, path)
    assert SECRET not in html
    page = parse_page(html)
    assert page.has_class("paywall")
    assert "used up or withdrawn" in html


def test_gift_pages_are_private_and_noindex(app: Flask, client: FlaskClient) -> None:
    _owner, token, slug = owner_with_article()
    path = path_of(make_gift(client, token, slug)["url"])
    for response in (app.test_client().get(path), app.test_client().get(path + "x")):
        if response.status_code == 200:
            assert response.headers["Cache-Control"] == "private, no-store"
            assert "noindex" in response.headers["X-Robots-Tag"]
            assert parse_page(response.get_data(as_text=True)).meta["robots"].startswith("noindex")
    # A gift page is never put in the anonymous page cache: a used-up link stays used up
    # and a fresh one is not served from a stored copy either.
    for _ in range(3):
        claim(app.test_client(), path)
    assert SECRET not in claim(app.test_client(), path)


def test_a_logged_in_recipient_keeps_it_in_their_library(client: FlaskClient) -> None:
    _owner, token, slug = owner_with_article()
    path = path_of(make_gift(client, token, slug)["url"])
    friend = make_user()
    friend_token = make_token(friend)
    assert_error(client.get(f"/api/v1/articles/{slug}", headers=bearer(friend_token)), 402)
    log_in(client, friend)
    assert SECRET in claim(client, path)
    # Later, without the link: the gate lets them read, and the library lists it.
    assert SECRET in client.get(f"/articles/{slug}").get_data(as_text=True)
    assert client.get(f"/api/v1/articles/{slug}", headers=bearer(friend_token)).status_code == 200
    library = client.get("/api/v1/library", headers=bearer(friend_token)).get_json()
    assert [(i["article"]["slug"], i["source"]) for i in library["articles"]] == [(slug, "gift")]
    assert "Gift" in client.get("/library").get_data(as_text=True)


def test_the_owner_opening_their_own_link_costs_nothing(client: FlaskClient) -> None:
    owner, token, slug = owner_with_article()
    gift = make_gift(client, token, slug)
    log_in(client, owner)
    assert SECRET in client.get(path_of(gift["url"])).get_data(as_text=True)
    assert SECRET in claim(client, path_of(gift["url"]))
    assert db.session.query(GiftRead).count() == 0


def test_revoked_link_shows_the_teaser(app: Flask, client: FlaskClient) -> None:
    _owner, token, slug = owner_with_article()
    gift = make_gift(client, token, slug)
    other = make_token(make_user())
    assert_error(client.delete(f"/api/v1/gifts/{gift['id']}", headers=bearer(other)), 404)
    assert SECRET in claim(app.test_client(), path_of(gift["url"]))
    revoked = client.delete(f"/api/v1/gifts/{gift['id']}", headers=bearer(token))
    assert revoked.status_code == 200
    assert revoked.get_json()["gift"]["reads_left"] == 0
    html = app.test_client().get(path_of(gift["url"])).get_data(as_text=True)
    assert SECRET not in html and "paywall" in html
    assert SECRET not in claim(app.test_client(), path_of(gift["url"]))


def test_a_refunded_giver_gift_opens_nothing(app: Flask, client: FlaskClient) -> None:
    owner = make_user()
    publisher = make_user(role="publisher")
    article = make_article(body=f"{SECRET}.", price=39)
    fund(owner, 500)
    purchase = buy(owner, article)
    token = make_token(owner)
    gift = make_gift(client, token, article.slug)
    friend = make_user()
    log_in(client, friend)
    assert SECRET in claim(client, path_of(gift["url"]))
    refund(publisher, purchase)
    assert SECRET not in claim(app.test_client(), path_of(gift["url"]))
    # The friend's copy came from the giver's: it goes with the refund.
    assert SECRET not in client.get(f"/articles/{article.slug}").get_data(as_text=True)
    friend_token = make_token(friend)
    assert client.get("/api/v1/library", headers=bearer(friend_token)).get_json()["articles"] == []


def test_more_links_do_not_give_more_reads(app: Flask, client: FlaskClient) -> None:
    """Ten links from one purchase let 3 people read in all, not 30 (found by attack)."""
    _owner, token, slug = owner_with_article()
    paths = [path_of(make_gift(client, token, slug)["url"]) for _ in range(10)]
    readers = [app.test_client() for _ in range(4)]
    assert SECRET in claim(readers[0], paths[0])
    assert SECRET in claim(readers[1], paths[1])
    # A person who read through one link is still one person through another.
    assert SECRET in claim(readers[1], paths[2])
    listed = client.get(f"/api/v1/articles/{slug}/gifts", headers=bearer(token))
    assert {g["reads_left"] for g in listed.get_json()["gifts"]} == {1}
    assert SECRET in claim(readers[2], paths[3])
    assert SECRET not in claim(readers[3], paths[4])
    assert SECRET not in claim(readers[3], paths[9])
    assert make_gift(client, token, slug)["reads_left"] == 0
    visitors = {read.visitor for read in db.session.query(GiftRead)}
    assert len(visitors) == 3


def test_a_kept_gift_goes_with_the_givers_refund_whatever_else_the_giver_owns(
    client: FlaskClient,
) -> None:
    """The giver's ownership that keeps a gift open is of that article, not of any
    (mutmut: `&` -> `|` in the read gate's join survived every test)."""
    owner = make_user()
    publisher = make_user(role="publisher")
    gifted = make_article(body=f"{SECRET}.", price=39)
    fund(owner, 500)
    purchase = buy(owner, gifted)
    buy(owner, make_article(price=39))  # the giver keeps this one
    gift = make_gift(client, make_token(owner), gifted.slug)
    friend = make_user()
    log_in(client, friend)
    assert SECRET in claim(client, path_of(gift["url"]))

    refund(publisher, purchase)

    assert SECRET not in client.get(f"/articles/{gifted.slug}").get_data(as_text=True)
    friend_token = make_token(friend)
    assert client.get("/api/v1/library", headers=bearer(friend_token)).get_json()["articles"] == []


def test_listings_mark_what_each_caller_may_read_in_full(client: FlaskClient) -> None:
    """`entitled_article_ids` (the "yours" marks of the front page and of MCP search):
    bought and kept gifts, among the articles asked about only; mutmut's survivors of the
    read gate were all here."""
    owner, token, gifted_slug = owner_with_article()
    gifted = db.session.scalar(select(Article).where(Article.slug == gifted_slug))
    assert gifted is not None
    reader = make_user()
    bought, other_readers, unasked = (make_article(price=39) for _ in range(3))
    fund(reader, 500)
    buy(reader, bought)
    buy(reader, unasked)
    buy(owner, other_readers)
    log_in(client, reader)
    claim(client, path_of(make_gift(client, token, gifted_slug)["url"]))
    asked = [gifted.id, bought.id, other_readers.id]

    assert entitled_article_ids(reader, asked) == {gifted.id, bought.id}
    assert entitled_article_ids(reader, []) == set()
    assert entitled_article_ids(None, asked) == set()
    assert entitled_article_ids(make_user(role="publisher"), asked) == set(asked)
    assert entitled_article_ids(make_user(), asked) == set()


def test_only_an_owner_gives(client: FlaskClient) -> None:
    _owner, _token, slug = owner_with_article()
    stranger = make_token(make_user())
    publisher = make_token(make_user(role="publisher"))
    assert_error(client.post(f"/api/v1/articles/{slug}/gifts"), 401)
    assert_error(client.post(f"/api/v1/articles/{slug}/gifts", headers=bearer(stranger)), 403)
    assert_error(client.post(f"/api/v1/articles/{slug}/gifts", headers=bearer(publisher)), 403)
    assert_error(client.post("/api/v1/articles/no-such/gifts", headers=bearer(stranger)), 404)
    assert db.session.query(GiftRead).count() == 0


def test_publisher_sets_the_number_per_site_and_per_article(client: FlaskClient) -> None:
    publisher = make_token(make_user(role="publisher"))
    _owner, token, slug = owner_with_article()
    response = client.put(
        "/api/v1/publisher/settings", json={"gift_reads": 5}, headers=bearer(publisher)
    )
    assert response.get_json() == {"gift_reads": 5}
    assert make_gift(client, token, slug)["reads_left"] == 5
    client.patch(f"/api/v1/articles/{slug}", json={"gift_reads": 1}, headers=bearer(publisher))
    assert make_gift(client, token, slug)["reads_left"] == 1
    for bad in (-1, 101, "3", 2.5, None):
        body = assert_error(
            client.put(
                "/api/v1/publisher/settings", json={"gift_reads": bad}, headers=bearer(publisher)
            ),
            422,
        )
        assert "gift_reads" in body["error"]["fields"]
    body = assert_error(
        client.patch(
            f"/api/v1/articles/{slug}", json={"gift_reads": -2}, headers=bearer(publisher)
        ),
        422,
    )
    assert "gift_reads" in body["error"]["fields"]
    reader = make_token(make_user())
    assert_error(
        client.put("/api/v1/publisher/settings", json={"gift_reads": 9}, headers=bearer(reader)),
        403,
    )


def test_publisher_sees_gift_reads_in_sales(app: Flask, client: FlaskClient) -> None:
    _owner, token, slug = owner_with_article()
    path = path_of(make_gift(client, token, slug)["url"])
    claim(app.test_client(), path)
    claim(app.test_client(), path)
    app.test_client().get(path)  # only looked: not a read
    publisher = make_token(make_user(role="publisher"))
    report = client.get("/api/v1/publisher/sales", headers=bearer(publisher)).get_json()
    (row,) = [a for a in report["articles"] if a["slug"] == slug]
    assert row["gift_reads"] == 2 and row["purchases"] == 1
    assert report["total"]["gift_reads"] >= 2


def test_the_article_page_lists_gifts_and_revokes(client: FlaskClient) -> None:
    owner, _token, slug = owner_with_article()
    log_in(client, owner)
    page = client.get(f"/articles/{slug}").get_data(as_text=True)
    assert 'id="gift-button"' in page
    csrf = csrf_token_from(client, f"/articles/{slug}")
    assert client.post(f"/articles/{slug}/gifts", data={"csrf_token": csrf}).status_code == 302
    page = client.get(f"/articles/{slug}").get_data(as_text=True)
    assert "3 of 3 reads left" in page
    gift_id = page.split('data-gift-id="', 1)[1].split('"', 1)[0]
    response = client.post(f"/gifts/{gift_id}/revoke", data={"csrf_token": csrf})
    assert response.status_code == 302
    assert "Revoked" in client.get(f"/articles/{slug}").get_data(as_text=True)


def test_guessing_gift_tokens_is_rate_limited(app: Flask, client: FlaskClient) -> None:
    statuses = [client.get(f"/gift/{secrets.token_urlsafe(32)}").status_code for _ in range(25)]
    assert statuses[:20] == [404] * 20
    assert 429 in statuses[20:]


def test_looking_at_a_link_never_uses_it_up(app: Flask, client: FlaskClient) -> None:
    """Link previews and prefetchers GET (and HEAD) the link; only the button takes a read."""
    _owner, token, slug = owner_with_article()
    path = path_of(make_gift(client, token, slug)["url"])
    for _ in range(10):
        app.test_client().get(path)
        app.test_client().head(path)
    assert db.session.query(GiftRead).count() == 0
    assert SECRET in claim(app.test_client(), path)
