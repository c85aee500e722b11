"""Which top-up a charge or dispute event is about, and when the app asks Stripe.

`ask_behind` runs before the event's transaction: it asks Stripe only when the event
needs it (a refund or dispute of a top-up not credited yet), because every question is a
network round trip and, while Stripe is unreachable, a 503 that makes Stripe deliver the
event again. Written for survivors of `make mutate` on webhooks/services.py
(docs/mutants.md).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import cast

import pytest
from flask.testing import FlaskClient

from dispatch_pay.errors import DomainError
from dispatch_pay.payments.gateway import (
    Charge,
    Event,
    Fee,
    Intent,
    PaymentGateway,
    PaymentProviderUnavailable,
)
from dispatch_pay.wallet.ledger import find_wallet, locked_wallet, post_entry
from dispatch_pay.webhooks.services import HANDLERS, Behind, ask_behind
from models import ENTRY_TOPUP, TopUp, TopUpStatus, db
from tests.support.factories import make_user

_seq = itertools.count(1)


class AskedStripe:
    """A gateway that records every PaymentIntent it is asked about."""

    def __init__(self, down: bool = False) -> None:
        self.asked: list[str] = []
        self.down = down

    def retrieve_intent(self, intent_id: str) -> Intent:
        self.asked.append(intent_id)
        if self.down:
            raise PaymentProviderUnavailable("Stripe is down")
        return Intent(id=intent_id, status=TopUpStatus.SUCCEEDED, amount=500, currency="usd")

    def as_gateway(self) -> PaymentGateway:
        return cast(PaymentGateway, self)


def ids() -> tuple[str, str]:
    n = next(_seq)
    return f"pi_behind_{n}", f"ch_behind_{n}"


def charge_event(event_type: str, pi_id: str, charge_id: str) -> Event:
    charge = {"id": charge_id, "object": "charge", "payment_intent": pi_id, "amount": 500}
    if event_type.startswith("charge.dispute."):
        obj = {"id": f"dp_{charge_id}", "object": "dispute", "amount": 500, "charge": charge}
    else:
        obj = charge
    return Event(
        id=f"evt_{charge_id}_{event_type}",
        type=event_type,
        livemode=False,
        payload={"type": event_type, "data": {"object": obj}},
    )


def credited_top_up(*, payment_intent_id: str | None, charge_id: str | None) -> TopUp:
    topup = TopUp(
        user_id=make_user().id,
        payment_intent_id=payment_intent_id,
        charge_id=charge_id,
        amount=500,
        currency="usd",
        status=TopUpStatus.SUCCEEDED,
        credited_at=datetime.now(UTC),
    )
    db.session.add(topup)
    db.session.commit()
    return topup


@pytest.mark.parametrize("event_type", ["charge.refunded", "charge.dispute.created"])
def test_stripe_is_asked_about_the_charge_of_a_top_up_not_credited_yet(
    client: FlaskClient, event_type: str
) -> None:
    pi_id, charge_id = ids()
    stripe = AskedStripe()
    behind = ask_behind(charge_event(event_type, pi_id, charge_id), stripe.as_gateway())
    assert stripe.asked == [pi_id]
    assert isinstance(behind, Behind) and behind.intent is not None
    assert behind.intent.id == pi_id


@pytest.mark.parametrize("found_by", ["payment_intent", "charge"])
@pytest.mark.parametrize("event_type", ["charge.refunded", "charge.dispute.closed"])
def test_the_charge_of_a_credited_top_up_is_never_asked_about(
    client: FlaskClient, event_type: str, found_by: str
) -> None:
    """The top-up is found by its PaymentIntent, else by the charge id; either way it is
    ours and credited, so Stripe is not asked (and a Stripe outage is no 503)."""
    pi_id, charge_id = ids()
    if found_by == "payment_intent":
        credited_top_up(payment_intent_id=pi_id, charge_id=None)
    else:
        credited_top_up(payment_intent_id=f"{pi_id}_first_attempt", charge_id=charge_id)
    stripe = AskedStripe(down=True)
    assert ask_behind(charge_event(event_type, pi_id, charge_id), stripe.as_gateway()) is None
    assert stripe.asked == []


@pytest.mark.parametrize("event_type", ["charge.succeeded", "charge.updated", "charge.captured"])
def test_fee_events_and_unhandled_charge_events_never_ask_stripe(
    client: FlaskClient, event_type: str
) -> None:
    pi_id, charge_id = ids()  # no top-up: a refund of it would be asked about
    stripe = AskedStripe(down=True)
    assert ask_behind(charge_event(event_type, pi_id, charge_id), stripe.as_gateway()) is None
    assert stripe.asked == []


def test_without_a_gateway_nothing_is_asked(client: FlaskClient) -> None:
    pi_id, charge_id = ids()
    assert ask_behind(charge_event("charge.refunded", pi_id, charge_id), None) is None


def test_stripe_unreachable_is_the_contracts_503(client: FlaskClient) -> None:
    pi_id, charge_id = ids()
    stripe = AskedStripe(down=True)
    with pytest.raises(DomainError) as raised:
        ask_behind(charge_event("charge.refunded", pi_id, charge_id), stripe.as_gateway())
    assert (raised.value.code, raised.value.status) == ("payment_provider_unavailable", 503)
    assert raised.value.message.startswith("Stripe could not be asked")


@pytest.mark.parametrize("found_by", ["payment_intent", "charge"])
def test_a_fee_event_finds_its_top_up_by_payment_intent_or_else_by_charge(
    client: FlaskClient, found_by: str
) -> None:
    pi_id, charge_id = ids()
    if found_by == "payment_intent":
        topup = credited_top_up(payment_intent_id=pi_id, charge_id=None)
    else:
        topup = credited_top_up(payment_intent_id=f"{pi_id}_first_attempt", charge_id=charge_id)
    charge = Charge(id=charge_id, payment_intent_id=pi_id, fee=Fee(amount=45, currency="usd"))
    assert HANDLERS["charge.succeeded"](charge, None) == "fee_recorded"
    db.session.refresh(topup)
    assert (topup.fee, topup.fee_currency) == (45, "usd")


def test_a_refund_of_a_top_up_credited_before_its_charge_was_known_is_debited(
    client: FlaskClient,
) -> None:
    """Credited without a charge id (Stripe had not reported the charge yet): the refund
    event finds the top-up by its PaymentIntent and takes the refunded part back."""
    pi_id, charge_id = ids()
    topup = credited_top_up(payment_intent_id=pi_id, charge_id=None)
    post_entry(
        locked_wallet(topup.user_id, "usd"), ENTRY_TOPUP, 500, pi_id, payment_intent_id=pi_id
    )
    db.session.commit()
    refunded = Charge(id=charge_id, payment_intent_id=pi_id, amount=500, amount_refunded=200)
    assert HANDLERS["charge.refunded"](refunded, None) == "debited 200"
    wallet = find_wallet(topup.user_id, "usd")
    assert wallet is not None and wallet.balance == 300
