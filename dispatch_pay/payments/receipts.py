"""Receipts for credited top-ups and notes for refunds, mailed through the outbox.

The receipt is queued in the same transaction that credits the top-up (exactly once:
only the call that credited it queues one) and can be shown again at any time from the
top-up's stored details and the seller configured on the server.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from flask import current_app

from dispatch_pay.errors import not_found
from dispatch_pay.mail.outbox import absolute_url, queue_mail
from dispatch_pay.money import format_money
from models import TopUp, User, db

RECEIPT_ENDPOINT = "receipts.receipt_page"  # the printable receipt, by PaymentIntent id


def seller(config: Mapping[str, Any] | None = None) -> dict[str, str]:
    config = current_app.config if config is None else config
    return {
        "name": config.get("SELLER_NAME") or config["SITE_NAME"],
        "address": config.get("SELLER_ADDRESS") or "",
        "tax_id": config.get("SELLER_TAX_ID") or "",
    }


def receipt_number(topup_id: int) -> str:
    return f"R-{topup_id:08d}"


def receipt_of(topup: TopUp) -> dict[str, Any]:
    return receipt_values(
        number=receipt_number(topup.id),
        payment_intent_id=topup.payment_intent_id,
        credited_at=topup.credited_at,
        amount=topup.amount,
        currency=topup.currency,
        card_brand=topup.card_brand,
        card_last4=topup.card_last4,
        charge_id=topup.charge_id,
        config=current_app.config,
    )


def receipt_values(
    *,
    number: str,
    payment_intent_id: str | None,
    credited_at: datetime | None,
    amount: int,
    currency: str,
    card_brand: str | None,
    card_last4: str | None,
    charge_id: str | None,
    config: Mapping[str, Any],
) -> dict[str, Any]:
    """A receipt as pages and mail show it (also for a credit made before Flask, which
    has no application context: see webhooks/quick_credit.py)."""
    return {
        "id": payment_intent_id,
        "number": number,
        "seller": seller(config),
        "date": credited_at,
        "amount": {"amount": amount, "currency": currency},
        "amount_text": format_money(amount, currency),
        "card": {"brand": card_brand, "last4": card_last4},
        "charge_id": charge_id,
    }


def receipt_subject(receipt: dict[str, Any]) -> str:
    return f"Receipt {receipt['number']}: {receipt['amount_text']} added to your wallet"


def receipt_for(user: User, payment_intent_id: str) -> dict[str, Any]:
    """The receipt of one of the user's credited top-ups; 404 for anyone else's."""
    topup = db.session.query(TopUp).filter_by(payment_intent_id=payment_intent_id).one_or_none()
    if topup is None or topup.user_id != user.id or topup.credited_at is None:
        raise not_found("receipt")
    return receipt_of(topup)


def queue_receipt(topup: TopUp, card_brand: str | None, card_last4: str | None) -> None:
    """Called once, where a top-up is credited: keep the card details, mail the receipt."""
    topup.card_brand = card_brand or topup.card_brand
    topup.card_last4 = card_last4 or topup.card_last4
    user = db.session.get(User, topup.user_id)
    if user is None or not user.email:
        return
    receipt = receipt_of(topup)
    queue_mail(
        "receipt",
        user.email,
        receipt_subject(receipt),
        receipt=receipt,
        url=absolute_url(RECEIPT_ENDPOINT, topup_id=topup.payment_intent_id),
    )


def queue_card_refund_note(topup: TopUp, amount: int) -> None:
    """Stripe refunded (part of) a top-up to the card: tell the reader."""
    user = db.session.get(User, topup.user_id)
    if user is None or not user.email or amount <= 0:
        return
    queue_mail(
        "card_refund",
        user.email,
        f"Refund of {format_money(amount, topup.currency)} to your card",
        amount_text=format_money(amount, topup.currency),
        receipt=receipt_of(topup),
    )


def queue_purchase_refund_note(user_id: int, title: str, amount: int, currency: str) -> None:
    user = db.session.get(User, user_id)
    if user is None or not user.email:
        return
    queue_mail(
        "purchase_refund",
        user.email,
        f"Refund of {format_money(amount, currency)} to your wallet",
        amount_text=format_money(amount, currency),
        title=title,
    )
