"""`flask audit-ack`: an operator's record that an anomaly `audit` reported was reviewed.

A signed Stripe event that could not be credited (another reader's, an amount outside
the limits, no reference ...) is stored as Stripe sent it and reported by `audit`. Once
someone has looked, they acknowledge it here: who, when and why go into an append-only
row; the event itself is never edited or deleted. `audit` then lists it apart and no
longer fails on it, while every new anomaly still fails it.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from dispatch_pay.errors import DomainError
from dispatch_pay.wallet.audit_topups import REJECTED_OUTCOME, rejected_event_line, rejected_events
from models import AuditAck, WebhookEvent, db

NOTE_LENGTH = 2000
NAME_LENGTH = 255


def acknowledge(stripe_event_id: str, *, by: str, note: str) -> AuditAck:
    """Record the review of one reported event; refuses anything else and changes nothing."""
    by, note = by.strip(), note.strip()
    if not by or len(by) > NAME_LENGTH:
        raise DomainError(
            "invalid_reviewer", f"Say who reviewed it (1 to {NAME_LENGTH} characters)."
        )
    if not note or len(note) > NOTE_LENGTH:
        raise DomainError(
            "invalid_note", f"Say why it is acknowledged (1 to {NOTE_LENGTH} characters)."
        )
    event = db.session.scalar(
        select(WebhookEvent).where(WebhookEvent.stripe_event_id == stripe_event_id)
    )
    if event is None:
        raise DomainError(
            "unknown_event", f"No stored Stripe event {stripe_event_id!r}.", status=404
        )
    if not _reported(event):
        raise DomainError(
            "not_an_anomaly",
            f"Stripe event {stripe_event_id!r} was {event.outcome!r}: audit does not report it.",
            status=409,
        )
    ack = AuditAck(webhook_event_id=event.id, acknowledged_by=by, note=note)
    try:
        with db.session.begin_nested():
            db.session.add(ack)
    except IntegrityError as exc:  # acknowledged by someone else a moment ago
        raise _already(stripe_event_id) from exc
    return ack


def _reported(event: WebhookEvent) -> bool:
    if _ack_of(event) is not None:
        raise _already(event.stripe_event_id)
    return event.outcome.startswith(REJECTED_OUTCOME.rstrip("%"))


def _ack_of(event: WebhookEvent) -> AuditAck | None:
    return db.session.scalar(select(AuditAck).where(AuditAck.webhook_event_id == event.id))


def _already(stripe_event_id: str) -> DomainError:
    return DomainError(
        "already_acknowledged",
        f"Stripe event {stripe_event_id!r} is already acknowledged.",
        status=409,
    )


def acknowledged_anomalies() -> list[str]:
    """The reported events an operator reviewed, one line each, with who, when and why."""
    lines = []
    for event, ack in rejected_events(acknowledged=True):
        lines.append(
            f"{rejected_event_line(event)}; acknowledged by {ack.acknowledged_by} at "
            f"{ack.acknowledged_at:%Y-%m-%d %H:%M} UTC: {' '.join(ack.note.split())}"
        )
    return lines
