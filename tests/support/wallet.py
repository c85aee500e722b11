"""Money set up directly through the wallet services: funded wallets, purchases, refunds."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from dispatch_pay.payments.gateway import Intent
from dispatch_pay.wallet.crediting import credit_intent
from dispatch_pay.wallet.ledger import locked_wallet, post_entry
from dispatch_pay.wallet.services import purchase_article, refund_purchase
from models import ENTRY_ADJUSTMENT, Article, Purchase, User, db

_seq = itertools.count(1)


def fund(user: User, amount: int, currency: str = "usd") -> None:
    """Credit a wallet through the ledger, as an operator's adjustment would."""
    wallet = locked_wallet(user.id, currency)
    post_entry(wallet, ENTRY_ADJUSTMENT, amount, f"test-fund:{user.id}:{next(_seq)}")
    db.session.commit()


def credit_topup(user: User, amount: int, intent_id: str | None = None, **intent: Any) -> str:
    """Credit a succeeded top-up the way the webhook would; its PaymentIntent id.
    `intent`: more Intent fields (charge_id, card_brand, card_last4)."""
    intent_id = intent_id or f"pi_test_{user.id}_{next(_seq)}"
    credited = credit_intent(
        Intent(
            id=intent_id,
            status="succeeded",
            amount=amount,
            currency="usd",
            metadata={"dispatch_reader": str(user.id), "dispatch_purpose": "wallet_topup"},
            **intent,
        )
    )
    db.session.commit()
    return intent_id if credited else ""


def buy(user: User, article: Article, at: datetime | None = None) -> Purchase:
    """A purchase through the wallet service; `at` backdates it for period tests."""
    result = purchase_article(user, article)
    if at is not None:
        result.purchase.created_at = at
    db.session.commit()
    return result.purchase


def refund(publisher: User, purchase: Purchase, at: datetime | None = None) -> None:
    refund_purchase(publisher, purchase.id)
    if at is not None:
        purchase.refunded_at = at
    db.session.commit()
