"""What the paywall box of an article offers a reader: buy now, or top up and buy.

A read of the reader's balance (the Wallet row, never a write) and the top-up limits of
`payments`: the catalog shows the offer, the wallet carries out the purchase.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from dispatch_pay.accounts.spending_cap import cap_room
from dispatch_pay.payments.cards import saved_card
from dispatch_pay.payments.limits import selected_preset, topup_offer
from models import Article, User, Wallet, WalletSettings, db


def auto_topup_ready(user_id: int, currency: str) -> bool:
    """Whether a purchase in `currency` that lacks funds would charge a saved card."""
    settings = db.session.get(WalletSettings, user_id)
    if settings is None or settings.auto_topup_currency != currency:
        return False
    return settings.auto_topup_disabled_reason is None and saved_card(user_id) is not None


def paywall_offer(user: User | None, article: Article) -> dict[str, Any]:
    currency = article.price_currency
    balance = 0
    if user is not None:
        wallet = db.session.scalar(
            select(Wallet).where(Wallet.user_id == user.id, Wallet.currency == currency)
        )
        balance = wallet.balance if wallet else 0
        if wallet is not None and wallet.is_frozen:
            return {"action": "frozen", "balance": balance}
        room = cap_room(user.id, currency)
        if room is not None and room.spent + article.price_amount > room.cap:
            return {
                "action": "cap",
                "balance": balance,
                "daily_cap": {"amount": room.cap, "currency": currency},
                "spent_today": {"amount": room.spent, "currency": currency},
            }
    if balance >= article.price_amount:
        return {"action": "buy", "balance": balance}
    if user is not None and auto_topup_ready(user.id, currency):
        # One click still: the purchase charges the saved card (wallet/auto_topup.py),
        # and says so with a 402 when it cannot (monthly limit, 3-D Secure, decline).
        return {"action": "buy", "balance": balance, "auto_topup": True}
    offer = topup_offer(currency, article.price_amount - balance)
    amount = selected_preset(offer)
    return {
        "action": "topup",
        "balance": balance,
        "topup": {"amount": amount, "currency": currency},
    }
