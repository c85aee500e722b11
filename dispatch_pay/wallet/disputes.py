"""Money taken back after a top-up: card refunds and disputes.

A top-up can be clawed back by refunds and by a lost dispute, but never by more than
its own amount in total: a refunded and then disputed charge is debited once.
"""

from __future__ import annotations

from sqlalchemy import func, select

from dispatch_pay.payments.receipts import queue_card_refund_note
from dispatch_pay.payments.services import locked_topup
from dispatch_pay.wallet.ledger import locked_wallet, post_entry
from models import (
    ENTRY_DISPUTE,
    ENTRY_TOPUP,
    ENTRY_TOPUP_REFUNDED,
    Dispute,
    DisputeOutcome,
    DisputeStatus,
    LedgerEntry,
    TopUp,
    db,
    utcnow,
)


def _clawed_back(payment_intent_id: str, kinds: tuple[str, ...]) -> int:
    total = db.session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
            LedgerEntry.payment_intent_id == payment_intent_id, LedgerEntry.kind.in_(kinds)
        )
    )
    return -int(total or 0)


def _credited(payment_intent_id: str) -> int:
    total = db.session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
            LedgerEntry.payment_intent_id == payment_intent_id, LedgerEntry.kind == ENTRY_TOPUP
        )
    )
    return int(total or 0)


def _claw_back(topup: TopUp, kind: str, wanted: int, reference: str) -> int:
    """Debit up to `wanted`, capped by what of the top-up is not clawed back yet."""
    assert topup.payment_intent_id is not None
    wallet = locked_wallet(topup.user_id, topup.currency)
    room = _credited(topup.payment_intent_id) - _clawed_back(
        topup.payment_intent_id, (ENTRY_TOPUP_REFUNDED, ENTRY_DISPUTE)
    )
    debit = min(wanted, room)
    if debit <= 0:
        return 0
    entry = post_entry(wallet, kind, -debit, reference, payment_intent_id=topup.payment_intent_id)
    return debit if entry is not None else 0


def record_card_refund(topup: TopUp, amount_refunded: int) -> int:
    """Apply Stripe's cumulative `amount_refunded` for a top-up's charge; debit what is new."""
    assert topup.payment_intent_id is not None
    locked_wallet(topup.user_id, topup.currency)
    # Read afresh under its lock: a refund event of the same charge may have raised it
    # since `topup` was loaded (the largest amount Stripe reported must stay).
    topup = locked_topup(topup.id)
    topup.amount_refunded = max(topup.amount_refunded or 0, amount_refunded)
    assert topup.payment_intent_id is not None
    already = _clawed_back(topup.payment_intent_id, (ENTRY_TOPUP_REFUNDED,))
    new = amount_refunded - already
    if new <= 0:
        return 0
    queue_card_refund_note(topup, new)
    return _claw_back(
        topup,
        ENTRY_TOPUP_REFUNDED,
        new,
        f"{topup.payment_intent_id}:refunded:{amount_refunded}",
    )


def open_dispute(topup: TopUp, stripe_dispute_id: str, amount: int, charge_id: str | None) -> bool:
    """Freeze the wallet while the dispute is open. False if this dispute is known already."""
    assert topup.payment_intent_id is not None
    wallet = locked_wallet(topup.user_id, topup.currency)
    existing = db.session.scalar(
        select(Dispute).where(Dispute.stripe_dispute_id == stripe_dispute_id)
    )
    if existing is not None:
        return False
    db.session.add(
        Dispute(
            stripe_dispute_id=stripe_dispute_id,
            wallet_id=wallet.id,
            payment_intent_id=topup.payment_intent_id,
            charge_id=charge_id,
            amount=amount,
            status=DisputeStatus.OPEN,
        )
    )
    wallet.open_disputes += 1
    db.session.flush()
    return True


def close_dispute(
    topup: TopUp, stripe_dispute_id: str, amount: int, charge_id: str | None, won: bool
) -> str:
    """Release the freeze; a lost dispute debits the disputed amount (capped, once)."""
    assert topup.payment_intent_id is not None
    wallet = locked_wallet(topup.user_id, topup.currency)
    dispute = db.session.scalar(
        select(Dispute).where(Dispute.stripe_dispute_id == stripe_dispute_id)
    )
    if dispute is None:  # closed arrived before created: never open, nothing to release
        dispute = Dispute(
            stripe_dispute_id=stripe_dispute_id,
            wallet_id=wallet.id,
            payment_intent_id=topup.payment_intent_id,
            charge_id=charge_id,
            amount=amount,
            status=DisputeStatus.CLOSED,
        )
        db.session.add(dispute)
    elif dispute.status == DisputeStatus.OPEN:
        wallet.open_disputes -= 1
    elif dispute.outcome is not None:
        return "already_closed"
    dispute.status = DisputeStatus.CLOSED
    dispute.outcome = DisputeOutcome.WON if won else DisputeOutcome.LOST
    dispute.closed_at = utcnow()
    db.session.flush()
    if not won:
        _claw_back(topup, ENTRY_DISPUTE, dispute.amount, stripe_dispute_id)
    return str(dispute.outcome)


def card_refund_room(topup: TopUp) -> tuple[int, int]:
    """(refunded to the card so far, still refundable) of a credited top-up."""
    assert topup.payment_intent_id is not None
    refunded = _clawed_back(topup.payment_intent_id, (ENTRY_TOPUP_REFUNDED,))
    room = _credited(topup.payment_intent_id) - _clawed_back(
        topup.payment_intent_id, (ENTRY_TOPUP_REFUNDED, ENTRY_DISPUTE)
    )
    return refunded, max(room, 0)
