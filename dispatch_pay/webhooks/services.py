"""Store each verified event once and dispatch it on its type, in one transaction.

The Stripe implementation turns the event's object into a typed value (an Intent, a
Charge or a Dispute); the handlers here only route it to payments and wallet.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import make_transient_to_detached

from dispatch_pay.errors import DomainError
from dispatch_pay.payments import services as payments
from dispatch_pay.payments.fees import record_fee
from dispatch_pay.payments.gateway import (
    Charge,
    Dispute,
    Event,
    EventSubject,
    Intent,
    PaymentGateway,
    PaymentProviderUnavailable,
    PaymentRequestRejected,
    live_keys,
    webhook_events,
)
from dispatch_pay.wallet.crediting import apply_intent, credit_ours
from dispatch_pay.wallet.disputes import close_dispute, open_dispute, record_card_refund
from models import TopUp, TopUpStatus, WebhookEvent, db, utcnow
from models.base import conflict_insert

log = logging.getLogger(__name__)

# A signed event whose object we cannot read (a field of the wrong type, say) is kept
# and acknowledged: Stripe would retry a 5xx for days and the event would not change.
# Database failures and anything unexpected still propagate, so the event is not stored
# and Stripe retries it: after the fix is deployed it then takes effect.
UNREADABLE = (ValueError, TypeError, KeyError, AttributeError, DomainError)


@dataclass(frozen=True)
class Behind:
    """What Stripe said of the PaymentIntent behind a charge, asked before the event's
    transaction began (None: Stripe refused the lookup, or the charge was not paid)."""

    intent: Intent | None


def subject_of(event: Event) -> EventSubject | None:
    try:
        return webhook_events().subject(event)
    except UNREADABLE:
        return None  # `ingest` reads it again and records it as unreadable


def ask_behind(event: Event, gateway: PaymentGateway | None) -> Behind | None:
    """For a charge or dispute event: its PaymentIntent, from Stripe, when the event
    needs it (its top-up is not credited yet, so the app must learn whose it is).

    Called by the boundary before the event's transaction, so that no transaction is
    open while Stripe answers; None when there is nothing to ask. When Stripe cannot be
    asked, the contract's 503: the event is not stored and Stripe delivers it again (a
    200 would drop a refund or a dispute for good).
    """
    subject = subject_of(event)
    charge = subject.charge if isinstance(subject, Dispute) else subject
    if not isinstance(charge, Charge) or charge.payment_intent_id is None or gateway is None:
        return None
    if event.type in FEE_EVENTS or event.type not in HANDLERS:
        return None
    topup = payments.find_topup(charge.payment_intent_id, charge.id)
    known = topup is not None and topup.credited_at is not None
    db.session.commit()  # ends the read: nothing is held while Stripe answers
    if known:
        return None
    try:
        return Behind(gateway.retrieve_intent(charge.payment_intent_id))
    except PaymentRequestRejected:
        return Behind(None)
    except PaymentProviderUnavailable as exc:
        raise DomainError(
            "payment_provider_unavailable",
            "Stripe could not be asked about this charge; deliver the event again.",
            status=503,
        ) from exc


# Longer ids and types than Stripe ever sends are stored under a digest (and reported by
# `audit`), never acted on, and never a 500 that Stripe would retry for days.
EVENT_ID_LENGTH = 255
EVENT_TYPE_LENGTH = 100
REJECTED = "rejected"
# A transaction-level lock on an event id (PostgreSQL): whoever stores the event holds it.
EVENT_ID_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:event_id, 0))")


def _stored_id(event_id: str) -> str:
    if len(event_id) <= EVENT_ID_LENGTH:
        return event_id
    return "sha256:" + hashlib.sha256(event_id.encode()).hexdigest()


def ingest(event: Event, behind: Behind | None = None) -> str:
    """Record the event by id (unique) and apply it; 'duplicate' if seen before.

    One statement stores it or finds it stored: INSERT ... ON CONFLICT DO NOTHING on the
    unique event id (no savepoint around an INSERT that may fail). A parallel delivery of
    the same event waits for this transaction and then finds it stored.
    """
    values = {
        "stripe_event_id": _stored_id(event.id),
        "type": event.type[:EVENT_TYPE_LENGTH],
        "livemode": event.livemode,
        "payload": event.payload,
        "outcome": "received",
        "received_at": utcnow(),
    }
    if db.session.get_bind().dialect.name == "postgresql":
        # Held until this transaction ends: the quick credit only tries it, so it never
        # waits on an insert of this id that is not committed yet (see quick_credit.py).
        db.session.execute(EVENT_ID_LOCK, {"event_id": values["stripe_event_id"]})
    insert = conflict_insert(WebhookEvent)
    stored = db.session.scalar(
        insert.values(values).on_conflict_do_nothing().returning(insert.table.c.id)
    )
    if stored is None:
        return "duplicate"
    record = WebhookEvent(id=stored, **values)
    make_transient_to_detached(record)  # the row exists: the session tracks it, never inserts it
    db.session.add(record)
    record.outcome = _outcome(event, behind)
    db.session.flush()
    log.info("stripe event %s %s: %s", record.stripe_event_id, record.type, record.outcome)
    return record.outcome


def _outcome(event: Event, behind: Behind | None) -> str:
    if len(event.id) > EVENT_ID_LENGTH:
        return f"{REJECTED}: id_too_long"
    if len(event.type) > EVENT_TYPE_LENGTH:
        return f"{REJECTED}: type_too_long"
    if event.livemode != live_keys():
        return "ignored: other_mode"  # a test event never moves live money, nor the reverse
    handler = HANDLERS.get(event.type)
    return "ignored" if handler is None else _apply(handler, event, behind)


Handler = Callable[[Any, "Behind | None"], str]


def _apply(handler: Handler, event: Event, behind: Behind | None) -> str:
    """Run a handler in a savepoint, so that an unreadable event leaves no half effect."""
    try:
        with db.session.begin_nested():
            subject = webhook_events().subject(event)
            if subject is None:
                return "ignored"
            return handler(subject, behind)
    except payments.NotCreditable as exc:
        log.warning("stripe event %s not credited: %s", event.id, exc)
        return f"{REJECTED}: {exc.reason}"[:40]
    except UNREADABLE as exc:
        log.exception("stripe event %s stored but not applied", event.id)
        return f"unreadable: {type(exc).__name__}"


def _payment_intent_succeeded(intent: Intent, _behind: Behind | None) -> str:
    ours = payments.our_intent(intent)
    if ours is None:
        return "ignored"
    if intent.status != TopUpStatus.SUCCEEDED:
        return "not_succeeded"
    return "credited" if credit_ours(ours) else "already_credited"


def _payment_intent_failed(intent: Intent, _behind: Behind | None) -> str:
    topup = apply_intent(intent)
    if topup is None:
        return "ignored"
    payments.mark_failed(topup, intent.failure_code)
    return "marked_failed"


def _topup_for_charge(charge: Charge, behind: Behind | None) -> TopUp | None:
    """Our top-up behind a charge, crediting it first if its success is still unrecorded."""
    topup = payments.find_topup(charge.payment_intent_id, charge.id)
    if topup is not None and topup.credited_at is not None:
        return topup
    # Not credited yet: only Stripe's PaymentIntent (asked by `ask_behind`) says whose it
    # is; a charge's own metadata is not ours, so nothing is guessed from it.
    intent = behind.intent if behind is not None else None
    ours = payments.our_intent(intent) if intent is not None else None
    if ours is None:
        return None
    if ours.intent.status == TopUpStatus.SUCCEEDED:
        credit_ours(ours)  # a refund or dispute may arrive before payment_intent.succeeded
    return payments.find_topup(ours.intent.id)


def _charge_refunded(charge: Charge, behind: Behind | None) -> str:
    topup = _topup_for_charge(charge, behind)
    if topup is None:
        return "ignored"
    debited = record_card_refund(topup, charge.amount_refunded)
    return f"debited {debited}" if debited else "nothing_to_debit"


def _charge_fee(charge: Charge, _behind: Behind | None) -> str:
    """`charge.succeeded`/`charge.updated`: keep Stripe's fee when the event carries the
    balance transaction expanded. Never asks Stripe (reconcile fills the rest)."""
    if charge.fee is None:
        return "no_fee"
    topup = payments.find_topup(charge.payment_intent_id, charge.id)
    if topup is None:
        return "ignored"
    if record_fee(topup.id, charge.fee):
        return "fee_recorded"
    return "fee_already_known" if topup.fee is not None else "fee_not_recorded"


def _dispute_created(dispute: Dispute, behind: Behind | None) -> str:
    topup = _topup_for_charge(dispute.charge, behind)
    if topup is None:
        return "ignored"
    opened = open_dispute(topup, dispute.id, dispute.amount, dispute.charge.id)
    return "frozen" if opened else "already_open"


def _dispute_closed(dispute: Dispute, behind: Behind | None) -> str:
    topup = _topup_for_charge(dispute.charge, behind)
    if topup is None:
        return "ignored"
    outcome = close_dispute(topup, dispute.id, dispute.amount, dispute.charge.id, dispute.won)
    if dispute.won and topup.credited_at is None and behind is not None and behind.intent:
        ours = payments.our_intent(behind.intent)
        if ours is not None:
            credit_ours(ours, dispute_settled=True)  # held while it was disputed
    return outcome


FEE_EVENTS = ("charge.succeeded", "charge.updated")
HANDLERS: dict[str, Handler] = {
    "payment_intent.succeeded": _payment_intent_succeeded,
    "payment_intent.payment_failed": _payment_intent_failed,
    "charge.refunded": _charge_refunded,
    "charge.succeeded": _charge_fee,
    "charge.updated": _charge_fee,
    "charge.dispute.created": _dispute_created,
    "charge.dispute.closed": _dispute_closed,
}
