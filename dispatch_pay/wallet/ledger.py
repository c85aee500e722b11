"""Wallets and their append-only ledger.

Every change of a balance goes through `post_entry`, which runs with the wallet row
locked and records an entry whose (kind, reference) is unique: the same effect can
never be recorded twice, however many callers race to record it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import make_transient_to_detached

from models import Article, LedgerEntry, Purchase, Wallet, db, utcnow
from models.base import conflict_insert


def find_wallet(user_id: int, currency: str) -> Wallet | None:
    return db.session.scalar(
        select(Wallet).where(Wallet.user_id == user_id, Wallet.currency == currency)
    )


# Built once; `populate_existing`: the locked row's values win over any loaded before.
_LOCK_USERS_WALLET = (
    select(Wallet)
    .where(Wallet.user_id == bindparam("user_id"), Wallet.currency == bindparam("currency"))
    .with_for_update()
    .execution_options(populate_existing=True)
)


def locked_wallet(user_id: int, currency: str) -> Wallet:
    """The reader's wallet in this currency, created if needed, locked for this transaction."""
    wallet = db.session.scalar(_LOCK_USERS_WALLET, {"user_id": user_id, "currency": currency})
    if wallet is not None:  # the common case: one statement finds and locks it
        return wallet
    wallet_id: int | None
    try:
        with db.session.begin_nested():
            created = Wallet(user_id=user_id, currency=currency, balance=0, open_disputes=0)
            db.session.add(created)
        wallet_id = created.id
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

    The caller holds the wallet's row lock (see `locked_wallet`). One statement: the
    unique (kind, reference) decides, with no look-up before it and no savepoint around
    it (INSERT ... ON CONFLICT DO NOTHING RETURNING, on PostgreSQL and SQLite alike).
    """
    values = {
        "wallet_id": wallet.id,
        "kind": kind,
        "amount": amount,
        "reference": reference,
        "payment_intent_id": payment_intent_id,
        "purchase_id": purchase_id,
        "note": note,
        "created_at": utcnow(),
    }
    db.session.flush()  # what the entry refers to (a purchase) is in the database first
    entry_id = db.session.scalar(_insert_once(values))
    if entry_id is None:
        return None
    entry = LedgerEntry(id=entry_id, **values)
    make_transient_to_detached(entry)  # the row exists: the session tracks it, never inserts it
    db.session.add(entry)
    wallet.balance += amount
    db.session.flush()
    return entry


def _insert_once(values: dict[str, Any]) -> Any:
    """INSERT of a ledger entry that inserts nothing if its (kind, reference) is taken."""
    insert = conflict_insert(LedgerEntry)
    return insert.values(values).on_conflict_do_nothing().returning(insert.table.c.id)


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
