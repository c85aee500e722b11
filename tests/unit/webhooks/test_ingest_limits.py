"""The stored event's id and type at their column limits, and unhandled event types.

Written for survivors of `make mutate` on webhooks/services.py (docs/mutants.md): an id
of exactly 255 characters or a type of exactly 100 fits its column, so it is stored as
sent and applied, never rejected as too long.
"""

from __future__ import annotations

import itertools

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from dispatch_pay.payments.gateway import Event
from dispatch_pay.webhooks.services import EVENT_ID_LENGTH, EVENT_TYPE_LENGTH, ingest
from models import WebhookEvent, db

_seq = itertools.count(1)


def stored(stripe_event_id: str) -> WebhookEvent | None:
    return db.session.scalar(
        select(WebhookEvent).where(WebhookEvent.stripe_event_id == stripe_event_id)
    )


def test_an_id_of_exactly_the_column_length_is_stored_as_sent(client: FlaskClient) -> None:
    prefix = f"evt_limit_{next(_seq)}_"
    event_id = prefix + "x" * (EVENT_ID_LENGTH - len(prefix))
    assert len(event_id) == EVENT_ID_LENGTH
    outcome = ingest(Event(id=event_id, type="customer.created", livemode=False, payload={}))
    assert outcome == "ignored"
    record = stored(event_id)
    assert record is not None and record.outcome == "ignored"


def test_a_type_of_exactly_the_column_length_is_not_rejected(client: FlaskClient) -> None:
    event_type = "x" * EVENT_TYPE_LENGTH
    event_id = f"evt_type_limit_{next(_seq)}"
    assert ingest(Event(id=event_id, type=event_type, livemode=False, payload={})) == "ignored"
    record = stored(event_id)
    assert record is not None and record.type == event_type


@pytest.mark.parametrize("event_type", ["charge.captured", "payment_intent.created"])
def test_an_unhandled_type_of_a_readable_object_is_ignored_not_unreadable(
    client: FlaskClient, event_type: str
) -> None:
    obj = {"id": f"obj_{next(_seq)}", "payment_intent": "pi_unhandled", "amount": 500}
    evt = Event(
        id=f"evt_unhandled_{next(_seq)}",
        type=event_type,
        livemode=False,
        payload={"type": event_type, "data": {"object": obj}},
    )
    assert ingest(evt) == "ignored"
