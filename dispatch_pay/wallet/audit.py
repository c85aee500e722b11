"""`flask audit`: check every ledger invariant and report each mismatch."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from models import (
    ENTRY_DISPUTE,
    ENTRY_PURCHASE,
    ENTRY_REFUND,
    ENTRY_TOPUP,
    ENTRY_TOPUP_REFUNDED,
    PURCHASE_ACTIVE,
    PURCHASE_REFUNDED,
    Dispute,
    DisputeStatus,
    Entitlement,
    LedgerEntry,
    Purchase,
    TopUp,
    TopUpStatus,
    Wallet,
    db,
)


def audit() -> list[str]:
    """Every problem found, one line each; an empty list means the books balance."""
    return [
        *_balances_match_entries(),
        *_negative_balances_explained(),
        *_open_disputes_counted(),
        *_purchases_consistent(),
        *_entitlements_backed(),
        *_topups_consistent(),
        *_clawbacks_capped(),
    ]


def _pairs(result: Any) -> dict[Any, Any]:
    # A Result has .keys(), so dict(result) would treat it as a mapping; build it by rows.
    # (Rows unpack like tuples; Result.tuples() is deprecated since SQLAlchemy 2.1.)
    return {key: value for key, value in result}


def _balances_match_entries() -> list[str]:
    sums = _pairs(
        db.session.execute(
            select(LedgerEntry.wallet_id, func.sum(LedgerEntry.amount)).group_by(
                LedgerEntry.wallet_id
            )
        )
    )
    return [
        f"wallet {w.id}: balance {w.balance} but its entries sum to {int(sums.get(w.id) or 0)}"
        for w in db.session.scalars(select(Wallet))
        if w.balance != int(sums.get(w.id) or 0)
    ]


def _negative_balances_explained() -> list[str]:
    problems = []
    for wallet in db.session.scalars(select(Wallet).where(Wallet.balance < 0)):
        clawbacks = db.session.scalar(
            select(func.count(LedgerEntry.id)).where(
                LedgerEntry.wallet_id == wallet.id,
                LedgerEntry.kind.in_((ENTRY_TOPUP_REFUNDED, ENTRY_DISPUTE)),
            )
        )
        if not clawbacks:
            problems.append(f"wallet {wallet.id}: negative balance with no refund or dispute")
    return problems


def _open_disputes_counted() -> list[str]:
    counts = _pairs(
        db.session.execute(
            select(Dispute.wallet_id, func.count(Dispute.id))
            .where(Dispute.status == DisputeStatus.OPEN)
            .group_by(Dispute.wallet_id)
        )
    )
    return [
        f"wallet {w.id}: open_disputes {w.open_disputes} but {counts.get(w.id, 0)} open"
        for w in db.session.scalars(select(Wallet))
        if w.open_disputes != counts.get(w.id, 0)
    ]


def _entry_amounts(kind: str) -> dict[int, int]:
    rows = db.session.execute(
        select(LedgerEntry.purchase_id, LedgerEntry.amount).where(
            LedgerEntry.kind == kind, LedgerEntry.purchase_id.is_not(None)
        )
    )
    return {purchase_id: amount for purchase_id, amount in rows if purchase_id is not None}


def _purchases_consistent() -> list[str]:
    debits = _entry_amounts(ENTRY_PURCHASE)
    credits = _entry_amounts(ENTRY_REFUND)
    entitled = set(
        db.session.execute(
            select(Entitlement.purchase_id).where(Entitlement.purchase_id.is_not(None))
        ).scalars()
    )
    problems = []
    for p in db.session.scalars(select(Purchase)):
        if debits.get(p.id) != -p.amount:
            problems.append(f"purchase {p.id}: debit {debits.get(p.id)} for a price of {p.amount}")
        if p.status == PURCHASE_ACTIVE and p.id not in entitled:
            problems.append(f"purchase {p.id}: active but no entitlement")
        if p.status == PURCHASE_REFUNDED and credits.get(p.id) != p.amount:
            problems.append(f"purchase {p.id}: refunded but credited {credits.get(p.id)}")
        if p.status == PURCHASE_REFUNDED and p.id in entitled:
            problems.append(f"purchase {p.id}: refunded but still entitled")
    return problems


def _entitlements_backed() -> list[str]:
    problems = []
    rows = db.session.execute(
        select(Entitlement, Purchase).outerjoin(Purchase, Purchase.id == Entitlement.purchase_id)
    ).all()
    for ent, purchase in rows:
        if ent.source == "grant":
            continue
        if purchase is None or purchase.status != PURCHASE_ACTIVE:
            problems.append(f"entitlement {ent.id}: not backed by an active purchase")
        elif (purchase.user_id, purchase.article_id) != (ent.user_id, ent.article_id):
            problems.append(f"entitlement {ent.id}: backed by another reader's purchase")
    return problems


def _topups_consistent() -> list[str]:
    problems = []
    credited = _pairs(
        db.session.execute(
            select(LedgerEntry.reference, LedgerEntry.amount).where(LedgerEntry.kind == ENTRY_TOPUP)
        )
    )
    topups = {
        t.payment_intent_id: t for t in db.session.scalars(select(TopUp)) if t.payment_intent_id
    }
    for pi_id, amount in credited.items():
        topup = topups.get(pi_id)
        if topup is None:
            problems.append(f"top-up entry {pi_id}: no top-up record")
        elif topup.amount != amount or topup.status != TopUpStatus.SUCCEEDED:
            problems.append(
                f"top-up {pi_id}: credited {amount}, record says {topup.amount} {topup.status}"
            )
    for pi_id, topup in topups.items():
        if topup.status == TopUpStatus.SUCCEEDED and pi_id not in credited:
            problems.append(f"top-up {pi_id}: succeeded but never credited")
    return problems


def _clawbacks_capped() -> list[str]:
    rows = db.session.execute(
        select(LedgerEntry.payment_intent_id, LedgerEntry.kind, func.sum(LedgerEntry.amount))
        .where(LedgerEntry.payment_intent_id.is_not(None))
        .group_by(LedgerEntry.payment_intent_id, LedgerEntry.kind)
    )
    credited: dict[str, int] = {}
    clawed: dict[str, int] = {}
    for pi_id, kind, total in rows:
        assert pi_id is not None
        if kind == ENTRY_TOPUP:
            credited[pi_id] = int(total or 0)
        else:
            clawed[pi_id] = clawed.get(pi_id, 0) - int(total or 0)
    return [
        f"top-up {pi_id}: {taken} taken back from {credited.get(pi_id, 0)} credited"
        for pi_id, taken in clawed.items()
        if taken > credited.get(pi_id, 0)
    ]
