"""`flask audit-ack`: an operator acknowledges an anomaly `audit` reported (issue 11 item 3).

A signed event that could not be credited is stored and reported by `audit`, which
fails (exit 1) until an operator records who reviewed it, when and why. The record is
append-only and the event is never edited; acknowledged anomalies are listed apart and
no longer fail the audit, while a new one still does.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DBAPIError

from dispatch_pay.webhooks.services import REJECTED
from models import AuditAck, WebhookEvent, db

_event_ids = itertools.count(1)


def run(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=list(args))


def stored_event(outcome: str) -> WebhookEvent:
    """An event as the webhook stores it after refusing (or applying) it."""
    event = WebhookEvent(
        stripe_event_id=f"evt_ack_{next(_event_ids)}",
        type="payment_intent.succeeded",
        livemode=False,
        outcome=outcome,
        payload={"id": "evt", "data": {"object": {"id": "pi_x", "amount": -500}}},
    )
    db.session.add(event)
    db.session.commit()
    return event


def acks() -> int:
    return int(db.session.scalar(select(func.count(AuditAck.id))) or 0)


def test_audit_fails_on_a_rejected_event_until_it_is_acknowledged_and_again_on_a_new_one(
    app: Flask, client: FlaskClient
) -> None:
    first = stored_event(f"{REJECTED}: other_reader")
    result = run(app, "audit")
    assert result.exit_code == 1, result.output
    assert f"stripe event {first.stripe_event_id}" in result.output

    acked = run(
        app, "audit-ack", first.stripe_event_id, "--by", "ops@dispatch", "--note", "test refund"
    )
    assert acked.exit_code == 0, acked.output
    assert f"Stripe event {first.stripe_event_id} acknowledged by ops@dispatch" in acked.output

    result = run(app, "audit")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0] == "audit: 1 acknowledged anomaly(ies), not counted:"
    assert lines[1].startswith(f"  stripe event {first.stripe_event_id} ")
    assert "acknowledged by ops@dispatch at " in lines[1] and lines[1].endswith(": test refund")
    assert lines[-1] == "audit: every ledger invariant holds."

    second = stored_event(f"{REJECTED}: amount_not_allowed")
    result = run(app, "audit")
    assert result.exit_code == 1, result.output
    problem, *rest = result.output.strip().splitlines()
    assert problem.startswith(f"stripe event {second.stripe_event_id} ")
    assert any(line.startswith(f"  stripe event {first.stripe_event_id} ") for line in rest)
    assert rest[-1] == "audit: 1 problem(s) found."


def test_the_event_itself_is_left_as_stored(app: Flask, client: FlaskClient) -> None:
    event = stored_event(f"{REJECTED}: no_reference")
    before = (event.outcome, dict(event.payload), event.received_at)
    assert run(app, "audit-ack", event.stripe_event_id, "--note", "looked").exit_code == 0
    db.session.expire_all()
    stored = db.session.get(WebhookEvent, event.id)
    assert stored is not None
    assert (stored.outcome, stored.payload, stored.received_at) == before


def test_an_unknown_event_is_refused_and_nothing_is_recorded(
    app: Flask, client: FlaskClient
) -> None:
    result = run(app, "audit-ack", "evt_nobody_knows", "--note", "why")
    assert result.exit_code == 1
    assert "No stored Stripe event 'evt_nobody_knows'" in result.output
    assert acks() == 0


def test_a_second_acknowledgement_is_refused_and_the_first_stands(
    app: Flask, client: FlaskClient
) -> None:
    event = stored_event(f"{REJECTED}: other_reader")
    assert (
        run(app, "audit-ack", event.stripe_event_id, "--by", "a", "--note", "first").exit_code == 0
    )

    result = run(app, "audit-ack", event.stripe_event_id, "--by", "b", "--note", "second")
    assert result.exit_code == 1
    assert "is already acknowledged" in result.output
    assert [(a.acknowledged_by, a.note) for a in db.session.scalars(select(AuditAck))] == [
        ("a", "first")
    ]


def test_an_event_audit_does_not_report_cannot_be_acknowledged(
    app: Flask, client: FlaskClient
) -> None:
    event = stored_event("credited")
    result = run(app, "audit-ack", event.stripe_event_id, "--note", "why")
    assert result.exit_code == 1
    assert "audit does not report it" in result.output
    assert acks() == 0


@pytest.mark.parametrize(
    ("by", "note", "message"),
    [("ops", "   ", "Say why"), ("", "reviewed", "Say who"), ("ops", "x" * 2001, "Say why")],
)
def test_an_acknowledgement_says_who_and_why(
    app: Flask, client: FlaskClient, by: str, note: str, message: str
) -> None:
    event = stored_event(f"{REJECTED}: other_reader")
    result = run(app, "audit-ack", event.stripe_event_id, "--by", by, "--note", note)
    assert result.exit_code == 1
    assert message in result.output
    assert acks() == 0
    assert run(app, "audit").exit_code == 1


def test_the_note_is_required(app: Flask, client: FlaskClient) -> None:
    event = stored_event(f"{REJECTED}: other_reader")
    result = run(app, "audit-ack", event.stripe_event_id)
    assert result.exit_code == 2  # click's usage error
    assert "--note" in result.output
    assert acks() == 0


def refused(statement: Any) -> bool:
    try:
        with db.session.begin_nested():
            db.session.execute(statement)
    except DBAPIError:
        return True
    return False


def test_the_database_keeps_acknowledgements_and_their_events(
    app: Flask, client: FlaskClient
) -> None:
    event = stored_event(f"{REJECTED}: other_reader")
    assert run(app, "audit-ack", event.stripe_event_id, "--note", "reviewed").exit_code == 0

    assert refused(update(AuditAck).values(note="rewritten"))
    assert refused(delete(AuditAck))
    assert refused(delete(WebhookEvent).where(WebhookEvent.id == event.id))
    assert refused(
        text(
            "INSERT INTO audit_acks (webhook_event_id, acknowledged_by, note, "
            "acknowledged_at) VALUES (:id, 'x', 'again', CURRENT_TIMESTAMP)"
        ).bindparams(id=event.id)
    )
    assert acks() == 1
