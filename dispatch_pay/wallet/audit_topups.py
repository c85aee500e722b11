"""`audit`'s checks of top-ups against what Stripe reported (issue 11).

Every credit of a top-up lands in the wallet of the reader who made it, for an amount
within the top-up limits; a refund or a dispute that Stripe reported (on the top-up, or
in a stored event) has been taken from the wallet; a lost dispute was debited and a won
one was not; events that were refused a credit are reported until an operator acknowledges them; no
reader refunded more purchases than the limit allows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from dispatch_pay.payments.limits import topup_amount_allowed
from models import (
    ENTRY_DISPUTE,
    ENTRY_TOPUP,
    ENTRY_TOPUP_REFUNDED,
    AuditAck,
    Dispute,
    DisputeOutcome,
    LedgerEntry,
    Purchase,
    RefundedBy,
    TopUp,
    Wallet,
    WebhookEvent,
    db,
)

REFUND_EVENTS = ("charge.refunded",)
DISPUTE_EVENTS = ("charge.dispute.created", "charge.dispute.closed")


def topup_problems(refunds_per_period: int, refund_period: timedelta) -> list[str]:
    credited = _credited()
    return [
        *_credits_with_their_reader(),
        *_credited_amounts_allowed(credited),
        *_refunds_taken_back(credited),
        *_disputes_applied(credited),
        *_rejected_events(),
        *_refund_limit_kept(refunds_per_period, refund_period),
    ]


def _credited() -> dict[str, TopUp]:
    """Top-ups with a credit in the ledger, by PaymentIntent id."""
    credited_ids = set(
        db.session.scalars(
            select(LedgerEntry.payment_intent_id).where(
                LedgerEntry.kind == ENTRY_TOPUP, LedgerEntry.payment_intent_id.is_not(None)
            )
        )
    )
    return {
        str(t.payment_intent_id): t
        for t in db.session.scalars(select(TopUp).where(TopUp.payment_intent_id.is_not(None)))
        if t.payment_intent_id in credited_ids
    }


def _credits_with_their_reader() -> list[str]:
    rows = db.session.execute(
        select(LedgerEntry.payment_intent_id, Wallet.user_id, Wallet.currency, TopUp)
        .join(Wallet, Wallet.id == LedgerEntry.wallet_id)
        .join(TopUp, TopUp.payment_intent_id == LedgerEntry.payment_intent_id)
        .where(LedgerEntry.kind == ENTRY_TOPUP)
    )
    problems = []
    for pi_id, owner, currency, topup in rows:
        if owner != topup.user_id:
            problems.append(
                f"top-up {pi_id}: made by reader {topup.user_id} but credited to the wallet "
                f"of reader {owner}"
            )
        elif currency != topup.currency:
            problems.append(f"top-up {pi_id}: {topup.currency} credited to a {currency} wallet")
    return problems


def _credited_amounts_allowed(credited: dict[str, TopUp]) -> list[str]:
    return [
        f"top-up {pi_id}: {topup.amount} credited, not a positive amount within the top-up limits"
        for pi_id, topup in credited.items()
        if not topup_amount_allowed(topup.amount, topup.currency)
    ]


def _sums(kinds: tuple[str, ...]) -> dict[str, int]:
    rows = db.session.execute(
        select(LedgerEntry.payment_intent_id, func.sum(LedgerEntry.amount))
        .where(LedgerEntry.kind.in_(kinds), LedgerEntry.payment_intent_id.is_not(None))
        .group_by(LedgerEntry.payment_intent_id)
    )
    return {str(pi_id): int(total or 0) for pi_id, total in rows}


def _taken_back(kinds: tuple[str, ...]) -> dict[str, int]:
    """What card refunds and lost disputes took from the wallet, by PaymentIntent."""
    return {pi_id: -total for pi_id, total in _sums(kinds).items()}


def _credit_sums() -> dict[str, int]:
    return _sums((ENTRY_TOPUP,))


def _event_objects(types: tuple[str, ...]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event id, its object) of stored events of these types whose object is readable."""
    for event_id, payload in db.session.execute(
        select(WebhookEvent.stripe_event_id, WebhookEvent.payload).where(
            WebhookEvent.type.in_(types)
        )
    ):
        data = payload.get("data") if isinstance(payload, dict) else None
        obj = data.get("object") if isinstance(data, dict) else None
        if isinstance(obj, dict):
            yield str(event_id), obj


