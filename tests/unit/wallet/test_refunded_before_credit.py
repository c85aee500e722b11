"""A top-up that Stripe refunded or that was disputed before the app credited it
(issue 11, item 2): the card got the money back, so the wallet must not keep it.

The app made the top-up; it succeeded in Stripe without the app hearing (3-D Secure,
authenticated in Stripe). Then the charge is refunded. The refund event may reach the app
while Stripe is unreachable: the app must then answer 503 so that Stripe delivers it
again, never 200 with the event dropped. `reconcile` and every other credit path look at
the charge's `amount_refunded` and `disputed` before crediting.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select

from dispatch_pay.wallet.audit import audit
from models import ENTRY_TOPUP, LedgerEntry, WebhookEvent, db
from tests.support.factories import bearer, make_token, reader_with_own_id
from tests.support.faults import CUT, FORWARD, FaultyStripe, faulty_stripe, stripe_fault_app
from tests.support.stripe_helpers import (
    dispute_obj,
    event,
    signed,
    stripe_charge_of,
    unheard_top_up,
)
from tests.support.stripe_helpers import stripe_client as stripe_api

__all__ = ["faulty_stripe"]  # a fixture: pytest finds it as an attribute of this module

# localstripe outlives each test while SQLite reuses the ids of rolled-back rows.
_reader_ids = itertools.count(11_200_000)


@pytest.fixture()
def stripe_app_behind_proxy(
    backend: tuple[str, Engine],
    faulty_stripe: FaultyStripe,
    app: Flask,  # the session's app first: it sets up the shared rate limiter
    db_connection: Any,
) -> Iterator[Flask]:
    own = stripe_fault_app(backend, faulty_stripe, retries=0)
    faulty_stripe.proxy.set_mode(FORWARD)
    with own.app_context():
        yield own
    faulty_stripe.proxy.set_mode(FORWARD)


@pytest.fixture()
def client(stripe_app_behind_proxy: Flask) -> FlaskClient:
    return stripe_app_behind_proxy.test_client()


def new_reader_token() -> str:
    user = reader_with_own_id(_reader_ids)
    return make_token(user)


def post_event(client: FlaskClient, evt: dict[str, Any]) -> Any:
    payload, headers = signed(evt)
    return client.post("/webhooks/stripe", data=payload, headers=headers)


def balance(client: FlaskClient, token: str) -> int:
    return int(client.get("/api/v1/wallet", headers=bearer(token)).json["balance"]["amount"])


def stored_events() -> int:
    return int(db.session.scalar(select(func.count(WebhookEvent.id))) or 0)


def credits(pi_id: str) -> list[int]:
    return list(
        db.session.scalars(
            select(LedgerEntry.amount).where(
                LedgerEntry.kind == ENTRY_TOPUP, LedgerEntry.payment_intent_id == pi_id
            )
        )
    )


def reconcile(app: Flask) -> str:
    result = app.test_cli_runner().invoke(args=["reconcile"])
    assert result.exit_code == 0, result.output
    return str(result.output)


def test_a_refund_event_while_stripe_is_unreachable_is_a_503_and_counts_when_redelivered(
    stripe_app_behind_proxy: Flask, client: FlaskClient, faulty_stripe: FaultyStripe
) -> None:
    token = new_reader_token()
    pi_id = unheard_top_up(client, faulty_stripe.server.base, token)
    stripe_api(faulty_stripe.server.base).v1.refunds.create(params={"payment_intent": pi_id})
    charge = stripe_charge_of(faulty_stripe.server.base, pi_id)
    assert charge["amount_refunded"] == 500
    refund_event = event("charge.refunded", charge)
    events_before = stored_events()

    faulty_stripe.proxy.set_mode(CUT)
    try:
        response = post_event(client, refund_event)
    finally:
        faulty_stripe.proxy.set_mode(FORWARD)

    # Stripe retries a 5xx; a 200 would drop the refund for good.
    assert response.status_code == 503, response.json
    assert stored_events() == events_before  # not stored: the redelivery is not a duplicate
    assert balance(client, token) == 0

    redelivered = post_event(client, refund_event)
    assert redelivered.status_code == 200, redelivered.json
    assert balance(client, token) == 0
    reconcile(stripe_app_behind_proxy)
    assert balance(client, token) == 0
    assert audit() == []


def test_reconcile_does_not_credit_what_the_card_got_back(
    stripe_app_behind_proxy: Flask, client: FlaskClient, faulty_stripe: FaultyStripe
) -> None:
    """The refund event was lost (or answered 200 `ignored` by an older release): the
    reconcile that finds the succeeded top-up must see that its charge was refunded."""
    token = new_reader_token()
    pi_id = unheard_top_up(client, faulty_stripe.server.base, token, amount=700)
    stripe_api(faulty_stripe.server.base).v1.refunds.create(
        params={"payment_intent": pi_id, "amount": 300}
    )

    reconcile(stripe_app_behind_proxy)

    assert balance(client, token) == 400
    reconcile(stripe_app_behind_proxy)
    assert balance(client, token) == 400
    assert audit() == []


def test_a_fully_refunded_top_up_found_by_reconcile_leaves_nothing_in_the_wallet(
    stripe_app_behind_proxy: Flask, client: FlaskClient, faulty_stripe: FaultyStripe
) -> None:
    token = new_reader_token()
    pi_id = unheard_top_up(client, faulty_stripe.server.base, token)
    stripe_api(faulty_stripe.server.base).v1.refunds.create(params={"payment_intent": pi_id})

    reconcile(stripe_app_behind_proxy)

    assert balance(client, token) == 0
    assert audit() == []


def test_a_poll_of_a_refunded_top_up_does_not_credit_it(
    client: FlaskClient, faulty_stripe: FaultyStripe
) -> None:
    token = new_reader_token()
    pi_id = unheard_top_up(client, faulty_stripe.server.base, token)
    stripe_api(faulty_stripe.server.base).v1.refunds.create(params={"payment_intent": pi_id})

    polled = client.get(f"/api/v1/wallet/topups/{pi_id}", headers=bearer(token))

    assert polled.status_code == 200
    assert balance(client, token) == 0
    assert audit() == []


@pytest.mark.parametrize("kind", ["created", "closed"])
def test_a_dispute_event_while_stripe_is_unreachable_is_a_503(
    client: FlaskClient, faulty_stripe: FaultyStripe, kind: str
) -> None:
    token = new_reader_token()
    pi_id = unheard_top_up(client, faulty_stripe.server.base, token)
    charge = stripe_charge_of(faulty_stripe.server.base, pi_id)
    status = "needs_response" if kind == "created" else "lost"
    dispute = event(
        f"charge.dispute.{kind}", dispute_obj(f"dp_{pi_id}", pi_id, 500, status, charge["id"])
    )
    events_before = stored_events()

    faulty_stripe.proxy.set_mode(CUT)
    try:
        response = post_event(client, dispute)
    finally:
        faulty_stripe.proxy.set_mode(FORWARD)

    assert response.status_code == 503, response.json
    assert stored_events() == events_before
    assert balance(client, token) == 0
    assert post_event(client, dispute).status_code == 200
    wallet = client.get("/api/v1/wallet", headers=bearer(token)).json
    if kind == "created":  # open: the reader cannot spend it; lost: it is taken back
        assert wallet["status"] == "frozen"
    else:
        assert wallet["balance"]["amount"] == 0
    assert audit() == []
