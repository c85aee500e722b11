"""Store each verified event once and dispatch it on its type, in one transaction.

The Stripe implementation turns the event's object into a typed value (an Intent, a
Charge or a Dispute); the handlers here only route it to payments and wallet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

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
    webhook_events,
)
from dispatch_pay.wallet.crediting import apply_intent, credit_ours
from dispatch_pay.wallet.disputes import close_dispute, open_dispute, record_card_refund
from models import TopUp, TopUpStatus, WebhookEvent, db

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
    """For a charge or dispute event: its PaymentIntent, from Stripe if it can be asked.

    Called by the boundary before any database work, so that no transaction is open
    while Stripe answers; None when there is nothing to ask.
    """
    subject = subject_of(event)
    charge = subject.charge if isinstance(subject, Dispute) else subject
    if not isinstance(charge, Charge) or charge.payment_intent_id is None or gateway is None:
        return None
    if event.type in FEE_EVENTS:
        return None
    try:
        return Behind(gateway.retrieve_intent(charge.payment_intent_id))
    except PaymentRequestRejected:
        return Behind(None)
    except PaymentProviderUnavailable:
        return None  # fall back to what the charge says about itself


def ingest(event: Event, behind: Behind | None = None) -> str:
    """Record the event by id (unique) and apply it; 'duplicate' if seen before."""
    record = WebhookEvent(
        stripe_event_id=event.id,
        type=event.type,
        livemode=event.livemode,
        payload=event.payload,
        outcome="received",
    )
    try:
        with db.session.begin_nested():
            db.session.add(record)
    except IntegrityError:
        return "duplicate"
    handler = HANDLERS.get(record.type)
    outcome = "ignored" if handler is None else _apply(handler, event, behind)
    record.outcome = outcome
    db.session.flush()
    log.info("stripe event %s %s: %s", record.stripe_event_id, record.type, outcome)
    return outcome


Handler = Callable[[Any, "Behind | None"], str]


def _apply(handler: Handler, event: Event, behind: Behind | None) -> str:
    """Run a handler in a savepoint, so that an unreadable event leaves no half effect."""
    try:
        with db.session.begin_nested():
            subject = webhook_events().subject(event)
            if subject is None:
                return "ignored"
            return handler(subject, behind)
    except UNREADABLE as exc:
        log.exception("stripe event %s stored but not applied", event.id)
        return f"unreadable: {type(exc).__name__}"


def _payment_intent_succeeded(intent: Intent, _behind: Behind | None) -> str:
    ours = payments.our_intent(intent)
    if ours is None:
        return "ignored"
    credited = intent.status == TopUpStatus.SUCCEEDED and credit_ours(ours)
    return "credited" if credited else "already_credited"


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
    if charge.payment_intent_id is None:
        return None
    intent = behind.intent if behind is not None else _intent_from_charge(charge)
    ours = payments.our_intent(intent) if intent is not None else None
    if ours is None:
        return None
    if ours.intent.status == TopUpStatus.SUCCEEDED:
        credit_ours(ours)  # a refund or dispute may arrive before payment_intent.succeeded
    return payments.find_topup(charge.payment_intent_id)


def _intent_from_charge(charge: Charge) -> Intent | None:
    """The PaymentIntent as the charge describes it, when Stripe could not be asked."""
    if not charge.paid or charge.payment_intent_id is None:
        return None
    return Intent(
        id=charge.payment_intent_id,
        status=TopUpStatus.SUCCEEDED,
        amount=charge.amount,
        currency=charge.currency,
        metadata=charge.metadata,
        charge_id=charge.id,
    )


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
    return close_dispute(topup, dispute.id, dispute.amount, dispute.charge.id, dispute.won)


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
