"""Validly signed events that must not credit anything (issue 11, items 3 and 13).

A top-up is credited only to the reader who made it, only for a positive amount within
the top-up limits that matches the top-up, and only for a PaymentIntent that carries the
top-up's own `dispatch_ref`. Anything else is stored, acknowledged (200, never a 500:
Stripe would retry that for days) and reported by `audit`. An event whose `livemode`
differs from the key's mode is ignored.

The events are built from real PaymentIntents the app made in localstripe (a 3-D Secure
top-up, so that the app knows the PaymentIntent and it is still pending) and then edited.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from dispatch_pay.wallet.audit import audit
from models import LedgerEntry, TopUp, WebhookEvent, db
from tests.support.factories import bearer, make_token, reader_with_own_id
from tests.support.servers import LocalStripe
from tests.support.stripe_helpers import (
    event,
    pending_top_up,
    signed,
    stripe_intent_of,
)

_reader_ids = itertools.count(11_300_000)


def new_reader() -> tuple[int, str]:
    user = reader_with_own_id(_reader_ids)
    return user.id, make_token(user)


def succeeded_as_stripe_sends_it(base: str, pi_id: str, **changes: Any) -> dict[str, Any]:
    obj = {**stripe_intent_of(base, pi_id), "status": "succeeded", **changes}
    return obj


def reader_with_success(
    client: FlaskClient, base: str, **changes: Any
) -> tuple[str, str, dict[str, Any]]:
    """A new reader's pending top-up and its success as Stripe would send it (`changes`
    edited in): the reader's token, the PaymentIntent id and the PaymentIntent."""
    _reader_id, token = new_reader()
    pi_id = pending_top_up(client, base, token)
    return token, pi_id, succeeded_as_stripe_sends_it(base, pi_id, **changes)


def stored_events() -> int:
    return int(db.session.scalar(select(func.count(WebhookEvent.id))) or 0)


def post(client: FlaskClient, evt: dict[str, Any]) -> Any:
    payload, headers = signed(evt)
    return client.post("/webhooks/stripe", data=payload, headers=headers)


def balance(client: FlaskClient, token: str) -> int:
    return int(client.get("/api/v1/wallet", headers=bearer(token)).json["balance"]["amount"])


def ledger_entries() -> int:
    return int(db.session.scalar(select(func.count(LedgerEntry.id))) or 0)


def topup_status(pi_id: str) -> str | None:
    return db.session.scalar(select(TopUp.status).where(TopUp.payment_intent_id == pi_id))


def assert_acknowledged_uncredited_and_reported(response: Any, entries_before: int) -> None:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert ledger_entries() == entries_before
    problems = audit()
    assert problems, "audit must report an event it refused to credit"


