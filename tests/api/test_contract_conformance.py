"""CONTRACT.md, section by section, pinned as the contract states it.

A conformance audit: each test names the contract section it pins and checks the exact
key names and shapes that readers' apps, the publishing pipeline, operators and Stripe
rely on. What other suites already pin in depth (validation edge cases, idempotency,
rate limits, the CLI commands) is not repeated here; see the report of this audit.
Extra fields are allowed (the contract may be extended where it is silent), so shapes
are checked as "these keys, with these types", never as "only these keys".
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from dispatch_pay.config import ConfigurationError, load_config
from dispatch_pay.wallet.ledger import locked_wallet, post_entry
from models import ENTRY_ADJUSTMENT, Purchase, User, db
from tests.support.factories import PASSWORD, bearer, grant, make_article, make_token, make_user
from tests.support.servers import LocalStripe
from tests.support.stripe_helpers import card_payment_method, event, signed
from tests.support.stripe_helpers import stripe_client as stripe_api
from tests.support.wallet import fund
from tests.support.web import assert_error

BODY = "Only entitled readers ever see this sentence."
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(\+00:00|Z)$")


def walk(value: Any) -> Iterator[Any]:
    """Every value nested in a JSON document, the document included."""
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


def assert_money(value: Any, currency: str | None = None) -> None:
    """`{"amount": <int minor units>, "currency": "<lowercase ISO 4217>"}`."""
    assert isinstance(value, dict), value
    assert isinstance(value.get("amount"), int) and not isinstance(value["amount"], bool), value
    assert isinstance(value.get("currency"), str), value
    assert re.fullmatch(r"[a-z]{3}", value["currency"]), value
    if currency is not None:
        assert value["currency"] == currency, value


def assert_all_money(document: Any) -> None:
    """Money section: every amount anywhere in a response is an int with its currency."""
    for value in walk(document):
        if isinstance(value, dict) and "currency" in value and "amount" in value:
            assert_money(value)
        if isinstance(value, float):
            raise AssertionError(f"a float in a response: {document}")


def json_of(response: TestResponse, status: int) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == "application/json"
    body: dict[str, Any] = response.get_json()
    assert_all_money(body)
    return body


def reader_with_token() -> tuple[User, str]:
    reader = make_user()
    return reader, make_token(reader)


# ---- Articles ------------------------------------------------------------------------


def test_article_list_items_have_the_contract_keys(client: FlaskClient) -> None:
    """`GET /api/v1/articles` → {"articles": [{slug,title,teaser,price,published_at,
    verification: {summary}}]}, published only."""
    live = make_article(title="Live dispatch", body=BODY, price=39)
    make_article(title="A draft", published=False)
    body = json_of(client.get("/api/v1/articles"), 200)
    assert [item["slug"] for item in body["articles"]] == [live.slug]
    item = body["articles"][0]
    assert item["title"] == "Live dispatch"
    assert item["teaser"] == live.teaser
    assert item["price"] == {"amount": 39, "currency": "usd"}
    assert ISO_UTC.match(item["published_at"]), item
    assert isinstance(item["verification"]["summary"], str) and item["verification"]["summary"]
    assert BODY not in client.get("/api/v1/articles").get_data(as_text=True)


def test_entitled_reader_gets_the_200_article(client: FlaskClient) -> None:
    """200 {slug,title,teaser,body_html,price,published_at,verification: {report}} for an
    entitled reader and for publishers."""
    article = make_article(body=BODY, price=45, currency="eur")
    reader, token = reader_with_token()
    grant(reader, article)
    publisher_token = make_token(make_user(role="publisher"))
    for who in (token, publisher_token):
        body = json_of(client.get(f"/api/v1/articles/{article.slug}", headers=bearer(who)), 200)
        assert body["slug"] == article.slug and body["title"] == article.title
        assert body["teaser"] == article.teaser
        assert BODY in body["body_html"]
        assert body["price"] == {"amount": 45, "currency": "eur"}
        assert ISO_UTC.match(body["published_at"])
        report = body["verification"]
        assert report["verifier"] == "test-verifier"
        assert [claim["verdict"] for claim in report["claims"]] == [
            "supported",
            "weak",
            "unverified",
        ]
        assert set(report["claims"][0]) >= {"claim", "verdict", "sources", "note"}
        assert set(report["claims"][0]["sources"][0]) >= {"url", "title"}


def test_the_402_offers_the_article_and_never_its_text(client: FlaskClient) -> None:
    """402 {"error": {"code": "payment_required"}, "offer": {price, purchase_url},
    "article": {slug, title, teaser, price}}; the full text is in no field."""
    article = make_article(body=BODY, price=39)
    _reader, token = reader_with_token()
    for headers in ({}, bearer(token)):
        response = client.get(f"/api/v1/articles/{article.slug}", headers=headers)
        body = assert_error(response, 402, "payment_required")
        assert_all_money(body)
        assert body["offer"]["price"] == {"amount": 39, "currency": "usd"}
        assert body["offer"]["purchase_url"].endswith(f"/api/v1/articles/{article.slug}/purchase")
        assert body["article"] == {
            **body["article"],
            "slug": article.slug,
            "title": article.title,
            "teaser": article.teaser,
            "price": {"amount": 39, "currency": "usd"},
        }
        assert "body_html" not in body["article"] and "body" not in body["article"]
        for value in walk(body):
            assert not (isinstance(value, str) and "Only entitled readers" in value), body


# ---- Purchase ------------------------------------------------------------------------


def assert_purchase_shape(body: dict[str, Any], slug: str, price: int, balance: int) -> None:
    purchase = body["purchase"]
    assert isinstance(purchase["id"], int)
    assert purchase["article"] == slug
    assert purchase["price"] == {"amount": price, "currency": "usd"}
    assert ISO_UTC.match(purchase["created_at"])
    assert body["wallet"] == {"balance": {"amount": balance, "currency": "usd"}}


def test_purchase_201_then_200_with_the_same_shape(client: FlaskClient) -> None:
    """201 {"purchase": {id, article, price, created_at}, "wallet": {balance}}; 200 and
    the same purchase, nothing debited twice, when the reader already owns it."""
    article = make_article(body=BODY, price=39)
    reader, token = reader_with_token()
    fund(reader, 100)
    url = f"/api/v1/articles/{article.slug}/purchase"
    first = json_of(client.post(url, headers=bearer(token)), 201)
    assert_purchase_shape(first, article.slug, 39, 61)
    again = json_of(client.post(url, headers=bearer(token)), 200)
    assert_purchase_shape(again, article.slug, 39, 61)
    assert again["purchase"]["id"] == first["purchase"]["id"]
    read = client.get(f"/api/v1/articles/{article.slug}", headers=bearer(token))
    assert BODY in json_of(read, 200)["body_html"]


def test_insufficient_funds_402_shape(client: FlaskClient) -> None:
    """402 {"error": {"code": "insufficient_funds"}, "shortfall", "topup": {minimum, presets}}."""
    article = make_article(price=39)
    reader, token = reader_with_token()
    fund(reader, 10)
    response = client.post(f"/api/v1/articles/{article.slug}/purchase", headers=bearer(token))
    body = assert_error(response, 402, "insufficient_funds")
    assert_all_money(body)
    assert body["shortfall"] == {"amount": 29, "currency": "usd"}
    # The shortfall is under Stripe's minimum, so the smallest top-up is the minimum.
    assert body["topup"]["minimum"] == {"amount": 50, "currency": "usd"}
    presets = body["topup"]["presets"]
    assert presets and all(preset["currency"] == "usd" for preset in presets)
    assert db.session.query(Purchase).count() == 0


def test_wallet_frozen_409_and_wallet_shape(client: FlaskClient) -> None:
    """409 `wallet_frozen` while the balance is negative; `GET /api/v1/wallet` →
    {balance, status: active|frozen, entries: [{id, kind, amount, created_at}]}."""
    article = make_article(price=39)
    reader, token = reader_with_token()
    fund(reader, 100)
    active = json_of(client.get("/api/v1/wallet", headers=bearer(token)), 200)
    assert active["status"] == "active"
    assert active["balance"] == {"amount": 100, "currency": "usd"}
    (entry,) = active["entries"]
    assert isinstance(entry["id"], int) and entry["kind"] == "adjustment"
    assert entry["amount"] == {"amount": 100, "currency": "usd"}
    assert ISO_UTC.match(entry["created_at"])

    db.session.expire_all()
    post_entry(locked_wallet(reader.id, "usd"), ENTRY_ADJUSTMENT, -105, "conformance-drain")
    db.session.commit()
    frozen = json_of(client.get("/api/v1/wallet", headers=bearer(token)), 200)
    assert frozen["status"] == "frozen"
    assert frozen["balance"] == {"amount": -5, "currency": "usd"}
    assert [e["amount"]["amount"] for e in frozen["entries"]] == [-105, 100]  # signed
    response = client.post(f"/api/v1/articles/{article.slug}/purchase", headers=bearer(token))
    assert_error(response, 409, "wallet_frozen")


# ---- Wallet top-ups (Stripe) -----------------------------------------------------------


def test_topup_201_id_is_the_payment_intent(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    """201 {"topup": {id, status, amount, client_secret}} where id is the PaymentIntent's id,
    which carries metadata dispatch_reader and dispatch_purpose (and dispatch_article)."""
    article = make_article(price=50)
    reader, token = reader_with_token()
    response = stripe_client.post(
        "/api/v1/wallet/topups",
        json={"amount": 50, "currency": "usd", "buy": article.slug},
        headers=bearer(token),
    )
    topup = json_of(response, 201)["topup"]
    assert topup["amount"] == {"amount": 50, "currency": "usd"}
    assert isinstance(topup["status"], str) and isinstance(topup["client_secret"], str)
    intent = stripe_api(localstripe.base).v1.payment_intents.retrieve(topup["id"])
    assert intent.id == topup["id"] and intent.amount == 50 and intent.currency == "usd"
    assert intent.metadata["dispatch_reader"] == str(reader.id)
    assert intent.metadata["dispatch_purpose"]
    assert intent.metadata["dispatch_article"]


def test_topup_of_exactly_the_price_at_the_minimum_buys_it(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    """A top-up of exactly the article's price is allowed where the price is at or above
    the minimum; `buy` purchases it as soon as the top-up is credited; below is a 422."""
    article = make_article(price=50, body=BODY)
    _reader, token = reader_with_token()
    below = stripe_client.post(
        "/api/v1/wallet/topups", json={"amount": 49, "currency": "usd"}, headers=bearer(token)
    )
    assert "amount" in assert_error(below, 422)["error"]["fields"]
    response = stripe_client.post(
        "/api/v1/wallet/topups",
        json={
            "amount": 50,
            "currency": "usd",
            "payment_method": card_payment_method(localstripe.base),
            "buy": article.slug,
        },
        headers=bearer(token),
    )
    assert json_of(response, 201)["topup"]["status"] == "succeeded"
    read = stripe_client.get(f"/api/v1/articles/{article.slug}", headers=bearer(token))
    assert BODY in json_of(read, 200)["body_html"]
    wallet = json_of(stripe_client.get("/api/v1/wallet", headers=bearer(token)), 200)
    assert wallet["balance"] == {"amount": 0, "currency": "usd"}


# ---- Readers and library ---------------------------------------------------------------


def test_readers_tokens_and_library(client: FlaskClient) -> None:
    """`POST /api/v1/readers` → 201 {"reader": {id, email}, "token"}; `POST /api/v1/tokens`
    → 201 {"token"}; `GET /api/v1/library` lists the purchased articles."""
    credentials = {"email": "conformance@example.com", "password": PASSWORD}
    created = json_of(client.post("/api/v1/readers", json=credentials), 201)
    assert isinstance(created["reader"]["id"], int)
    assert created["reader"]["email"] == "conformance@example.com"
    token = json_of(client.post("/api/v1/tokens", json=credentials), 201)["token"]
    assert isinstance(token, str) and token != created["token"]

    owned = make_article(price=39)
    make_article(price=39)  # published, not bought
    reader = db.session.get(User, created["reader"]["id"])
    assert reader is not None
    fund(reader, 39)
    client.post(f"/api/v1/articles/{owned.slug}/purchase", headers=bearer(token))
    library = json_of(client.get("/api/v1/library", headers=bearer(token)), 200)
    assert [slug for slug in library_slugs(library)] == [owned.slug]
    assert BODY not in client.get("/api/v1/library", headers=bearer(token)).get_data(as_text=True)


def library_slugs(library: dict[str, Any]) -> list[str]:
    """The slugs of a library answer (each item names its article)."""
    slugs: list[str] = []
    for item in library["articles"]:
        article = item.get("article", item)
        slugs.append(article["slug"])
    return slugs


# ---- Refunds ---------------------------------------------------------------------------


def test_refund_credits_the_wallet_and_revokes_the_entitlement(client: FlaskClient) -> None:
    """`POST /api/v1/purchases/<id>/refund` → 200, wallet credited, entitlement revoked."""
    article = make_article(price=39, body=BODY)
    reader, token = reader_with_token()
    fund(reader, 39)
    bought = json_of(
        client.post(f"/api/v1/articles/{article.slug}/purchase", headers=bearer(token)), 201
    )
    publisher_token = make_token(make_user(role="publisher"))
    refund_url = f"/api/v1/purchases/{bought['purchase']['id']}/refund"
    refunded = json_of(client.post(refund_url, headers=bearer(publisher_token)), 200)
    assert refunded["purchase"]["id"] == bought["purchase"]["id"]
    wallet = json_of(client.get("/api/v1/wallet", headers=bearer(token)), 200)
    assert wallet["balance"] == {"amount": 39, "currency": "usd"}
    assert wallet["entries"][0]["kind"] == "refund"
    assert wallet["entries"][0]["amount"] == {"amount": 39, "currency": "usd"}
    read = client.get(f"/api/v1/articles/{article.slug}", headers=bearer(token))
    assert_error(read, 402, "payment_required")
    library = json_of(client.get("/api/v1/library", headers=bearer(token)), 200)
    assert library_slugs(library) == []


# ---- Publishing: sales -----------------------------------------------------------------


def test_sales_per_article_and_total(client: FlaskClient) -> None:
    """`GET /api/v1/publisher/sales` → per-article and total purchases, gross, refunded,
    net; `?format=csv` for a CSV."""
    kept, returned = make_article(price=39), make_article(price=60)
    publisher = make_user(role="publisher")
    publisher_token = make_token(publisher)
    reader, token = reader_with_token()
    fund(reader, 99)
    for article in (kept, returned):
        client.post(f"/api/v1/articles/{article.slug}/purchase", headers=bearer(token))
    purchase = db.session.query(Purchase).filter_by(article_id=returned.id).one()
    client.post(f"/api/v1/purchases/{purchase.id}/refund", headers=bearer(publisher_token))

    body = json_of(client.get("/api/v1/publisher/sales", headers=bearer(publisher_token)), 200)
    rows = {row["slug"]: row for row in body["articles"]}

    def amounts(values: list[dict[str, Any]]) -> int:
        return sum(value["amount"] for value in values if value["currency"] == "usd")

    for row in (rows[kept.slug], rows[returned.slug], body["total"]):
        assert {"purchases", "gross", "refunded", "net"} <= set(row), row
    assert rows[kept.slug]["purchases"] == 1 and amounts(rows[kept.slug]["gross"]) == 39
    assert amounts(rows[kept.slug]["refunded"]) == 0 and amounts(rows[kept.slug]["net"]) == 39
    assert amounts(rows[returned.slug]["refunded"]) == 60
    assert amounts(rows[returned.slug]["net"]) == 0
    total = body["total"]
    assert total["purchases"] == 2 and amounts(total["gross"]) == 99
    assert amounts(total["refunded"]) == 60 and amounts(total["net"]) == 39

    csv = client.get("/api/v1/publisher/sales?format=csv", headers=bearer(publisher_token))
    assert csv.status_code == 200 and csv.mimetype == "text/csv"
    lines = csv.get_data(as_text=True).splitlines()
    header = lines[0].split(",")
    assert {"purchases"} <= set(header)
    assert any(kept.slug in line for line in lines[1:])
    assert any("Total" in line for line in lines[1:])


# ---- Errors ----------------------------------------------------------------------------


def test_every_listed_status_has_the_error_shape(client: FlaskClient) -> None:
    """{"error": {code, message, fields}} with 400, 401, 402, 403, 404, 409, 422."""
    article = make_article()
    _reader, token = reader_with_token()
    raw = {"Content-Type": "application/json", **bearer(token)}
    assert_error(client.post("/api/v1/wallet/topups", data="{", headers=raw), 400)
    assert_error(client.get("/api/v1/wallet"), 401)
    assert_error(client.get(f"/api/v1/articles/{article.slug}"), 402)
    assert_error(client.post("/api/v1/articles", json={}, headers=bearer(token)), 403)
    assert_error(client.get("/api/v1/articles/no-such-dispatch"), 404)
    assert_error(client.get("/api/v1/no-such-route"), 404)
    email = make_user().email
    conflict = client.post("/api/v1/readers", json={"email": email, "password": PASSWORD})
    assert_error(conflict, 409, "email_taken")
    invalid = client.post("/api/v1/readers", json={"email": "nope", "password": "x"})
    assert set(assert_error(invalid, 422)["error"]["fields"]) == {"email", "password"}


# ---- Configuration ---------------------------------------------------------------------


def test_configuration_defaults(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, client: FlaskClient
) -> None:
    """DATABASE_URL defaults to a SQLite file under instance/; SECRET_KEY is generated into
    instance/ for development and required in production; no Stripe keys → buying is
    disabled with a clear message while reading works; no webhook secret → 503."""
    for name in ("DATABASE_URL", "SECRET_KEY", "FLASK_ENV", "DISPATCH_ENV"):
        monkeypatch.delenv(name, raising=False)
    development = load_config(tmp_path)
    assert development["DATABASE_URL"].startswith(f"sqlite:///{tmp_path}")
    assert development["SECRET_KEY"] == (tmp_path / "secret_key").read_text().strip()
    monkeypatch.setenv("FLASK_ENV", "production")
    with pytest.raises(ConfigurationError, match="SECRET_KEY"):
        load_config(tmp_path / "prod")

    article = make_article(body=BODY)
    reader, token = reader_with_token()
    refused = client.post(
        "/api/v1/wallet/topups", json={"amount": 500, "currency": "usd"}, headers=bearer(token)
    )
    message = assert_error(refused, 503)["error"]["message"]
    assert "Stripe" in message or "not available" in message
    # Asked to buy with too little in the wallet, the 402 keeps its shape but says why
    # the top-up it offers cannot be made here.
    short = client.post(f"/api/v1/articles/{article.slug}/purchase", headers=bearer(token))
    assert "not available" in assert_error(short, 402, "insufficient_funds")["error"]["message"]
    grant(reader, article)
    read = client.get(f"/api/v1/articles/{article.slug}", headers=bearer(token))
    assert BODY in json_of(read, 200)["body_html"]
    assert client.post("/webhooks/stripe", data=b"{}").status_code == 503


# ---- Stripe webhook --------------------------------------------------------------------


def test_webhook_verifies_and_acknowledges(stripe_client: FlaskClient) -> None:
    """400 on a bad or stale signature; 200 for unknown types, duplicates and objects that
    are not ours (no dispatch_* metadata), all acknowledged and ignored."""
    foreign = event(
        "payment_intent.succeeded",
        {"id": "pi_not_ours", "object": "payment_intent", "amount": 500, "currency": "usd"},
    )
    payload, headers = signed(foreign, secret="whsec_wrong")
    assert_error(stripe_client.post("/webhooks/stripe", data=payload, headers=headers), 400)
    payload, headers = signed(foreign, timestamp=1_000_000)
    assert_error(stripe_client.post("/webhooks/stripe", data=payload, headers=headers), 400)
    payload, headers = signed(foreign)
    for _ in range(2):
        answer = stripe_client.post("/webhooks/stripe", data=payload, headers=headers)
        assert answer.status_code == 200
    unknown = signed(event("invoice.created", {"id": "in_1", "object": "invoice"}))
    assert (
        stripe_client.post("/webhooks/stripe", data=unknown[0], headers=unknown[1]).status_code
        == 200
    )
    assert db.session.query(Purchase).count() == 0


# ---- Operations ------------------------------------------------------------------------


def test_operations_endpoints(client: FlaskClient) -> None:
    """/healthz 200; /api/openapi.json is the OpenAPI 3 document of /api/v1, covering the
    contract's routes; /api/docs shows it to people."""
    assert client.get("/healthz").status_code == 200
    spec = client.get("/api/openapi.json")
    assert spec.status_code == 200 and spec.mimetype == "application/json"
    document = spec.get_json()
    assert str(document["openapi"]).startswith("3.")
    # Path parameters may be named as the code names them ({purchase_id}).
    paths = {re.sub(r"\{[^}]+\}", "{}", path) for path in document["paths"]}
    for route in (
        "/api/v1/readers",
        "/api/v1/tokens",
        "/api/v1/library",
        "/api/v1/articles",
        "/api/v1/articles/{}",
        "/api/v1/articles/{}/purchase",
        "/api/v1/wallet",
        "/api/v1/wallet/topups",
        "/api/v1/articles/{}/verification",
        "/api/v1/articles/{}/publish",
        "/api/v1/publisher/sales",
        "/api/v1/purchases/{}/refund",
    ):
        assert route in paths, (route, sorted(paths))
    docs = client.get("/api/docs")
    assert docs.status_code == 200 and docs.mimetype == "text/html"
    assert "/api/openapi.json" in docs.get_data(as_text=True)


# ---- Pages -----------------------------------------------------------------------------


def test_pages_listed_in_the_contract(client: FlaskClient) -> None:
    """Every page of the Pages section answers; login and signup post email and password."""
    article = make_article(body=BODY)
    public = ["/", f"/articles/{article.slug}", "/signup", "/login", "/verification"]
    for path in public:
        assert client.get(path).status_code == 200, path
    for path in ("/feed.xml", "/sitemap.xml"):
        response = client.get(path)
        assert response.status_code == 200 and "xml" in response.mimetype, path
        assert BODY not in response.get_data(as_text=True)
    for path in ("/wallet", "/library", "/publisher"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"], path
    assert client.get("/logout").status_code in {200, 302}
    for path in ("/login", "/signup"):
        html = client.get(path).get_data(as_text=True)
        form = re.search(r'<form[^>]*method="post"[^>]*>(.*?)</form>', html, re.S)
        assert form, path
        names = set(re.findall(r'name="([^"]+)"', form.group(1)))
        assert {"email", "password", "csrf_token"} <= names, (path, names)
