"""POST /api/v1/wallet/topups against localstripe: charging, validating, idempotency, `buy`."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from models import ENTRY_TOPUP, LedgerEntry, Purchase, TopUp, db
from tests.support.factories import bearer, make_article, make_token, make_user
from tests.support.servers import LocalStripe, wait_until
from tests.support.stripe_helpers import (
    CARD_3DS,
    CARD_DECLINED,
    card_payment_method,
    card_top_up,
)
from tests.support.stripe_helpers import (
    stripe_client as stripe_api,
)

TOPUPS = "/api/v1/wallet/topups"


def payment_intent_count(base: str) -> int:
    """How many PaymentIntents localstripe holds (it is shared by the whole session)."""
    listing = stripe_api(base).v1.payment_intents.list(params={"limit": 100})
    return sum(1 for _ in listing.auto_paging_iter())


def wallet_of(client: FlaskClient, token: str, currency: str = "usd") -> dict[str, Any]:
    response = client.get(f"/api/v1/wallet?currency={currency}", headers=bearer(token))
    assert response.status_code == 200
    body: dict[str, Any] = response.json
    return body


def topup_entries(user_id: int) -> list[LedgerEntry]:
    return list(
        db.session.scalars(
            select(LedgerEntry)
            .join(TopUp, TopUp.payment_intent_id == LedgerEntry.reference)
            .where(LedgerEntry.kind == ENTRY_TOPUP, TopUp.user_id == user_id)
        )
    )


@pytest.fixture()
def reader_token() -> tuple[int, str]:
    reader = make_user()
    return reader.id, make_token(reader)


def test_a_card_top_up_is_credited_synchronously(
    stripe_client: FlaskClient, localstripe: LocalStripe, reader_token: tuple[int, str]
) -> None:
    reader_id, token = reader_token
    response = card_top_up(stripe_client, localstripe.base, token)
    topup = response.json["topup"]
    assert topup["status"] == "succeeded"
    assert topup["amount"] == {"amount": 500, "currency": "usd"}
    assert topup["id"].startswith("pi_")
    wallet = wallet_of(stripe_client, token)
    assert wallet["balance"] == {"amount": 500, "currency": "usd"}
    assert [(e["kind"], e["amount"]["amount"]) for e in wallet["entries"]] == [("topup", 500)]
    assert [e.amount for e in topup_entries(reader_id)] == [500]
    # The PaymentIntent is really in Stripe, tagged as ours.
    pi = stripe_api(localstripe.base).v1.payment_intents.retrieve(topup["id"])
    assert (pi.status, pi.amount, pi.currency) == ("succeeded", 500, "usd")
    assert pi.metadata["dispatch_reader"] == str(reader_id)
    assert pi.metadata["dispatch_purpose"] == "wallet_topup"


def test_a_declined_card_is_a_402_and_credits_nothing(
    stripe_client: FlaskClient, localstripe: LocalStripe, reader_token: tuple[int, str]
) -> None:
    reader_id, token = reader_token
    response = card_top_up(stripe_client, localstripe.base, token, card=CARD_DECLINED, status=402)

    assert response.status_code == 402, response.json
    assert response.json["error"]["code"] == "card_declined"
    assert wallet_of(stripe_client, token)["balance"]["amount"] == 0
    assert wallet_of(stripe_client, token)["entries"] == []
    # The decline is kept on record.
    record = db.session.scalars(select(TopUp).where(TopUp.user_id == reader_id)).one()
    assert record.status == "failed"
    assert record.failure_code == "card_declined"
    assert record.credited_at is None


@pytest.mark.parametrize(
    ("amount", "currency"),
    [(49, "usd"), (49, "eur"), (29, "gbp"), (0, "usd"), (-500, "usd"), (10001, "usd")],
)
def test_amounts_outside_the_limits_are_refused_before_stripe_is_asked(
    stripe_client: FlaskClient,
    localstripe: LocalStripe,
    reader_token: tuple[int, str],
    amount: int,
    currency: str,
) -> None:
    _reader_id, token = reader_token
    before = payment_intent_count(localstripe.base)

    response = card_top_up(
        stripe_client, localstripe.base, token, amount, currency=currency, status=422
    )

    assert response.status_code == 422, response.json
    assert "amount" in response.json["error"]["fields"]
    assert payment_intent_count(localstripe.base) == before
    assert db.session.scalar(select(func.count(TopUp.id))) == 0


@pytest.mark.parametrize(
    "amount", ["500", 500.5, 500.0, None, [500], {"amount": 500}, "five dollars"]
)
def test_amounts_that_are_not_integers_are_refused(
    stripe_client: FlaskClient,
    localstripe: LocalStripe,
    reader_token: tuple[int, str],
    amount: Any,
) -> None:
    _reader_id, token = reader_token
    before = payment_intent_count(localstripe.base)
    response = card_top_up(stripe_client, localstripe.base, token, amount, status=422)
    assert response.status_code == 422, response.json
    assert "amount" in response.json["error"]["fields"]
    assert payment_intent_count(localstripe.base) == before


def test_a_missing_amount_or_unknown_currency_is_refused(
    stripe_client: FlaskClient, localstripe: LocalStripe, reader_token: tuple[int, str]
) -> None:
    _reader_id, token = reader_token
    before = payment_intent_count(localstripe.base)
    missing = stripe_client.post(TOPUPS, json={"currency": "usd"}, headers=bearer(token))
    assert missing.status_code == 422
    assert "amount" in missing.json["error"]["fields"]
    unknown = stripe_client.post(
        TOPUPS, json={"amount": 500, "currency": "xyz"}, headers=bearer(token)
    )
    assert unknown.status_code == 422
    assert "currency" in unknown.json["error"]["fields"]
    assert payment_intent_count(localstripe.base) == before


@pytest.mark.parametrize(("amount", "currency"), [(50, "usd"), (30, "gbp"), (10000, "usd")])
def test_amounts_at_the_limits_are_allowed(
    stripe_client: FlaskClient,
    localstripe: LocalStripe,
    reader_token: tuple[int, str],
    amount: int,
    currency: str,
) -> None:
    _reader_id, token = reader_token
    response = card_top_up(stripe_client, localstripe.base, token, amount, currency=currency)
    assert response.status_code == 201, response.json
    assert response.json["topup"]["status"] == "succeeded"
    assert wallet_of(stripe_client, token, currency)["balance"] == {
        "amount": amount,
        "currency": currency,
    }


def test_the_same_idempotency_key_charges_once(
    stripe_client: FlaskClient, localstripe: LocalStripe, reader_token: tuple[int, str]
) -> None:
    reader_id, token = reader_token
    body = {
        "amount": 500,
        "currency": "usd",
        "payment_method": card_payment_method(localstripe.base),
    }
    headers = {**bearer(token), "Idempotency-Key": "topup-7f3a"}
    before = payment_intent_count(localstripe.base)

    first = stripe_client.post(TOPUPS, json=body, headers=headers)
    second = stripe_client.post(TOPUPS, json=body, headers=headers)

    assert first.status_code == 201, first.json
    assert second.status_code == 201, second.json
    assert second.json["topup"]["id"] == first.json["topup"]["id"]
    assert second.json["topup"]["status"] == "succeeded"
    assert payment_intent_count(localstripe.base) == before + 1
    assert wallet_of(stripe_client, token)["balance"]["amount"] == 500
    assert [e.amount for e in topup_entries(reader_id)] == [500]

    reused = stripe_client.post(TOPUPS, json={**body, "amount": 700}, headers=headers)

    assert reused.status_code == 409, reused.json
    assert reused.json["error"]["code"] == "idempotency_key_reused"
    assert payment_intent_count(localstripe.base) == before + 1
    assert wallet_of(stripe_client, token)["balance"]["amount"] == 500


def test_idempotency_keys_belong_to_one_reader(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    tokens = [make_token(make_user()), make_token(make_user())]
    ids = []
    for token in tokens:
        response = card_top_up(
            stripe_client, localstripe.base, token, headers={"Idempotency-Key": "shared-key"}
        )
        assert response.status_code == 201, response.json
        ids.append(response.json["topup"]["id"])
    assert ids[0] != ids[1]
    for token in tokens:
        assert wallet_of(stripe_client, token)["balance"]["amount"] == 500


def test_an_overlong_idempotency_key_is_refused(
    stripe_client: FlaskClient, localstripe: LocalStripe, reader_token: tuple[int, str]
) -> None:
    _reader_id, token = reader_token
    before = payment_intent_count(localstripe.base)
    response = stripe_client.post(
        TOPUPS,
        json={"amount": 500, "currency": "usd"},
        headers={**bearer(token), "Idempotency-Key": "k" * 256},
    )
    assert response.status_code == 422
    assert "Idempotency-Key" in response.json["error"]["fields"]
    assert payment_intent_count(localstripe.base) == before


def test_buy_completes_the_purchase_once_the_top_up_is_credited(
    stripe_client: FlaskClient, localstripe: LocalStripe, reader_token: tuple[int, str]
) -> None:
    reader_id, token = reader_token
    article = make_article(price=39, body="Bought in the same click.")
    assert (
        stripe_client.get(f"/api/v1/articles/{article.slug}", headers=bearer(token)).status_code
        == 402
    )

    response = card_top_up(stripe_client, localstripe.base, token, buy=article.slug)

    assert response.status_code == 201, response.json
    assert response.json["topup"]["status"] == "succeeded"
    assert response.json["topup"]["buy"] == article.slug
    full = stripe_client.get(f"/api/v1/articles/{article.slug}", headers=bearer(token))
    assert full.status_code == 200
    assert "Bought in the same click." in full.json["body_html"]
    assert wallet_of(stripe_client, token)["balance"]["amount"] == 461
    purchase = db.session.scalars(select(Purchase).where(Purchase.user_id == reader_id)).one()
    assert (purchase.article_id, purchase.amount) == (article.id, 39)
    pi = stripe_api(localstripe.base).v1.payment_intents.retrieve(response.json["topup"]["id"])
    assert pi.metadata["dispatch_article"] == article.slug
    status = stripe_client.get(f"{TOPUPS}/{response.json['topup']['id']}", headers=bearer(token))
    assert status.status_code == 200
    assert status.json["purchased"] is True


@pytest.mark.parametrize("what", ["draft", "other_currency", "unknown"])
def test_buy_must_name_a_published_article_in_the_top_up_currency(
    stripe_client: FlaskClient,
    localstripe: LocalStripe,
    reader_token: tuple[int, str],
    what: str,
) -> None:
    _reader_id, token = reader_token
    slug = {
        "draft": lambda: make_article(price=39, published=False).slug,
        "other_currency": lambda: make_article(price=39, currency="gbp").slug,
        "unknown": lambda: "no-such-dispatch",
    }[what]()
    before = payment_intent_count(localstripe.base)

    response = card_top_up(stripe_client, localstripe.base, token, buy=slug, status=422)

    assert response.status_code == 422, response.json
    assert "buy" in response.json["error"]["fields"]
    assert payment_intent_count(localstripe.base) == before
    assert wallet_of(stripe_client, token)["balance"]["amount"] == 0


def test_a_card_that_needs_3ds_waits_for_the_browser(
    stripe_client: FlaskClient, localstripe: LocalStripe, reader_token: tuple[int, str]
) -> None:
    reader_id, token = reader_token
    article = make_article(price=39)
    response = card_top_up(stripe_client, localstripe.base, token, card=CARD_3DS, buy=article.slug)

    assert response.status_code == 201, response.json
    topup = response.json["topup"]
    assert topup["status"] == "requires_action"
    assert topup["client_secret"].startswith(f"{topup['id']}_secret_")
    assert wallet_of(stripe_client, token)["balance"]["amount"] == 0
    assert topup_entries(reader_id) == []
    waiting = stripe_client.get(f"{TOPUPS}/{topup['id']}", headers=bearer(token))
    assert waiting.json["topup"]["status"] == "requires_action"
    assert waiting.json["purchased"] is False

    # Stripe.js finishes the authentication; the page then polls the top-up.
    stripe_api(localstripe.base).raw_request(
        "post",
        f"/v1/payment_intents/{topup['id']}/_authenticate",
        client_secret=topup["client_secret"],
        success="true",
    )

    # The page polls; Stripe is asked again once the last question is a few seconds old.
    def poll() -> Any:
        return stripe_client.get(f"{TOPUPS}/{topup['id']}", headers=bearer(token))

    assert wait_until(
        lambda: poll().json["topup"]["status"] == "succeeded", timeout=10, interval=0.5
    )
    done = poll()

    assert done.status_code == 200
    assert done.json["topup"]["status"] == "succeeded"
    assert done.json["purchased"] is True
    assert wallet_of(stripe_client, token)["balance"]["amount"] == 461
    again = stripe_client.get(f"{TOPUPS}/{topup['id']}", headers=bearer(token))
    assert again.json["topup"]["status"] == "succeeded"
    assert wallet_of(stripe_client, token)["balance"]["amount"] == 461
    assert [e.amount for e in topup_entries(reader_id)] == [500]


def test_a_top_up_without_a_payment_method_is_left_for_stripe_js(
    stripe_client: FlaskClient, localstripe: LocalStripe, reader_token: tuple[int, str]
) -> None:
    _reader_id, token = reader_token
    response = stripe_client.post(
        TOPUPS, json={"amount": 500, "currency": "usd"}, headers=bearer(token)
    )
    assert response.status_code == 201, response.json
    assert response.json["topup"]["status"] == "requires_payment_method"
    assert response.json["topup"]["client_secret"]
    assert wallet_of(stripe_client, token)["balance"]["amount"] == 0


def test_other_readers_cannot_see_a_top_up(
    stripe_client: FlaskClient, localstripe: LocalStripe, reader_token: tuple[int, str]
) -> None:
    _reader_id, token = reader_token
    response = card_top_up(stripe_client, localstripe.base, token)
    other = make_token(make_user())
    peek = stripe_client.get(f"{TOPUPS}/{response.json['topup']['id']}", headers=bearer(other))
    assert peek.status_code == 404


def test_top_ups_need_authentication(stripe_client: FlaskClient) -> None:
    response = stripe_client.post(TOPUPS, json={"amount": 500, "currency": "usd"})
    assert response.status_code == 401
    assert db.session.scalar(select(func.count(TopUp.id))) == 0


def test_without_stripe_keys_top_ups_are_disabled(client: FlaskClient) -> None:
    token = make_token(make_user())
    response = client.post(
        TOPUPS,
        json={"amount": 500, "currency": "usd", "payment_method": "pm_card_visa"},
        headers=bearer(token),
    )
    assert response.status_code == 503
    assert response.json["error"]["code"] == "payments_disabled"
    assert db.session.scalar(select(func.count(TopUp.id))) == 0
    assert wallet_of(client, token)["balance"]["amount"] == 0


def test_a_declined_top_up_replayed_with_its_key_is_still_declined(
    stripe_client: FlaskClient, localstripe: LocalStripe, reader_token: tuple[int, str]
) -> None:
    _reader_id, token = reader_token
    body = {
        "amount": 500,
        "currency": "usd",
        "payment_method": card_payment_method(localstripe.base, CARD_DECLINED),
    }
    headers = {**bearer(token), "Idempotency-Key": "declined-once"}
    first = stripe_client.post(TOPUPS, json=body, headers=headers)
    before = payment_intent_count(localstripe.base)

    again = stripe_client.post(TOPUPS, json=body, headers=headers)

    assert first.status_code == 402
    assert again.status_code == 402, again.json
    assert again.json["error"]["code"] == "card_declined"
    assert payment_intent_count(localstripe.base) == before
    assert wallet_of(stripe_client, token)["balance"]["amount"] == 0


def test_topup_then_one_click_purchase(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    article = make_article(price=39)
    token = make_token(make_user())
    response = card_top_up(stripe_client, localstripe.base, token)
    assert response.json["topup"]["status"] == "succeeded"
    assert response.json["topup"]["id"].startswith("pi_")
    bought = stripe_client.post(f"/api/v1/articles/{article.slug}/purchase", headers=bearer(token))
    assert bought.status_code == 201
    assert bought.json["wallet"]["balance"] == {"amount": 461, "currency": "usd"}
