"""The read gate, proven by crawling: no GET route leaks a paid body to a reader who has
not bought it, and the reader who has gets the full text and its verifier report.

Every GET route of the app is visited (enumerated from app.url_map), with its path
parameters filled from real data. A route with a parameter the crawl does not know how
to fill fails the test, so the crawl stays complete as the app grows.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import Map, Rule
from werkzeug.test import TestResponse

from dispatch_pay.accounts.services import find_user_by_email
from dispatch_pay.catalog.gate import Access, read_access
from dispatch_pay.catalog.gifts import create_gift, open_gift, revoke_gift
from dispatch_pay.catalog.private_feed import feed_secret, new_feed_secret
from dispatch_pay.catalog.services import find_article
from dispatch_pay.publisher.services import unpublish, update_article
from dispatch_pay.verification.services import attach_report
from models import Article, db
from tests.support.factories import bearer, claims, grant, make_article, make_token, make_user
from tests.support.html import parse_page
from tests.support.web import assert_error, csrf_token_from, log_in

TEASER = "A public teaser: the harbour's cranes stopped burning diesel."


def canary(name: str) -> str:
    return f"canary{name}{secrets.token_hex(8)}"


@dataclass
class Scene:
    """The articles and the reader one crawl runs against."""

    paid: str
    edited: str
    draft: str
    unpublished: str
    free: str
    withdrawn: str
    reader_email: str
    token: str
    token_id: int
    canaries: dict[str, str] = field(default_factory=dict)
    # Gift links of the paid dispatch that no longer open it (used up, revoked) and a
    # feed secret that was replaced: each must show the teaser (or 404), never the text.
    gift_tokens: list[str] = field(default_factory=list)
    feed_secrets: list[str] = field(default_factory=list)

    def slugs(self) -> list[str]:
        return [
            self.paid,
            self.edited,
            self.draft,
            self.unpublished,
            self.free,
            self.withdrawn,
            "no-such-dispatch",
        ]


def paid_body(*marks: str) -> str:
    """A Markdown body with a secret in every paragraph and in formatted text."""
    first, *rest = marks
    return (
        f"{first} opens the paid text.\n\n"
        + "\n\n".join(
            f"A paragraph with **{m}** and [a link](https://x.example/{m})." for m in rest
        )
        + f"\n\n> A quote ending with {first}\n"
    )


def build_scene() -> Scene:
    c = {
        name: canary(name)
        for name in (
            "paid",
            "paidclaim",
            "live",
            "pending",
            "draft",
            "unpublished",
            "free",
            "withdrawn",
        )
    }
    report = claims("supported", "weak", "unverified")
    report[0]["claim"] = f"The claim text is paid content too: {c['paidclaim']}"
    report[1]["note"] = f"So is the note: {c['paidclaim']}"
    report[2]["quote"] = f"{c['paid']} opens the paid text"  # the marked passage
    paid = make_article(teaser=TEASER, body=paid_body(c["paid"], c["paid"], c["paid"]), price=39)
    # make_article attached the factory report; replace it with one carrying canaries.
    attach_report(paid, {"verifier": "crawl", "checked_at": paid.created_at, "claims": report})
    edited = make_article(teaser=TEASER, body=paid_body(c["live"], c["live"]), price=129)
    update_article(edited, {"body": paid_body(c["pending"], c["pending"])}, None)
    draft = make_article(body=paid_body(c["draft"], c["draft"]), published=False)
    gone = make_article(body=paid_body(c["unpublished"], c["unpublished"]), price=49)
    unpublish(gone)
    free = make_article(body=f"Free for all: {c['free']}", price=0)
    # Published, then its live report found a contradicted claim: off sale, buyers only.
    withdrawn = make_article(body=paid_body(c["withdrawn"], c["withdrawn"]), price=59)
    attach_report(
        withdrawn,
        {"verifier": "crawl", "checked_at": withdrawn.created_at, "claims": claims("contradicted")},
    )
    db.session.commit()
    gift_tokens, feed_secrets = spent_capabilities(paid)
    reader = make_user()
    token = make_token(reader)
    return Scene(
        paid=paid.slug,
        edited=edited.slug,
        draft=draft.slug,
        unpublished=gone.slug,
        free=free.slug,
        withdrawn=withdrawn.slug,
        reader_email=reader.email,
        token=token,
        token_id=reader.tokens[0].id,
        canaries=c,
        gift_tokens=gift_tokens,
        feed_secrets=feed_secrets,
    )


def spent_capabilities(paid: Article) -> tuple[list[str], list[str]]:
    """A giver who owns `paid`: one gift link used up by three people, one revoked, and
    the feed secret they replaced. Plus unknown values of the right and the wrong shape."""
    giver = make_user()
    grant(giver, paid)
    used = create_gift(giver, paid)
    for n in range(used.reads_left):
        assert open_gift(used.token, None, f"visitor{n}", claim=True).access is Access.FULL
    revoked = create_gift(giver, paid)
    revoke_gift(giver, revoked.gift.id)
    old_secret = feed_secret(giver)
    new_feed_secret(giver)
    db.session.commit()
    unknown = secrets.token_urlsafe(32)
    return [used.token, revoked.token, unknown, "short"], [old_secret, unknown, "short"]


# How to fill each path parameter. A GET route with any other parameter fails the
# crawl: teach it here, with values that reach the route's real data.
FILLERS: dict[str, Callable[[Scene], list[str]]] = {
    "slug": Scene.slugs,
    "filename": lambda s: ["style.css"],
    "token_id": lambda s: [str(s.token_id)],
    "topup_id": lambda s: ["pi_not_ours"],
    "payment_intent_id": lambda s: ["pi_not_ours"],
    "purchase_id": lambda s: ["1"],
    "token": lambda s: [*s.gift_tokens, "not-a-link-we-sent"],  # gifts; mailed sign-in, reset links
    "secret": lambda s: s.feed_secrets,
    "sequence": lambda s: ["1", "2"],
}


# Query strings and paths that reach more of the app than the bare routes do.
def extra_paths(s: Scene) -> list[str]:
    return [
        "/?page=2",
        "/?page=notanumber",
        "/api/v1/articles?per_page=1&page=1",
        "/api/v1/articles?per_page=1&page=2",
        "/api/v1/articles?per_page=100",
        "/api/v1/articles?per_page=0",
        f"/wallet?buy={s.paid}",
        f"/wallet?buy={s.draft}",
        "/no-such-page",
        f"/articles/{s.paid}/extra",
        "/api/v1/no-such-route",
        f"/api/v1/articles/{s.paid}/publish",  # GET on a POST route: 405
        f"/signup?next=/articles/{s.paid}",
        f"/login?next=/articles/{s.paid}",
    ]


def get_rules(url_map: Map) -> list[Rule]:
    return [r for r in url_map.iter_rules() if r.methods is None or "GET" in r.methods]


def crawl_urls(url_map: Map, scene: Scene) -> list[str]:
    adapter = url_map.bind("dispatch.test", url_scheme="http")
    urls: list[str] = []
    for rule in get_rules(url_map):
        unknown = set(rule.arguments) - set(FILLERS)
        if unknown:
            pytest.fail(
                f"GET {rule.rule} has parameters the crawl cannot fill: {sorted(unknown)}; "
                "add them to FILLERS in tests/unit/catalog/test_read_gate_crawl.py"
            )
        names = sorted(rule.arguments)
        for combo in itertools.product(*(FILLERS[n](scene) for n in names)):
            values = dict(zip(names, combo, strict=True))
            urls.append(adapter.build(rule.endpoint, values, method="GET"))
    return urls + extra_paths(scene)


def visit_all(
    client: FlaskClient, urls: list[str], headers: dict[str, str]
) -> Iterator[tuple[str, TestResponse]]:
    for url in urls:
        for accept in ("text/html", "application/json"):
            response = client.get(url, headers={**headers, "Accept": accept})
            response.get_data()  # read the whole body (static files stream)
            response.close()
            assert response.status_code < 500, (url, response.status_code)
            if url.startswith("/api/") and response.status_code >= 400:
                assert_error(response, response.status_code)  # the contract's error shape
            yield f"{url} [{accept}]", response


def assert_no_leak(responses: Iterator[tuple[str, TestResponse]], secrets_: list[str]) -> int:
    seen = 0
    for where, response in responses:
        text = response.get_data().decode("utf-8", "replace")  # /favicon.ico is binary
        for secret in secrets_:
            assert secret not in text, f"{where} leaks {secret}"
        for _name, value in response.headers.items():
            for secret in secrets_:
                assert secret not in value, f"{where} leaks {secret} in a header"
        seen += 1
    return seen


def make_visitor(kind: str, client: FlaskClient, scene: Scene) -> dict[str, str]:
    if kind == "session":
        log_in(client, scene.reader_email)
        return {}
    if kind == "bearer":
        return bearer(scene.token)
    return {}


def never_readable(scene: Scene) -> list[str]:
    c = scene.canaries
    return [c["pending"], c["draft"], c["unpublished"], c["withdrawn"]]


def paid_secrets(scene: Scene) -> list[str]:
    c = scene.canaries
    return [c["paid"], c["paidclaim"], c["live"], *never_readable(scene)]


@pytest.mark.parametrize("visitor", ["anonymous", "session", "bearer"])
def test_crawl_finds_no_paid_body(app: Flask, client: FlaskClient, visitor: str) -> None:
    scene = build_scene()
    headers = make_visitor(visitor, client, scene)
    urls = crawl_urls(app.url_map, scene)
    seen = assert_no_leak(visit_all(client, urls, headers), paid_secrets(scene))
    assert seen >= 2 * len(get_rules(app.url_map))
    # The purchase offer (a 402 with a shortfall) is a teaser output too.
    if visitor != "anonymous":
        token = csrf_token_from(client, "/")
        for slug in scene.slugs():
            response = client.post(
                f"/api/v1/articles/{slug}/purchase", headers={**headers, "X-CSRFToken": token}
            )
            assert response.status_code in (402, 404, 409), response.get_data(as_text=True)
            assert_no_leak(iter([(f"purchase {slug}", response)]), paid_secrets(scene))
    # The free dispatch is readable by everyone: the crawl really reaches article bodies.
    free = client.get(f"/articles/{scene.free}", headers=headers).get_data(as_text=True)
    assert scene.canaries["free"] in free


@pytest.mark.parametrize("visitor", ["anonymous", "session", "bearer"])
def test_teaser_outputs_carry_the_teaser_only(client: FlaskClient, visitor: str) -> None:
    scene = build_scene()
    headers = make_visitor(visitor, client, scene)

    response = client.get(f"/articles/{scene.paid}", headers=headers)
    assert response.status_code == 200
    page = parse_page(response.get_data(as_text=True))
    assert page.meta["og:description"] == TEASER
    assert page.meta["description"] == TEASER
    assert page.has_class("paywall")
    (data,) = page.json_ld
    assert data["@type"] == "NewsArticle"
    assert data["description"] == TEASER
    assert data["isAccessibleForFree"] is False
    assert "articleBody" not in data and "text" not in data

    response = client.get(f"/api/v1/articles/{scene.paid}", headers=headers)
    body = assert_error(response, 402, "payment_required")
    assert set(body) == {"error", "offer", "article"}
    assert set(body["article"]) == {"slug", "title", "teaser", "price"}
    assert body["article"]["teaser"] == TEASER
    assert body["offer"]["price"] == {"amount": 39, "currency": "usd"}
    assert body["offer"]["purchase_url"].endswith(f"/api/v1/articles/{scene.paid}/purchase")

    for slug in (scene.draft, scene.unpublished, scene.withdrawn):
        assert client.get(f"/articles/{slug}", headers=headers).status_code == 404
        assert_error(client.get(f"/api/v1/articles/{slug}", headers=headers), 404, "not_found")


@pytest.mark.parametrize("visitor", ["session", "bearer"])
def test_entitled_reader_reads_full_text_and_report(
    app: Flask, client: FlaskClient, visitor: str
) -> None:
    scene = build_scene()
    headers = make_visitor(visitor, client, scene)

    reader = find_user_by_email(scene.reader_email)
    assert reader is not None
    grant(reader, find_article(scene.paid))
    grant(reader, find_article(scene.edited))
    c = scene.canaries

    html = client.get(f"/articles/{scene.paid}", headers=headers).get_data(as_text=True)
    if visitor == "session":
        page = parse_page(html)
        assert c["paid"] in html and c["paidclaim"] in html
        assert page.has_class("verifier") and not page.has_class("paywall")
        assert "3 claims checked: 1 supported, 1 weak, 1 unverified" in html
        for verdict in ("supported", "weak", "unverified"):
            assert f"verdict-{verdict}" in html
        assert "https://source.example.org/1" in html
        # JSON-LD and OpenGraph stay teaser-only even for an owner of the dispatch.
        assert page.meta["og:description"] == TEASER
        assert c["paid"] not in str(page.json_ld) and c["paid"] not in str(page.meta)
        edited = client.get(f"/articles/{scene.edited}").get_data(as_text=True)
        assert c["live"] in edited and c["pending"] not in edited
    else:
        # A bearer token is an API credential: pages stay locked, the API opens.
        assert c["paid"] not in html

    response = client.get(f"/api/v1/articles/{scene.paid}", headers=headers)
    assert response.status_code == 200
    article = response.get_json()
    assert c["paid"] in article["body_html"]
    assert article["teaser"] == TEASER
    report = article["verification"]
    assert report["counts"] == {
        "total": 3,
        "supported": 1,
        "weak": 1,
        "unverified": 1,
        "contradicted": 0,
    }
    assert [claim["verdict"] for claim in report["claims"]] == ["supported", "weak", "unverified"]
    assert c["paidclaim"] in report["claims"][0]["claim"]
    assert report["claims"][0]["sources"][0]["url"].startswith("https://")
    assert len(report["body_sha256"]) == 64

    edited_json = client.get(f"/api/v1/articles/{scene.edited}", headers=headers).get_json()
    assert c["live"] in edited_json["body_html"]
    assert c["pending"] not in str(edited_json)

    library = client.get("/api/v1/library", headers=headers).get_json()
    assert {item["article"]["slug"] for item in library["articles"]} == {
        scene.paid,
        scene.edited,
    }

    # Owning two dispatches opens nothing else: crawl again for the texts no reader gets.
    urls = crawl_urls(app.url_map, scene)
    assert_no_leak(visit_all(client, urls, headers), never_readable(scene))

    # What the owner was shown is not served to anyone else afterwards (no cache, no
    # shared state): a visitor and another reader crawl again and find nothing.
    stranger = make_user()
    for other, other_headers in (
        (app.test_client(), {}),
        (app.test_client(), bearer(make_token(stranger))),
    ):
        assert_no_leak(visit_all(other, urls, other_headers), paid_secrets(scene))


def test_crawl_refuses_a_route_it_cannot_fill(client: FlaskClient) -> None:
    scene = build_scene()
    url_map = Map([Rule("/", endpoint="home"), Rule("/probe/<mystery_id>", endpoint="probe")])
    with pytest.raises(pytest.fail.Exception, match="mystery_id"):
        crawl_urls(url_map, scene)


def test_every_crawled_route_is_reached(app: Flask, client: FlaskClient) -> None:
    """The fillers reach real data: each slug route answers 200 for the published dispatch."""
    scene = build_scene()
    rules_with_slug = [r for r in get_rules(app.url_map) if "slug" in r.arguments]
    assert rules_with_slug
    reached: dict[str, Any] = {}
    adapter = app.url_map.bind("dispatch.test")
    for rule in rules_with_slug:
        values = {name: FILLERS[name](scene)[0] for name in rule.arguments}
        url = adapter.build(rule.endpoint, {**values, "slug": scene.free}, method="GET")
        reached[url] = client.get(url, headers=bearer(scene.token)).status_code
    assert 200 in reached.values(), reached


def test_a_buyer_keeps_an_unpublished_text_and_a_grant_never_opens_a_draft(
    client: FlaskClient,
) -> None:
    """The gate's one rule for unpublished articles: only a text that went live, and only
    for who is entitled to it (mutmut: `live_revision_id is not None` -> `is None` survived)."""
    reader = make_user()
    bought = make_article(price=39)
    grant(reader, bought)
    unpublish(bought)
    draft = make_article(price=39, published=False)
    grant(reader, draft)

    assert read_access(reader, bought) == Access.FULL
    assert read_access(make_user(), bought) == Access.HIDDEN
    assert read_access(reader, draft) == Access.HIDDEN
