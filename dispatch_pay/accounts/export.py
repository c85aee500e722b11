"""Everything stored about a reader, for `GET /api/v1/me/export` (the right of access).

It reads the tables directly (models sit below every capability), so accounts need not
import the wallet. Secrets never leave: token hashes, session ids, client secrets.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from dispatch_pay.accounts.sessions import list_sessions
from models import ApiToken as Token
from models import (
    Article,
    Entitlement,
    LedgerEntry,
    OutboxMessage,
    Purchase,
    TopUp,
    User,
    Wallet,
    db,
)


def _money(amount: int, currency: str) -> dict[str, Any]:
    return {"amount": amount, "currency": currency}


def export_reader(user: User) -> dict[str, Any]:
    wallets = list(db.session.scalars(select(Wallet).where(Wallet.user_id == user.id)))
    wallet_ids = [w.id for w in wallets]
    currency_of = {w.id: w.currency for w in wallets}
    entries = (
        list(
            db.session.scalars(
                select(LedgerEntry)
                .where(LedgerEntry.wallet_id.in_(wallet_ids))
                .order_by(LedgerEntry.id)
            )
        )
        if wallet_ids
        else []
    )
    purchases = db.session.execute(
        select(Purchase, Article.slug, Article.title)
        .join(Article, Article.id == Purchase.article_id)
        .where(Purchase.user_id == user.id)
        .order_by(Purchase.id)
    ).all()
    topups = db.session.scalars(select(TopUp).where(TopUp.user_id == user.id).order_by(TopUp.id))
    entitlements = db.session.execute(
        select(Entitlement, Article.slug)
        .join(Article, Article.id == Entitlement.article_id)
        .where(Entitlement.user_id == user.id)
    ).all()
    mail = db.session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.to_address == user.email)
        .order_by(OutboxMessage.id)
    )
    tokens = db.session.scalars(select(Token).where(Token.user_id == user.id).order_by(Token.id))
    return {
        "account": {
            "id": user.id,
            "email": user.email,
            "role": user.role,
            "created_at": user.created_at,
        },
        "wallets": [
            {
                "currency": w.currency,
                "balance": _money(w.balance, w.currency),
                "status": w.status,
                "created_at": w.created_at,
            }
            for w in wallets
        ],
        "wallet_entries": [
            {
                "id": e.id,
                "kind": e.kind,
                "amount": _money(e.amount, currency_of[e.wallet_id]),
                "note": e.note,
                "created_at": e.created_at,
            }
            for e in entries
        ],
        "purchases": [
            {
                "id": p.id,
                "article": {"slug": slug, "title": title},
                "price": _money(p.amount, p.currency),
                "status": p.status,
                "created_at": p.created_at,
                "refunded_at": p.refunded_at,
            }
            for p, slug, title in purchases
        ],
        "entitlements": [
            {"article": slug, "source": e.source, "created_at": e.created_at}
            for e, slug in entitlements
        ],
        "topups": [
            {
                "id": t.payment_intent_id,
                "amount": _money(t.amount, t.currency),
                "status": t.status,
                "charge_id": t.charge_id,
                "created_at": t.created_at,
                "credited_at": t.credited_at,
            }
            for t in topups
        ],
        "tokens": [
            {
                "id": t.id,
                "name": t.name,
                "prefix": t.prefix,
                "created_at": t.created_at,
                "last_used_at": t.last_used_at,
                "revoked_at": t.revoked_at,
            }
            for t in tokens
        ],
        "sessions": [
            {
                "id": s.id,
                "created_at": s.created_at,
                "last_seen_at": s.last_seen_at,
                "user_agent": s.user_agent,
                "address": s.address,
            }
            for s in list_sessions(user)
        ],
        "mail": [
            {"subject": m.subject, "status": m.status, "created_at": m.created_at} for m in mail
        ],
    }
