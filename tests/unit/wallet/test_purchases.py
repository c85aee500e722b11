"""Buying an article from the wallet: POST /api/v1/articles/<slug>/purchase and GET /wallet.

Wallets are filled by real top-ups against localstripe; clawbacks that make a balance
negative come as signed Stripe events posted to the webhook.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select

from models import ENTRY_PURCHASE, Entitlement, LedgerEntry, Purchase, User, Wallet, db
from tests.support.factories import bearer, make_article, make_token, make_user
from tests.support.servers import LocalStripe
from tests.support.stripe_helpers import card_payment_method, charge_obj, event, signed
from tests.support.stripe_helpers import stripe_client as stripe_api


def top_up(client: FlaskClient, token: str, base: str, amount: int = 500) -> dict[str, Any]:
    response = client.post(
        "/api/v1/wallet/topups",
        json={"amount": amount, "currency": "usd", "payment_method": card_payment_method(base)},
        headers=bearer(token),
    )
    assert response.status_code == 201, response.json
    assert response.json["topup"]["status"] == "succeeded"
    topup: dict[str, Any] = response.json["topup"]
    return topup


def buy(client: FlaskClient, token: str, slug: str) -> Any:
    return client.post(f"/api/v1/articles/{slug}/purchase", headers=bearer(token))


def wallet_of(client: FlaskClient, token: str) -> dict[str, Any]:
    response = client.get("/api/v1/wallet", headers=bearer(token))
    assert response.status_code == 200, response.json
    body: dict[str, Any] = response.json
    return body


def balance_of(client: FlaskClient, token: str) -> int:
    return int(wallet_of(client, token)["balance"]["amount"])


def count(model: Any, *where: Any) -> int:
    return int(db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def funded_reader(client: FlaskClient, base: str, amount: int = 500) -> tuple[User, str]:
    reader = make_user()
    token = make_token(reader)
    top_up(client, token, base, amount)
    return reader, token


def test_purchase_debits_the_current_price_and_entitles_the_reader(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    article = make_article(price=39, body="Only paying readers see this sentence.")
    reader, token = funded_reader(stripe_client, localstripe.base)
    assert (
        stripe_client.get(f"/api/v1/articles/{article.slug}", headers=bearer(token)).status_code
        == 402
    )

    response = buy(stripe_client, token, article.slug)

    assert response.status_code == 201, response.json
    purchase = response.json["purchase"]
    assert purchase["article"] == article.slug
    assert purchase["price"] == {"amount": 39, "currency": "usd"}
    assert isinstance(purchase["id"], int)
    assert datetime.fromisoformat(purchase["created_at"]).tzinfo is not None
    assert response.json["wallet"] == {"balance": {"amount": 461, "currency": "usd"}}
    full = stripe_client.get(f"/api/v1/articles/{article.slug}", headers=bearer(token))
    assert full.status_code == 200
    assert "Only paying readers see this sentence." in full.json["body_html"]
    # The debit, the purchase and the entitlement were all committed together.
    row = db.session.get(Purchase, purchase["id"])
    assert row is not None and (row.user_id, row.amount, row.status) == (reader.id, 39, "active")
    debit = db.session.scalars(
        select(LedgerEntry).where(LedgerEntry.purchase_id == purchase["id"])
    ).one()
    assert (debit.kind, debit.amount) == (ENTRY_PURCHASE, -39)
    entitlement = db.session.scalars(
        select(Entitlement).where(Entitlement.user_id == reader.id)
    ).one()
    assert (entitlement.article_id, entitlement.purchase_id) == (article.id, purchase["id"])
    library = stripe_client.get("/api/v1/library", headers=bearer(token)).json["articles"]
    assert [item["article"]["slug"] for item in library] == [article.slug]


def test_buying_again_returns_the_same_purchase_and_debits_nothing(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    article = make_article(price=39)
    reader, token = funded_reader(stripe_client, localstripe.base)
    first = buy(stripe_client, token, article.slug)
    assert first.status_code == 201

    again = buy(stripe_client, token, article.slug)

    assert again.status_code == 200, again.json
    assert again.json["purchase"]["id"] == first.json["purchase"]["id"]
    assert again.json["wallet"]["balance"] == {"amount": 461, "currency": "usd"}
    assert balance_of(stripe_client, token) == 461
    assert count(Purchase, Purchase.user_id == reader.id) == 1
    assert count(LedgerEntry, LedgerEntry.kind == ENTRY_PURCHASE) == 1


def test_insufficient_funds_is_a_402_with_the_shortfall_and_changes_nothing(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    article = make_article(price=39)
    reader = make_user()
    token = make_token(reader)

    response = buy(stripe_client, token, article.slug)

    assert response.status_code == 402
    assert response.json["error"]["code"] == "insufficient_funds"
    assert response.json["shortfall"] == {"amount": 39, "currency": "usd"}
    topup = response.json["topup"]
    # Stripe's minimum charge wins over a shortfall smaller than it.
    assert topup["minimum"] == {"amount": 50, "currency": "usd"}
    assert topup["presets"], "the reader is offered amounts to top up"
    for preset in topup["presets"]:
        assert preset["currency"] == "usd" and preset["amount"] >= 50
    assert wallet_of(stripe_client, token) == {
        "balance": {"amount": 0, "currency": "usd"},
        "status": "active",
        "entries": [],
    }
    assert count(Purchase) == 0
    assert count(Entitlement) == 0
    assert count(Wallet, Wallet.user_id == reader.id) == 0
    assert (
        stripe_client.get(f"/api/v1/articles/{article.slug}", headers=bearer(token)).status_code
        == 402
    )


def test_shortfall_above_the_minimum_sets_the_minimum_top_up(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    cheap, dear = make_article(price=39), make_article(price=250)
    _reader, token = funded_reader(stripe_client, localstripe.base, amount=50)
    assert buy(stripe_client, token, cheap.slug).status_code == 201  # 11 left

    response = buy(stripe_client, token, dear.slug)

    assert response.status_code == 402
    assert response.json["shortfall"] == {"amount": 239, "currency": "usd"}
    assert response.json["topup"]["minimum"] == {"amount": 239, "currency": "usd"}
    assert [p["amount"] for p in response.json["topup"]["presets"]] == [500, 1000]
    assert balance_of(stripe_client, token) == 11


def test_a_top_up_of_exactly_the_price_buys_the_article(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    article = make_article(price=75)
    _reader, token = funded_reader(stripe_client, localstripe.base, amount=75)
    response = buy(stripe_client, token, article.slug)
    assert response.status_code == 201
    assert response.json["wallet"]["balance"] == {"amount": 0, "currency": "usd"}


def test_an_open_dispute_freezes_purchases(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    article = make_article(price=39)
    reader = make_user()
    token = make_token(reader)
    pi_id = top_up(stripe_client, token, localstripe.base)["id"]
    dispute = {
        "id": f"dp_{pi_id}",
        "object": "dispute",
        "amount": 500,
        "currency": "usd",
        "status": "needs_response",
        "charge": latest_charge_id(localstripe.base, pi_id),
        "payment_intent": pi_id,
    }
    payload, headers = signed(event("charge.dispute.created", dispute))
    assert stripe_client.post("/webhooks/stripe", data=payload, headers=headers).status_code == 200

    response = buy(stripe_client, token, article.slug)

    assert response.status_code == 409
    assert response.json["error"]["code"] == "wallet_frozen"
    assert wallet_of(stripe_client, token)["status"] == "frozen"
    assert balance_of(stripe_client, token) == 500
    assert count(Purchase, Purchase.user_id == reader.id) == 0


def latest_charge_id(base: str, pi_id: str) -> str:
    charge = stripe_api(base).v1.payment_intents.retrieve(pi_id).to_dict()["latest_charge"]
    return str(charge["id"] if isinstance(charge, dict) else charge)


def test_a_negative_balance_freezes_purchases_but_not_reading_what_was_bought(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    bought, other = make_article(price=39), make_article(price=39)
    reader = make_user()
    token = make_token(reader)
    pi_id = top_up(stripe_client, token, localstripe.base)["id"]
    assert buy(stripe_client, token, bought.slug).status_code == 201
    charge = charge_obj(pi_id, 500, 500, reader.id, latest_charge_id(localstripe.base, pi_id))
    payload, headers = signed(event("charge.refunded", charge))
    assert stripe_client.post("/webhooks/stripe", data=payload, headers=headers).status_code == 200
    assert wallet_of(stripe_client, token)["balance"]["amount"] == -39

    response = buy(stripe_client, token, other.slug)

    assert response.status_code == 409
    assert response.json["error"]["code"] == "wallet_frozen"
    assert wallet_of(stripe_client, token)["status"] == "frozen"
    assert balance_of(stripe_client, token) == -39
    # Buying again what is already owned is still the same purchase, not a new debit.
    assert buy(stripe_client, token, bought.slug).status_code == 200
    assert (
        stripe_client.get(f"/api/v1/articles/{bought.slug}", headers=bearer(token)).status_code
        == 200
    )


def test_purchase_needs_authentication(stripe_client: FlaskClient) -> None:
    article = make_article(price=39)
    anonymous = stripe_client.post(f"/api/v1/articles/{article.slug}/purchase")
    assert anonymous.status_code == 401
    assert anonymous.json["error"]["code"] == "not_authenticated"
    forged = stripe_client.post(
        f"/api/v1/articles/{article.slug}/purchase", headers=bearer("dp_not-a-real-token")
    )
    assert forged.status_code == 401
    assert count(Purchase) == 0
    assert stripe_client.get("/api/v1/wallet").status_code == 401


def test_drafts_and_unknown_articles_are_404_and_debit_nothing(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    draft = make_article(price=39, published=False)
    reader, token = funded_reader(stripe_client, localstripe.base)

    for slug in (draft.slug, "no-such-dispatch"):
        response = buy(stripe_client, token, slug)
        assert response.status_code == 404, slug
        assert response.json["error"]["code"] == "not_found"
    assert balance_of(stripe_client, token) == 500
    assert count(Purchase, Purchase.user_id == reader.id) == 0


def test_publishers_do_not_buy_and_free_articles_are_not_sold(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    paid, free = make_article(price=39), make_article(price=0)
    publisher_token = make_token(make_user(role="publisher"))
    assert buy(stripe_client, publisher_token, paid.slug).status_code == 403
    _reader, token = funded_reader(stripe_client, localstripe.base)
    response = buy(stripe_client, token, free.slug)
    assert response.status_code == 409
    assert response.json["error"]["code"] == "article_free"
    assert balance_of(stripe_client, token) == 500


def test_a_price_change_applies_to_new_purchases_only(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    article = make_article(price=39)
    publisher_token = make_token(make_user(role="publisher"))
    _, early = funded_reader(stripe_client, localstripe.base)
    _, late = funded_reader(stripe_client, localstripe.base)
    first = buy(stripe_client, early, article.slug)
    assert first.status_code == 201

    patched = stripe_client.patch(
        f"/api/v1/articles/{article.slug}",
        json={"price": {"amount": 99, "currency": "usd"}},
        headers=bearer(publisher_token),
    )
    assert patched.status_code == 200, patched.json

    again = buy(stripe_client, early, article.slug)
    assert again.status_code == 200
    assert again.json["purchase"]["price"] == {"amount": 39, "currency": "usd"}
    assert balance_of(stripe_client, early) == 461
    listed = stripe_client.get("/api/v1/purchases", headers=bearer(early)).json["purchases"]
    assert [p["price"] for p in listed] == [{"amount": 39, "currency": "usd"}]
    later = buy(stripe_client, late, article.slug)
    assert later.status_code == 201
    assert later.json["purchase"]["price"] == {"amount": 99, "currency": "usd"}
    assert later.json["wallet"]["balance"] == {"amount": 401, "currency": "usd"}
    # A refund gives back what was paid, not today's price.
    refund = stripe_client.post(
        f"/api/v1/purchases/{first.json['purchase']['id']}/refund", headers=bearer(early)
    )
    assert refund.status_code == 200
    assert refund.json["wallet"]["balance"] == {"amount": 500, "currency": "usd"}
    refunded = db.session.get(Purchase, first.json["purchase"]["id"])
    assert refunded is not None and (refunded.amount, refunded.status) == (39, "refunded")


def test_wallet_shape_lists_entries_newest_first(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    article = make_article(price=39)
    reader = make_user()
    token = make_token(reader)
    assert wallet_of(stripe_client, token) == {
        "balance": {"amount": 0, "currency": "usd"},
        "status": "active",
        "entries": [],
    }
    top_up(stripe_client, token, localstripe.base)
    assert buy(stripe_client, token, article.slug).status_code == 201

    wallet = wallet_of(stripe_client, token)

    assert set(wallet) == {"balance", "status", "entries"}
    assert wallet["balance"] == {"amount": 461, "currency": "usd"}
    assert wallet["status"] == "active"
    assert [(e["kind"], e["amount"]) for e in wallet["entries"]] == [
        ("purchase", {"amount": -39, "currency": "usd"}),
        ("topup", {"amount": 500, "currency": "usd"}),
    ]
    purchase_entry, topup_entry = wallet["entries"]
    assert purchase_entry["article"] == {"slug": article.slug, "title": article.title}
    assert "article" not in topup_entry
    for entry in wallet["entries"]:
        assert set(entry) - {"article"} == {"id", "kind", "amount", "created_at"}
        assert isinstance(entry["id"], int)
        assert datetime.fromisoformat(entry["created_at"]).tzinfo is not None
    assert wallet["entries"][0]["id"] > wallet["entries"][1]["id"]
    # Another currency is another (empty) wallet.
    gbp = stripe_client.get("/api/v1/wallet?currency=gbp", headers=bearer(token))
    assert gbp.status_code == 200
    assert gbp.json["balance"] == {"amount": 0, "currency": "gbp"}
    assert (
        stripe_client.get("/api/v1/wallet?currency=xyz", headers=bearer(token)).status_code == 422
    )
