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
from dispatch_pay.money import Money, format_money
from dispatch_pay.payments import services as payments
from dispatch_pay.payments.fees import record_fee
from dispatch_pay.payments.gateway import Intent, PaymentGateway
from dispatch_pay.payments.receipts import queue_receipt
from dispatch_pay.wallet.disputes import record_card_refund
from dispatch_pay.wallet.ledger import locked_wallet, post_entry
from dispatch_pay.wallet.services import purchase_article
from models import ENTRY_TOPUP, Article, TopUp, TopUpStatus, db, utcnow

log = logging.getLogger(__name__)


# A succeeded top-up whose charge is disputed is not credited until the dispute is
# settled in the reader's favour (`failure_code` says why it waits).
CHARGE_DISPUTED = "charge_disputed"


def apply_intent(intent: Intent) -> TopUp | None:
    """Bring our top-up up to date with a PaymentIntent; credit it if it succeeded.

    None (and nothing written) when the PaymentIntent is not one of ours; raises
    payments.NotCreditable for one that names our top-up but does not match it.
    """
    ours = payments.our_intent(intent)
    if ours is None:
        return None
    locked_wallet(ours.reader.id, intent.currency)
    topup = payments.update_topup(ours)
    if intent.status == TopUpStatus.SUCCEEDED:
        credit_ours(ours)
    return topup


def credit_intent(intent: Intent, *, dispute_settled: bool = False) -> bool:
    """Credit a succeeded PaymentIntent of ours to its reader's wallet, exactly once.

    Returns True only for the call that credited it. `dispute_settled`: the charge's
    dispute closed in the reader's favour, so its `disputed` flag no longer holds it.
    Raises payments.NotCreditable for a PaymentIntent that does not match its top-up.
    """
    if intent.status != TopUpStatus.SUCCEEDED:
        return False
    ours = payments.our_intent(intent)
    return ours is not None and credit_ours(ours, dispute_settled=dispute_settled)


def credit_ours(ours: payments.OurIntent, *, dispute_settled: bool = False) -> bool:
    """Credit a PaymentIntent `payments.our_intent` recognised; True only the first time.

    Every credit path ends here: only a succeeded payment, never a disputed charge (until
    its dispute is settled for the reader), and what the card already got back is taken
    back in the same transaction.
    """
    intent = ours.intent
    if intent.status != TopUpStatus.SUCCEEDED:
        return False
    wallet = locked_wallet(ours.reader.id, intent.currency)
    topup = payments.topup_for_intent(ours)
    topup.status = TopUpStatus.SUCCEEDED
    topup.charge_id = intent.charge_id or topup.charge_id
    if intent.disputed and not dispute_settled and topup.credited_at is None:
        topup.failure_code = CHARGE_DISPUTED
        db.session.flush()
        return False
    entry = post_entry(wallet, ENTRY_TOPUP, intent.amount, intent.id, payment_intent_id=intent.id)
    if entry is not None:
        topup.credited_at = utcnow()
        topup.failure_code = None
    if intent.amount_refunded > 0:  # refunded before we heard of the success, or since
        record_card_refund(topup, intent.amount_refunded)
    if entry is None:
        return False
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
    shown = None
    if topup.buy_expected_amount is not None:  # bought only at the price the reader saw
        shown = Money(topup.buy_expected_amount, topup.currency)
    try:
        with db.session.begin_nested():
            purchase_article(ours.reader, article, expected_price=shown)
    except DomainError as exc:
        log.info(
            "top-up %s credited; purchase of %s not made: %s", topup.id, article.slug, exc.code
        )


def reconcile(gateway_: PaymentGateway, lookback: timedelta = timedelta(days=3)) -> list[str]:
    """Credit every recent succeeded PaymentIntent of ours that is not credited yet.

    Stripe is asked first, before any database work. Each PaymentIntent is its own
    transaction (committed here): no transaction holds two wallets, which account
    closing locks in id order (a reader's credits in Stripe's order could lock them the
    other way round: a deadlock), and a failure loses only its own credit.
    """
    since = int((utcnow() - lookback).timestamp())
    report: list[str] = []
    for intent in gateway_.recent_intents(since):
        try:
            ours = payments.our_intent(intent)
        except payments.NotCreditable as exc:
            report.append(f"not credited {intent.id}: {exc.reason}")
            continue
        if ours is None or intent.status != TopUpStatus.SUCCEEDED:
            db.session.commit()  # ends the read
            continue
        credited = credit_ours(ours)
        db.session.commit()
        if credited:
            report.append(
                f"credited {intent.id}: {format_money(intent.amount, intent.currency)} "
                f"to reader {ours.reader.id}"
            )
    return report