def test_a_success_naming_another_reader_credits_nobody(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    _a_id, a_token = new_reader()
    b_id, b_token = new_reader()
    pi_id = pending_top_up(stripe_client, localstripe.base, a_token)
    obj = succeeded_as_stripe_sends_it(localstripe.base, pi_id)
    obj["metadata"] = {**obj["metadata"], "dispatch_reader": str(b_id)}
    before = ledger_entries()

    response = post(stripe_client, event("payment_intent.succeeded", obj))

    assert_acknowledged_uncredited_and_reported(response, before)
    assert balance(stripe_client, b_token) == 0
    assert balance(stripe_client, a_token) == 0
    assert topup_status(pi_id) == "requires_action"


def test_a_success_naming_another_reader_without_a_reference_credits_nobody(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    _a_id, a_token = new_reader()
    b_id, b_token = new_reader()
    pi_id = pending_top_up(stripe_client, localstripe.base, a_token)
    obj = succeeded_as_stripe_sends_it(localstripe.base, pi_id)
    obj["metadata"] = {"dispatch_reader": str(b_id), "dispatch_purpose": "wallet_topup"}

    response = post(stripe_client, event("payment_intent.succeeded", obj))

    assert response.status_code == 200
    assert balance(stripe_client, b_token) == 0
    assert balance(stripe_client, a_token) == 0
    assert topup_status(pi_id) == "requires_action"


@pytest.mark.parametrize("amount", [-500, 0, 499, 2**31, 2**63, 10**30])
def test_a_success_for_another_amount_than_the_top_up_credits_nothing(
    stripe_client: FlaskClient, localstripe: LocalStripe, amount: int
) -> None:
    token, pi_id, obj = reader_with_success(stripe_client, localstripe.base, amount=amount)
    before = ledger_entries()

    response = post(stripe_client, event("payment_intent.succeeded", obj))

    assert_acknowledged_uncredited_and_reported(response, before)
    assert balance(stripe_client, token) == 0
    assert topup_status(pi_id) != "succeeded"


def test_a_success_in_another_currency_than_the_top_up_credits_nothing(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    token, _pi_id, obj = reader_with_success(stripe_client, localstripe.base, currency="eur")
    before = ledger_entries()

    response = post(stripe_client, event("payment_intent.succeeded", obj))

    assert_acknowledged_uncredited_and_reported(response, before)
    eur = stripe_client.get("/api/v1/wallet?currency=eur", headers=bearer(token)).json
    assert eur["balance"]["amount"] == 0


def test_a_second_payment_intent_carrying_a_credited_top_ups_reference_credits_nothing(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    token, pi_id, genuine = reader_with_success(stripe_client, localstripe.base)
    assert post(stripe_client, event("payment_intent.succeeded", genuine)).status_code == 200
    assert balance(stripe_client, token) == 500
    before = ledger_entries()

    copy = {**genuine, "id": "pi_copy_of_" + pi_id[3:]}
    response = post(stripe_client, event("payment_intent.succeeded", copy))

    assert_acknowledged_uncredited_and_reported(response, before)
    assert balance(stripe_client, token) == 500


def test_payment_intents_without_our_reference_are_never_credited(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    reader_id, token = new_reader()
    obj = {
        "id": f"pi_no_reference_{reader_id}",
        "object": "payment_intent",
        "amount": 500,
        "currency": "usd",
        "status": "succeeded",
        "livemode": False,
        "latest_charge": f"ch_no_reference_{reader_id}",
        "metadata": {"dispatch_reader": str(reader_id), "dispatch_purpose": "wallet_topup"},
    }

    response = post(stripe_client, event("payment_intent.succeeded", obj))

    assert response.status_code == 200
    assert balance(stripe_client, token) == 0
    assert ledger_entries() == 0


def test_an_event_of_the_other_mode_than_the_key_is_ignored(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    token, _pi_id, obj = reader_with_success(stripe_client, localstripe.base, livemode=True)
    evt = {**event("payment_intent.succeeded", obj), "livemode": True}

    response = post(stripe_client, evt)

    assert response.status_code == 200
    assert response.json["outcome"].startswith("ignored")
    assert balance(stripe_client, token) == 0


def test_a_processing_payment_intent_is_not_credited(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    """Only `succeeded` money is the reader's: a `processing` one may still fail."""
    token, _pi_id, obj = reader_with_success(stripe_client, localstripe.base, status="processing")

    for kind in ("payment_intent.succeeded", "payment_intent.processing"):
        response = post(stripe_client, event(kind, obj))
        assert response.status_code == 200

    assert balance(stripe_client, token) == 0
    assert ledger_entries() == 0


def test_an_overlong_event_id_is_stored_acknowledged_and_reported(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    token, _pi_id, obj = reader_with_success(stripe_client, localstripe.base)
    evt = event("payment_intent.succeeded", obj, event_id="evt_" + "x" * 400)
    stored_before = stored_events()

    response = post(stripe_client, evt)
    again = post(stripe_client, evt)

    assert response.status_code == 200, response.get_data(as_text=True)
    assert again.status_code == 200
    assert db.session.scalar(select(func.count(WebhookEvent.id))) == stored_before + 1
    assert balance(stripe_client, token) == 0
    assert audit()


def test_an_overlong_event_type_is_stored_acknowledged_and_reported(
    stripe_client: FlaskClient,
) -> None:
    stored_before = stored_events()

    response = post(stripe_client, event("payment_intent." + "s" * 200, {"id": "pi_x"}))

    assert response.status_code == 200, response.get_data(as_text=True)
    assert db.session.scalar(select(func.count(WebhookEvent.id))) == stored_before + 1
    assert audit()