def _id_of(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("id")
    return str(value) if isinstance(value, str | int) and value else None


def _topup_named(obj: dict[str, Any], credited: dict[str, TopUp]) -> TopUp | None:
    """The credited top-up a charge (or a dispute's charge) belongs to."""
    charge = obj.get("charge") if obj.get("object") == "dispute" else obj
    pi_id = _id_of(obj.get("payment_intent"))
    if pi_id is None and isinstance(charge, dict):
        pi_id = _id_of(charge.get("payment_intent"))
    if pi_id in credited:
        return credited[pi_id]
    charge_id = _id_of(charge)
    for topup in credited.values():
        if charge_id is not None and topup.charge_id == charge_id:
            return topup
    return None


def _refunds_taken_back(credited: dict[str, TopUp]) -> list[str]:
    reported = {pi_id: t.amount_refunded or 0 for pi_id, t in credited.items()}
    for _event_id, charge in _event_objects(REFUND_EVENTS):
        topup = _topup_named(charge, credited)
        amount = charge.get("amount_refunded")
        if topup is not None and isinstance(amount, int) and not isinstance(amount, bool):
            pi_id = str(topup.payment_intent_id)
            reported[pi_id] = max(reported[pi_id], amount)
    taken = _taken_back((ENTRY_TOPUP_REFUNDED, ENTRY_DISPUTE))
    credit = _credit_sums()
    problems = []
    for pi_id, refunded in reported.items():
        owed = min(refunded, credit.get(pi_id, 0))
        if owed > 0 and taken.get(pi_id, 0) < owed:
            problems.append(
                f"top-up {pi_id}: Stripe refunded {refunded} to the card but the wallet gave "
                f"back {taken.get(pi_id, 0)}"
            )
    return problems


def _disputes_applied(credited: dict[str, TopUp]) -> list[str]:
    known = {d.stripe_dispute_id: d for d in db.session.scalars(select(Dispute))}
    problems = []
    for _event_id, reported in _event_objects(DISPUTE_EVENTS):
        dispute_id = _id_of(reported.get("id"))
        topup = _topup_named(reported, credited)
        if dispute_id is not None and topup is not None and dispute_id not in known:
            problems.append(
                f"dispute {dispute_id} of top-up {topup.payment_intent_id}: reported by Stripe "
                "but never applied to the wallet"
            )
    taken = _taken_back((ENTRY_TOPUP_REFUNDED, ENTRY_DISPUTE))
    credit = _credit_sums()
    debited = set(
        db.session.scalars(select(LedgerEntry.reference).where(LedgerEntry.kind == ENTRY_DISPUTE))
    )
    for dispute in known.values():
        topup = credited.get(dispute.payment_intent_id)
        if dispute.outcome == DisputeOutcome.LOST and topup is not None:
            owed = min(dispute.amount, credit.get(dispute.payment_intent_id, 0))
            if taken.get(dispute.payment_intent_id, 0) < owed:
                problems.append(
                    f"dispute {dispute.stripe_dispute_id}: lost, but the wallet gave back "
                    f"{taken.get(dispute.payment_intent_id, 0)} of {owed}"
                )
        if dispute.outcome == DisputeOutcome.WON and dispute.stripe_dispute_id in debited:
            problems.append(f"dispute {dispute.stripe_dispute_id}: won, but the wallet was debited")
    return problems


REJECTED_OUTCOME = "rejected%"


def rejected_events(*, acknowledged: bool) -> Any:
    """Stored events refused a credit, with their acknowledgement (None when unreviewed)."""
    reviewed = AuditAck.id.is_not(None) if acknowledged else AuditAck.id.is_(None)
    return db.session.execute(
        select(WebhookEvent, AuditAck)
        .outerjoin(AuditAck, AuditAck.webhook_event_id == WebhookEvent.id)
        .where(WebhookEvent.outcome.like(REJECTED_OUTCOME), reviewed)
        .order_by(WebhookEvent.id)
    ).all()


def rejected_event_line(event: WebhookEvent) -> str:
    return (
        f"stripe event {event.stripe_event_id[:80]} ({event.type[:60]}): "
        f"not applied, {event.outcome}"
    )


def _rejected_events() -> list[str]:
    """Until an operator acknowledges one (`flask audit-ack`), each is a problem."""
    return [rejected_event_line(event) for event, _ack in rejected_events(acknowledged=False)]


def _refund_limit_kept(per_period: int, period: timedelta) -> list[str]:
    times: dict[int, list[Any]] = defaultdict(list)
    for user_id, refunded_at in db.session.execute(
        select(Purchase.user_id, Purchase.refunded_at)
        .where(Purchase.refunded_by == RefundedBy.READER, Purchase.refunded_at.is_not(None))
        .order_by(Purchase.user_id, Purchase.refunded_at)
    ):
        times[user_id].append(refunded_at)
    problems = []
    for user_id, moments in times.items():
        for first, later in zip(moments, moments[per_period:], strict=False):
            if later - first < period:
                problems.append(
                    f"reader {user_id}: more than {per_period} refunds within {period.days} days"
                )
                break
    return problems
