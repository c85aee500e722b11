"""Wallets and their append-only ledger.

Every change of a balance goes through `post_entry`, which runs with the wallet row
locked and records an entry whose (kind, reference) is unique: the same effect can
never be recorded twice, however many callers race to record it.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from models import Article, LedgerEntry, Purchase, Wallet, db


def find_wallet(user_id: int, currency: str) -> Wallet | None:
    return db.session.scalar(
        select(Wallet).where(Wallet.user_id == user_id, Wallet.currency == currency)
    )


def locked_wallet(user_id: int, currency: str) -> Wallet:
    """The reader's wallet in this currency, created if needed, locked for this transaction."""
    wallet_id = db.session.scalar(
        select(Wallet.id).where(Wallet.user_id == user_id, Wallet.currency == currency)
    )
    if wallet_id is None:
        try:
            with db.session.begin_nested():
                wallet = Wallet(user_id=user_id, currency=currency, balance=0, open_disputes=0)
                db.session.add(wallet)
            wallet_id = wallet.id
        except IntegrityError:  # created concurrently
            wallet_id = db.session.scalar(
                select(Wallet.id).where(Wallet.user_id == user_id, Wallet.currency == currency)
            )
    return _lock(wallet_id)


def _lock(wallet_id: int | None) -> Wallet:
    wallet = db.session.scalar(
        select(Wallet)
        .where(Wallet.id == wallet_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert wallet is not None
    return wallet


def entry_exists(kind: str, reference: str) -> bool:
    return (
        db.session.scalar(
            select(LedgerEntry.id).where(
                LedgerEntry.kind == kind, LedgerEntry.reference == reference
            )
        )
        is not None
    )


def post_entry(
    wallet: Wallet,
    kind: str,
    amount: int,
    reference: str,
    *,
    payment_intent_id: str | None = None,
    purchase_id: int | None = None,
    note: str | None = None,
) -> LedgerEntry | None:
    """Record an entry and move the cached balance; None if this effect was recorded before.

    The caller holds the wallet's row lock (see `locked_wallet`).
    """
    if entry_exists(kind, reference):
        return None
    entry = LedgerEntry(
        wallet_id=wallet.id,
        kind=kind,
        amount=amount,
        reference=reference,
        payment_intent_id=payment_intent_id,
        purchase_id=purchase_id,
        note=note,
    )
    try:
        with db.session.begin_nested():
            db.session.add(entry)
    except IntegrityError:
        return None
    wallet.balance += amount
    db.session.flush()
    return entry


def entries(wallet: Wallet, limit: int = 100) -> list[LedgerEntry]:
    return list(
        db.session.scalars(
            select(LedgerEntry)
            .where(LedgerEntry.wallet_id == wallet.id)
            .order_by(LedgerEntry.id.desc())
            .limit(limit)
        )
    )


def purchased_articles(found: list[LedgerEntry]) -> dict[int, Article]:
    """The article behind each purchase that these entries mention, in one query."""
    purchase_ids = {e.purchase_id for e in found if e.purchase_id is not None}
    if not purchase_ids:
        return {}
    rows = db.session.execute(
        select(Purchase.id, Article)
        .join(Article, Purchase.article_id == Article.id)
        .where(Purchase.id.in_(purchase_ids))
    )
    return {purchase_id: article for purchase_id, article in rows}
