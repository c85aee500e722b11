"""Store each verified event once and dispatch it on its type, in one transaction."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from dispatch_pay.errors import DomainError
from dispatch_pay.payments.fees import record_fee
from dispatch_pay.payments.gateway import (
    Intent,
    PaymentGateway,
    PaymentProviderUnavailable,
    PaymentRequestRejected,
    fee_from_charge,
    intent_from_payload,
)
from dispatch_pay.payments.services import apply_intent, credit_intent, is_ours
from dispatch_pay.wallet.disputes import close_dispute, open_dispute, record_card_refund
from models import TopUp, WebhookEvent, db

log = logging.getLogger(__name__)


def ingest(event: dict[str, Any]) -> str:
    """Record the event by id (unique) and apply it; 'duplicate' if seen before."""
    record = WebhookEvent(
        stripe_event_id=str(event["id"]),
        type=str(event["type"]),
        livemode=bool(event.get("livemode", False)),
        payload=event,
        outcome="received",
    )
    try:
        with db.session.begin_nested():
            db.session.add(record)
    except IntegrityError:
        return "duplicate"
    handler = HANDLERS.get(record.type)
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if handler is None or not isinstance(obj, dict):
        outcome = "ignored"
    else:
        outcome = _apply(handler, obj, record.stripe_event_id)
    record.outcome = outcome
    db.session.flush()
    log.info("stripe event %s %s: %s", record.stripe_event_id, record.type, outcome)
    return outcome


# A signed event whose object we cannot read (a field of the wrong type, say) is kept
# and acknowledged: Stripe would retry a 5xx for days and the event would not change.
# Database failures and anything unexpected still propagate, so the event is not stored
# and Stripe retries it: after the fix is deployed it then takes effect.
UNREADABLE = (ValueError, TypeError, KeyError, AttributeError, DomainError)


def _apply(handler: Callable[[dict[str, Any]], str], obj: dict[str, Any], event_id: str) -> str:
    """Run a handler in a savepoint, so that an unreadable event leaves no half effect."""
    try:
        with db.session.begin_nested():
            return handler(obj)
    except UNREADABLE as exc:
        log.exception("stripe event %s stored but not applied", event_id)
        return f"unreadable: {type(exc).__name__}"


def _payment_intent_succeeded(obj: dict[str, Any]) -> str:
    intent = intent_from_payload(obj)
    if not is_ours(intent):
        return "ignored"
    return "credited" if credit_intent(intent) else "already_credited"


def _payment_intent_failed(obj: dict[str, Any]) -> str:
    intent = intent_from_payload(obj)
    if not is_ours(intent):
        return "ignored"
    topup = apply_intent(intent)
    if topup.status != "succeeded":
        topup.status = "failed"
        error = obj.get("last_payment_error") or {}
        topup.failure_code = str(error.get("code") or "payment_failed")[:100]
    return "marked_failed"


def _id_of(value: Any) -> str | None:
    """Stripe sends either an id or the expanded object."""
    if isinstance(value, dict):
        return str(value.get("id")) if value.get("id") else None
    return str(value) if value else None


def _gateway() -> PaymentGateway | None:
    found: PaymentGateway | None = current_app.extensions.get("payment_gateway")
    return found


def _topup_for_charge(charge: dict[str, Any]) -> TopUp | None:
    """Our top-up behind a charge, crediting it first if its success is still unrecorded."""
    pi_id = _id_of(charge.get("payment_intent"))
    charge_id = _id_of(charge.get("id"))
    topup = None
    if pi_id:
        topup = db.session.scalar(select(TopUp).where(TopUp.payment_intent_id == pi_id))
    if topup is None and charge_id:
        topup = db.session.scalar(select(TopUp).where(TopUp.charge_id == charge_id))
    if topup is not None and topup.credited_at is not None:
        return topup
    if pi_id is None:
        return None
    intent = _intent_behind(pi_id, charge)
    if intent is None or not is_ours(intent):
        return None
    credit_intent(intent)  # a refund or dispute may arrive before payment_intent.succeeded
    return db.session.scalar(select(TopUp).where(TopUp.payment_intent_id == pi_id))


def _intent_behind(pi_id: str, charge: dict[str, Any]) -> Intent | None:
    """The PaymentIntent of a charge: from Stripe if we can ask, else from the charge."""
    gateway = _gateway()
    if gateway is not None:
        try:
            return gateway.retrieve_intent(pi_id)
        except PaymentRequestRejected:
            return None
        except PaymentProviderUnavailable:
            pass  # fall back to what the charge says about itself
    if not charge.get("paid") and charge.get("status") != "succeeded":
        return None
    return Intent(
        id=pi_id,
        status="succeeded",
        amount=int(charge.get("amount") or 0),
        currency=str(charge.get("currency") or "").lower(),
        metadata={str(k): str(v) for k, v in (charge.get("metadata") or {}).items()},
        charge_id=_id_of(charge.get("id")),
    )


def _charge_refunded(obj: dict[str, Any]) -> str:
    topup = _topup_for_charge(obj)
    if topup is None:
        return "ignored"
    debited = record_card_refund(topup, int(obj.get("amount_refunded") or 0))
    return f"debited {debited}" if debited else "nothing_to_debit"


def _charge_fee(obj: dict[str, Any]) -> str:
    """`charge.succeeded`/`charge.updated`: keep Stripe's fee when the event carries the
    balance transaction expanded. Never asks Stripe (reconcile fills the rest)."""
    fee = fee_from_charge(obj)
    if fee is None:
        return "no_fee"
    pi_id, charge_id = _id_of(obj.get("payment_intent")), _id_of(obj.get("id"))
    topup = None
    if pi_id:
        topup = db.session.scalar(select(TopUp).where(TopUp.payment_intent_id == pi_id))
    if topup is None and charge_id:
        topup = db.session.scalar(select(TopUp).where(TopUp.charge_id == charge_id))
    if topup is None:
        return "ignored"
    if record_fee(topup.id, fee):
        return "fee_recorded"
    return "fee_already_known" if topup.fee is not None else "fee_not_recorded"


def _dispute_charge(dispute: dict[str, Any]) -> dict[str, Any]:
    """A charge-like dict for a dispute (its charge may be an id or an object)."""
    charge = dispute.get("charge")
    base: dict[str, Any] = dict(charge) if isinstance(charge, dict) else {"id": charge}
    if dispute.get("payment_intent") and not base.get("payment_intent"):
        base["payment_intent"] = dispute.get("payment_intent")
    return base


def _dispute_created(obj: dict[str, Any]) -> str:
    charge = _dispute_charge(obj)
    topup = _topup_for_charge(charge)
    if topup is None:
        return "ignored"
    opened = open_dispute(topup, str(obj["id"]), int(obj.get("amount") or 0), _id_of(charge))
    return "frozen" if opened else "already_open"


def _dispute_closed(obj: dict[str, Any]) -> str:
    charge = _dispute_charge(obj)
    topup = _topup_for_charge(charge)
    if topup is None:
        return "ignored"
    won = obj.get("status") in ("won", "warning_closed")
    return close_dispute(topup, str(obj["id"]), int(obj.get("amount") or 0), _id_of(charge), won)


HANDLERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "payment_intent.succeeded": _payment_intent_succeeded,
    "payment_intent.payment_failed": _payment_intent_failed,
    "charge.refunded": _charge_refunded,
    "charge.succeeded": _charge_fee,
    "charge.updated": _charge_fee,
    "charge.dispute.created": _dispute_created,
    "charge.dispute.closed": _dispute_closed,
}
