"""Saved cards (PUT/GET/DELETE /api/v1/wallet/card) and auto top-up, against localstripe.

localstripe serves Customers, SetupIntents and off-session PaymentIntents; what it lacks
(it attaches nothing when a SetupIntent is confirmed) is noted where a test works
around it.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from dispatch_pay.wallet.audit import audit
from models import (
    ENTRY_TOPUP,
    LedgerEntry,
    OutboxMessage,
    Purchase,
    StripeCustomer,
    TopUp,
    User,
    Wallet,
    db,
)
from tests.support.factories import PASSWORD, bearer, make_article, make_token, make_user
from tests.support.servers import LocalStripe
from tests.support.stripe_helpers import (
    CARD_3DS,
    CARD_DECLINED,
    card_payment_method,
    event,
    finish_setup,
    save_card,
    signed,
    stripe_intent_of,
)
from tests.support.stripe_helpers import stripe_client as stripe_api
from tests.support.web import assert_error

CARD = "/api/v1/wallet/card"
SETTINGS = "/api/v1/wallet/settings"
# Declined when a SetupIntent is confirmed (localstripe's `_attaching_is_declined`).
CARD_SETUP_DECLINED = "4000000000000002"


def usd(amount: int) -> dict[str, Any]:
    return {"amount": amount, "currency": "usd"}


def auto(below: int = 0, amount: int = 500, limit: int = 2000) -> dict[str, Any]:
    return {"below": usd(below), "amount": usd(amount), "monthly_limit": usd(limit)}


@pytest.fixture()
def reader() -> tuple[User, str]:
    user = make_user()
    return user, make_token(user)


def set_auto(client: FlaskClient, token: str, **kwargs: int) -> dict[str, Any]:
    response = client.put(SETTINGS, json={"auto_topup": auto(**kwargs)}, headers=bearer(token))
    assert response.status_code == 200, response.json
    body: dict[str, Any] = response.json
    return body


def purchase(client: FlaskClient, token: str, slug: str) -> Any:
    return client.post(f"/api/v1/articles/{slug}/purchase", headers=bearer(token))


def topups_of(user: User) -> list[TopUp]:
    db.session.expire_all()
    return list(db.session.scalars(select(TopUp).where(TopUp.user_id == user.id)))


def balance(user: User) -> int:
    db.session.expire_all()
    wallet = db.session.scalar(select(Wallet).where(Wallet.user_id == user.id))
    return wallet.balance if wallet else 0


def credits_of(pi_id: str) -> list[int]:
    return list(
        db.session.scalars(
            select(LedgerEntry.amount).where(
                LedgerEntry.kind == ENTRY_TOPUP, LedgerEntry.reference == pi_id
            )
        )
    )


# --- settings: bad input is a 422 naming the field ---------------------------------------


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({**auto(), "below": usd(-1)}, "below"),
        ({**auto(), "monthly_limit": usd(-500)}, "monthly_limit"),
        ({**auto(), "amount": usd(-500)}, "amount"),
        ({**auto(), "below": {"amount": 100, "currency": "eur"}}, "below"),
        ({**auto(), "monthly_limit": {"amount": 2000, "currency": "gbp"}}, "monthly_limit"),
        ({**auto(), "below": {"amount": 100, "currency": "xyz"}}, "below"),
        (auto(below=3000, limit=2000), "below"),
        (auto(amount=30), "amount"),
        (auto(amount=49), "amount"),
        (auto(amount=1000, limit=500), "monthly_limit"),
        ({"below": usd(0), "amount": usd(500)}, "monthly_limit"),
    ],
)
def test_bad_auto_topup_settings_are_422_naming_the_field(
    client: FlaskClient, reader: tuple[User, str], value: dict[str, Any], field: str
) -> None:
    _user, token = reader
    body = assert_error(
        client.put(SETTINGS, json={"auto_topup": value}, headers=bearer(token)), 422
    )
    assert field in body["error"]["fields"]["auto_topup"], body
    settings = client.get(SETTINGS, headers=bearer(token)).json
    assert settings["auto_topup"] is None


def test_auto_topup_settings_are_shown_and_removable(
    client: FlaskClient, reader: tuple[User, str]
) -> None:
    _user, token = reader
    body = set_auto(client, token, below=100, amount=500, limit=2000)
    assert body["auto_topup"] == {
        "below": usd(100),
        "amount": usd(500),
        "monthly_limit": usd(2000),
        "topped_up_this_month": usd(0),
        "active": True,
        "disabled_reason": None,
    }
    assert body["daily_cap"] is None
    off = client.put(SETTINGS, json={"auto_topup": None}, headers=bearer(token))
    assert off.status_code == 200 and off.json["auto_topup"] is None


# --- the saved card ----------------------------------------------------------------------


def test_a_card_is_saved_shown_and_detached_at_stripe(
    stripe_client: FlaskClient, localstripe: LocalStripe, reader: tuple[User, str]
) -> None:
    user, token = reader
    assert stripe_client.get(CARD, headers=bearer(token)).json == {"card": None}
    payment_method = save_card(stripe_client, localstripe.base, token)
    assert stripe_client.get(CARD, headers=bearer(token)).json == {
        "card": {"brand": "visa", "last4": "4242"}
    }
    row = db.session.get(StripeCustomer, user.id)
    assert row is not None and row.payment_method_id == payment_method
    api = stripe_api(localstripe.base)
    customer = api.v1.customers.retrieve(row.customer_id)
    assert customer.metadata["dispatch_reader"] == str(user.id)
    # Real Stripe attaches the card when the SetupIntent is confirmed; localstripe does
    # not, so the test attaches it as Stripe would have, to see DELETE take it off.
    api.v1.payment_methods.attach(payment_method, params={"customer": row.customer_id})

    response = stripe_client.delete(CARD, headers=bearer(token))

    assert response.status_code == 200 and response.json == {"card": None}
    assert api.v1.payment_methods.retrieve(payment_method).customer is None
    assert stripe_client.get(CARD, headers=bearer(token)).json == {"card": None}


def test_deleting_the_account_detaches_the_saved_card_at_stripe(
    stripe_client: FlaskClient, localstripe: LocalStripe, reader: tuple[User, str]
) -> None:
    user, token = reader
    payment_method = save_card(stripe_client, localstripe.base, token)
    row = db.session.get(StripeCustomer, user.id)
    assert row is not None
    api = stripe_api(localstripe.base)
    api.v1.payment_methods.attach(payment_method, params={"customer": row.customer_id})

    response = stripe_client.delete(
        "/api/v1/me", headers=bearer(token), json={"password": PASSWORD}
    )

    assert response.status_code == 200, response.get_data(as_text=True)
    assert api.v1.payment_methods.retrieve(payment_method).customer is None
    row = db.session.get(StripeCustomer, user.id)
    assert row is None or row.payment_method_id is None


def test_a_declined_card_is_402_and_nothing_is_saved(
    stripe_client: FlaskClient, localstripe: LocalStripe, reader: tuple[User, str]
) -> None:
    _user, token = reader
    payment_method = card_payment_method(localstripe.base, CARD_SETUP_DECLINED)
    response = stripe_client.put(
        CARD, json={"payment_method": payment_method}, headers=bearer(token)
    )
    assert_error(response, 402, "card_declined")
    assert stripe_client.get(CARD, headers=bearer(token)).json == {"card": None}


def test_a_card_that_asks_for_3d_secure_is_saved_once_the_reader_confirms(
    stripe_client: FlaskClient, localstripe: LocalStripe, reader: tuple[User, str]
) -> None:
    _user, token = reader
    payment_method = card_payment_method(localstripe.base, CARD_3DS)
    first = stripe_client.put(CARD, json={"payment_method": payment_method}, headers=bearer(token))
    body = assert_error(first, 402, "requires_action")
    setup = body["setup_intent"]
    assert setup["client_secret"].startswith(setup["id"] + "_secret_")
    assert stripe_client.get(CARD, headers=bearer(token)).json == {"card": None}

    finish_setup(localstripe.base, setup)
    again = stripe_client.put(CARD, json={"payment_method": payment_method}, headers=bearer(token))

    assert again.status_code == 200, again.json
    assert again.json == {"card": {"brand": "visa", "last4": "3155"}}


def test_no_reader_can_use_another_readers_saved_card(
    stripe_client: FlaskClient, localstripe: LocalStripe, reader: tuple[User, str]
) -> None:
    _user, token = reader
    payment_method = save_card(stripe_client, localstripe.base, token)
    other = make_user()
    other_token = make_token(other)

    saving = stripe_client.put(
        CARD, json={"payment_method": payment_method}, headers=bearer(other_token)
    )
    topping_up = stripe_client.post(
        "/api/v1/wallet/topups",
        json={"amount": 500, "currency": "usd", "payment_method": payment_method},
        headers=bearer(other_token),
    )

    assert_error(saving, 402, "payment_rejected")
    assert_error(topping_up, 402, "payment_rejected")
    assert topups_of(other) == []
    assert balance(other) == 0


def test_top_ups_of_a_reader_with_a_customer_are_made_on_it(
    stripe_client: FlaskClient, localstripe: LocalStripe, reader: tuple[User, str]
) -> None:
    user, token = reader
    save_card(stripe_client, localstripe.base, token)
    response = stripe_client.post(
        "/api/v1/wallet/topups",
        json={
            "amount": 500,
            "currency": "usd",
            "payment_method": card_payment_method(localstripe.base),
        },
        headers=bearer(token),
    )
    assert response.status_code == 201, response.json
    row = db.session.get(StripeCustomer, user.id)
    assert row is not None
    assert stripe_intent_of(localstripe.base, response.json["topup"]["id"])["customer"] == (
        row.customer_id
    )


# --- auto top-up -------------------------------------------------------------------------


def test_auto_topup_completes_the_purchase_and_the_webhook_credits_nothing_more(
    stripe_client: FlaskClient, localstripe: LocalStripe, reader: tuple[User, str]
) -> None:
    user, token = reader
    save_card(stripe_client, localstripe.base, token)
    set_auto(stripe_client, token, amount=500, limit=2000)
    article = make_article(price=39)

    response = purchase(stripe_client, token, article.slug)

    assert response.status_code == 201, response.json
    assert response.json["wallet"]["balance"] == usd(461)
    (topup,) = topups_of(user)
    assert (topup.auto, topup.status, topup.amount) == (True, "succeeded", 500)
    assert topup.payment_intent_id is not None
    intent = stripe_intent_of(localstripe.base, topup.payment_intent_id)
    assert intent["metadata"]["dispatch_ref"] == topup.reference
    assert intent["customer"] == db.session.get(StripeCustomer, user.id).customer_id  # type: ignore[union-attr]
    assert credits_of(topup.payment_intent_id) == [500]

    payload, headers = signed(event("payment_intent.succeeded", intent))
    webhook = stripe_client.post("/webhooks/stripe", data=payload, headers=headers)

    assert webhook.status_code == 200 and webhook.json["outcome"] == "already_credited"
    assert credits_of(topup.payment_intent_id) == [500]
    assert balance(user) == 461
    settings = stripe_client.get(SETTINGS, headers=bearer(token)).json
    assert settings["auto_topup"]["topped_up_this_month"] == usd(500)
    assert audit() == []


def test_auto_topup_leaves_at_least_below_after_the_purchase(
    stripe_client: FlaskClient, localstripe: LocalStripe, reader: tuple[User, str]
) -> None:
    user, token = reader
    save_card(stripe_client, localstripe.base, token)
    set_auto(stripe_client, token, below=100, amount=500, limit=2000)
    article = make_article(price=550)

    response = purchase(stripe_client, token, article.slug)

    assert response.status_code == 201, response.json
    assert [t.amount for t in topups_of(user)] == [650]
    assert balance(user) == 100


def test_a_declined_auto_topup_switches_it_off_mails_the_reader_and_charges_nothing(
    stripe_client: FlaskClient, localstripe: LocalStripe, reader: tuple[User, str]
) -> None:
    user, token = reader
    save_card(stripe_client, localstripe.base, token, CARD_DECLINED)
    set_auto(stripe_client, token)
    article = make_article(price=39)

    body = assert_error(purchase(stripe_client, token, article.slug), 402, "insufficient_funds")

    assert body["auto_topup"]["status"] == "card_declined"
    assert body["auto_topup"]["wallet_url"].endswith("/wallet")
    assert "offer" in body and "topup" in body
    (topup,) = topups_of(user)
    assert (topup.status, topup.credited_at) == ("failed", None)
    assert balance(user) == 0
    assert db.session.scalar(select(Purchase).where(Purchase.user_id == user.id)) is None
    settings = stripe_client.get(SETTINGS, headers=bearer(token)).json["auto_topup"]
    assert (settings["active"], settings["disabled_reason"]) == (False, "card_declined")
    mails = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.kind == "auto_topup_declined")
    ).all()
    assert [m.to_address for m in mails] == [user.email]
    assert "3-D" not in mails[0].text_body and "/wallet" in mails[0].text_body

    # Switched off: the next purchase tries no card at all.
    again = assert_error(purchase(stripe_client, token, article.slug), 402, "insufficient_funds")
    assert "auto_topup" not in again
    assert len(topups_of(user)) == 1
    # Setting it again switches it back on.
    assert set_auto(stripe_client, token)["auto_topup"]["active"] is True
    assert audit() == []


def test_a_card_that_needs_the_reader_is_not_charged_and_the_purchase_is_402(
    stripe_client: FlaskClient, localstripe: LocalStripe, reader: tuple[User, str]
) -> None:
    user, token = reader
    payment_method = card_payment_method(localstripe.base, CARD_3DS)
    first = stripe_client.put(CARD, json={"payment_method": payment_method}, headers=bearer(token))
    finish_setup(localstripe.base, first.json["setup_intent"])
    assert (
        stripe_client.put(
            CARD, json={"payment_method": payment_method}, headers=bearer(token)
        ).status_code
        == 200
    )
    set_auto(stripe_client, token)
    article = make_article(price=39)

    body = assert_error(purchase(stripe_client, token, article.slug), 402, "insufficient_funds")

    assert body["auto_topup"]["status"] == "requires_action"
    assert "wallet" in body["error"]["message"]
    (topup,) = topups_of(user)
    assert (topup.status, topup.failure_code) == ("failed", "authentication_required")
    assert topup.payment_intent_id is not None
    assert stripe_intent_of(localstripe.base, topup.payment_intent_id)["status"] == "canceled"
    assert balance(user) == 0
    settings = stripe_client.get(SETTINGS, headers=bearer(token)).json["auto_topup"]
    assert settings["active"] is True
    assert settings["topped_up_this_month"] == usd(0)
    assert audit() == []


def test_the_monthly_limit_stops_auto_topups(
    stripe_client: FlaskClient, localstripe: LocalStripe, reader: tuple[User, str]
) -> None:
    user, token = reader
    save_card(stripe_client, localstripe.base, token)
    set_auto(stripe_client, token, amount=500, limit=1000)
    first, second, third = (make_article(price=400) for _ in range(3))

    assert purchase(stripe_client, token, first.slug).status_code == 201  # 500 in, 100 left
    assert purchase(stripe_client, token, second.slug).status_code == 201  # 500 in, 200 left
    body = assert_error(purchase(stripe_client, token, third.slug), 402, "insufficient_funds")

    assert body["auto_topup"]["status"] == "monthly_limit_reached"
    assert [t.amount for t in topups_of(user)] == [500, 500]
    assert balance(user) == 200
    assert audit() == []


def test_agent_tokens_buy_through_auto_topup_within_their_budget(
    stripe_client: FlaskClient, localstripe: LocalStripe, reader: tuple[User, str]
) -> None:
    user, token = reader
    save_card(stripe_client, localstripe.base, token)
    set_auto(stripe_client, token)
    created = stripe_client.post(
        "/api/v1/agent-tokens",
        json={"name": "bot", "max_price": usd(100), "daily_limit": usd(100)},
        headers=bearer(token),
    )
    agent = created.json["token"]
    cheap, dear = make_article(price=39), make_article(price=200)

    assert purchase(stripe_client, agent, cheap.slug).status_code == 201
    assert_error(purchase(stripe_client, agent, dear.slug), 402, "budget_exceeded")
    assert [t.amount for t in topups_of(user)] == [500]
    # Agent tokens cannot touch the card or the settings.
    assert stripe_client.get(CARD, headers=bearer(agent)).status_code == 403
    assert (
        stripe_client.put(SETTINGS, json={"auto_topup": None}, headers=bearer(agent)).status_code
        == 403
    )


def test_a_new_card_replaces_the_saved_one_which_is_detached_at_stripe(
    stripe_client: FlaskClient, localstripe: LocalStripe, reader: tuple[User, str]
) -> None:
    user, token = reader
    first = save_card(stripe_client, localstripe.base, token)
    row = db.session.get(StripeCustomer, user.id)
    assert row is not None
    api = stripe_api(localstripe.base)
    # As real Stripe would have on confirming the SetupIntent (localstripe does not).
    api.v1.payment_methods.attach(first, params={"customer": row.customer_id})

    second = save_card(stripe_client, localstripe.base, token, CARD_3DS)

    db.session.expire_all()
    assert db.session.get(StripeCustomer, user.id).payment_method_id == second  # type: ignore[union-attr]
    assert api.v1.payment_methods.retrieve(first).customer is None
    assert stripe_client.get(CARD, headers=bearer(token)).json == {
        "card": {"brand": "visa", "last4": "3155"}
    }
