"""Crediting a succeeded PaymentIntent to its reader's wallet, and buying on credit.

`payments.our_intent` says whether a PaymentIntent is one of our top-ups (and whose);
this module moves the money. `credit_intent` is idempotent through the ledger's unique
(kind, reference), so the synchronous answer, the webhook and `reconcile` may all report
the same payment.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select

from dispatch_pay.errors import DomainError
from dispatch_pay.money import format_money
from dispatch_pay.payments import services as payments
from dispatch_pay.payments.fees import record_fee
from dispatch_pay.payments.gateway import Intent, PaymentGateway
from dispatch_pay.payments.receipts import queue_receipt
from dispatch_pay.wallet.ledger import locked_wallet, post_entry
from dispatch_pay.wallet.services import purchase_article
from models import ENTRY_TOPUP, Article, TopUp, TopUpStatus, db, utcnow

log = logging.getLogger(__name__)


def apply_intent(intent: Intent) -> TopUp | None:
    """Bring our top-up up to date with a PaymentIntent; credit it if it succeeded.

    None (and nothing written) when the PaymentIntent is not one of ours.
    """
    ours = payments.our_intent(intent)
    if ours is None:
        return None
    locked_wallet(ours.reader.id, intent.currency)
    topup = payments.update_topup(ours)
    if intent.status == TopUpStatus.SUCCEEDED:
        credit_ours(ours)
    return topup


def credit_intent(intent: Intent) -> bool:
    """Credit a succeeded PaymentIntent of ours to its reader's wallet, exactly once.

    Returns True only for the call that credited it.
    """
    if intent.status != TopUpStatus.SUCCEEDED:
        return False
    ours = payments.our_intent(intent)
    return ours is not None and credit_ours(ours)


def credit_ours(ours: payments.OurIntent) -> bool:
    """Credit a PaymentIntent `payments.our_intent` recognised; True only the first time."""
    intent = ours.intent
    wallet = locked_wallet(ours.reader.id, intent.currency)
    topup = payments.topup_for_intent(ours)
    topup.status = TopUpStatus.SUCCEEDED
    topup.charge_id = intent.charge_id or topup.charge_id
    entry = post_entry(wallet, ENTRY_TOPUP, intent.amount, intent.id, payment_intent_id=intent.id)
    if entry is None:
        return False
    topup.credited_at = utcnow()
    topup.failure_code = None
    if intent.fee is not None:
        record_fee(topup.id, intent.fee)
    queue_receipt(topup, intent.card_brand, intent.card_last4)
    _buy_oncredit_ours(topup, ours)
    db.session.flush()
    return True


def _buy_oncredit_ours(topup: TopUp, ours: payments.OurIntent) -> None:
    """Complete the purchase that this top-up was made for, if the money now covers it."""
    article: Article | None = None
    if topup.buy_article_id is not None:
        article = db.session.get(Article, topup.buy_article_id)
    elif ours.article_slug:
        article = db.session.scalar(select(Article).where(Article.slug == ours.article_slug))
    if article is None:
        return
    try:
        with db.session.begin_nested():
            purchase_article(ours.reader, article)
    except DomainError as exc:
        log.info(
            "top-up %s credited; purchase of %s not made: %s", topup.id, article.slug, exc.code
        )


def reconcile(gateway_: PaymentGateway, lookback: timedelta = timedelta(days=3)) -> list[str]:
    """Credit every recent succeeded PaymentIntent of ours that is not credited yet.

    Stripe is asked first, before any database work; the caller commits.
    """
    since = int((utcnow() - lookback).timestamp())
    report: list[str] = []
    for intent in gateway_.recent_intents(since):
        ours = payments.our_intent(intent)
        if ours is None or intent.status != TopUpStatus.SUCCEEDED:
            continue
        if credit_ours(ours):
            report.append(
                f"credited {intent.id}: {format_money(intent.amount, intent.currency)} "
                f"to reader {ours.reader.id}"
            )
    return report
