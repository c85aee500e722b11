"""Wallet top-ups through Stripe, and the one function that credits a succeeded payment.

A top-up request runs in two transactions around the Stripe call: the top-up row (with
its Idempotency-Key) is committed first, so that a payment Stripe took is always
traceable to it, whoever reports it first: the synchronous confirmation, the webhook or
`reconcile`. `credit_intent` is idempotent through the ledger's unique (kind, reference).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import timedelta

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from dispatch_pay.catalog.gate import Access, read_access
from dispatch_pay.errors import DomainError, invalid_fields
from dispatch_pay.money import CURRENCIES, format_money
from dispatch_pay.payments.fees import record_fee
from dispatch_pay.payments.gateway import (
    CardDeclined,
    Intent,
    PaymentGateway,
    PaymentProviderUnavailable,
    PaymentRequestRejected,
)
from dispatch_pay.payments.receipts import queue_receipt
from dispatch_pay.wallet.ledger import locked_wallet, post_entry
from dispatch_pay.wallet.services import TOPUP_MAXIMUM, purchase_article, topup_minimum
from models import ENTRY_TOPUP, Article, TopUp, User, db, utcnow

log = logging.getLogger(__name__)

META_READER = "dispatch_reader"
META_PURPOSE = "dispatch_purpose"
META_ARTICLE = "dispatch_article"
META_TOPUP = "dispatch_topup"
META_REF = "dispatch_ref"
REFERENCE_LENGTH = 32  # secrets.token_hex(16)
PURPOSE_TOPUP = "wallet_topup"
MAX_ROW_ID = 2**31 - 1  # integer primary keys are 32-bit on PostgreSQL


def gateway() -> PaymentGateway:
    found: PaymentGateway | None = current_app.extensions.get("payment_gateway")
    if found is None:
        raise DomainError(
            "payments_disabled",
            "Buying is not available: Stripe is not configured on this server.",
            status=503,
        )
    return found


def provider_unavailable() -> DomainError:
    return DomainError(
        "payment_provider_unavailable",
        "The payment provider is unavailable; nothing was charged. Try again shortly.",
        status=503,
    )


def _validate_amount(amount: int, currency: str) -> None:
    minimum = topup_minimum(currency)
    if amount < minimum or amount > TOPUP_MAXIMUM:
        raise invalid_fields(
            {
                "amount": [
                    f"A top-up is between {format_money(minimum, currency)} and "
                    f"{format_money(TOPUP_MAXIMUM, currency)}."
                ]
            }
        )


def _article_to_buy(slug: str | None, currency: str) -> Article | None:
    if slug is None:
        return None
    article = db.session.scalar(select(Article).where(Article.slug == slug))
    if article is None or read_access(None, article) is Access.HIDDEN:
        raise invalid_fields({"buy": ["No such published article."]})
    if article.price_currency != currency:
        raise invalid_fields({"buy": [f"This article is priced in {article.price_currency}."]})
    return article


def _fingerprint(amount: int, currency: str, payment_method: str | None, buy: str | None) -> str:
    return hashlib.sha256(f"{amount}|{currency}|{payment_method}|{buy}".encode()).hexdigest()


def prepare_topup(
    user: User,
    *,
    amount: int,
    currency: str,
    payment_method: str | None,
    buy: str | None,
    idempotency_key: str | None,
) -> tuple[TopUp, bool]:
    """Validate and record the top-up; (top-up, True) when Stripe must still be asked."""
    gateway()  # 503 before anything is recorded when Stripe is not configured
    _validate_amount(amount, currency)
    article = _article_to_buy(buy, currency)
    fingerprint = _fingerprint(amount, currency, payment_method, buy)
    if idempotency_key is not None:
        existing = _topup_for_key(user.id, idempotency_key)
        if existing is not None:
            return _replay(existing, fingerprint)
    topup = TopUp(
        user_id=user.id,
        amount=amount,
        currency=currency,
        status="requires_payment_method",
        idempotency_key=idempotency_key,
        request_fingerprint=fingerprint,
        buy_article_id=article.id if article else None,
        reference=secrets.token_hex(REFERENCE_LENGTH // 2),
    )
    try:
        with db.session.begin_nested():
            db.session.add(topup)
    except IntegrityError:  # the same key, concurrently
        assert idempotency_key is not None
        existing = _topup_for_key(user.id, idempotency_key)
        assert existing is not None
        return _replay(existing, fingerprint)
    return topup, True


def _topup_for_key(user_id: int, key: str) -> TopUp | None:
    return db.session.scalar(
        select(TopUp).where(TopUp.user_id == user_id, TopUp.idempotency_key == key)
    )


def _replay(existing: TopUp, fingerprint: str) -> tuple[TopUp, bool]:
    if existing.request_fingerprint != fingerprint:
        raise DomainError(
            "idempotency_key_reused",
            "This Idempotency-Key was used for a different top-up.",
            status=409,
        )
    if existing.payment_intent_id is None:
        if existing.failure_code == "provider_unavailable":
            return existing, True  # Stripe never answered: ask again, same Stripe key
        if existing.failure_code is None:
            raise DomainError(
                "idempotency_key_in_use",
                "A top-up with this Idempotency-Key is still being processed.",
                status=409,
            )
    if existing.status == "failed":
        raise _replayed_failure(existing)
    return existing, False


def _replayed_failure(topup: TopUp) -> DomainError:
    """A retry with the key of a failed top-up gets the failure again, not a 201."""
    if topup.failure_code == "request_rejected":
        return DomainError(
            "payment_rejected", "The payment provider refused the payment.", status=402
        )
    return DomainError("card_declined", "Your card was declined.", status=402)


def submit_topup(topup_id: int, payment_method: str | None) -> TopUp:
    """Ask Stripe for the PaymentIntent and apply what it answered."""
    return apply_intent(request_intent(topup_id, payment_method))


def request_intent(topup_id: int, payment_method: str | None) -> Intent:
    """Create (and with a payment method, confirm) the top-up's PaymentIntent at Stripe.

    Failures are recorded on the top-up and raised as the contract's errors.
    """
    topup = db.session.get(TopUp, topup_id)
    assert topup is not None
    user_id, buy_article_id = topup.user_id, topup.buy_article_id
    metadata = {META_READER: str(user_id), META_PURPOSE: PURPOSE_TOPUP, META_TOPUP: str(topup.id)}
    if topup.reference:
        metadata[META_REF] = topup.reference
    if buy_article_id is not None:
        article = db.session.get(Article, buy_article_id)
        if article is not None:
            metadata[META_ARTICLE] = article.slug
    db.session.commit()  # no transaction stays open while Stripe is called
    try:
        intent = gateway().create_intent(
            amount=topup.amount,
            currency=topup.currency,
            metadata=metadata,
            payment_method=payment_method,
            idempotency_key=f"dispatch-topup-{topup.id}",
        )
    except CardDeclined as exc:
        _record_failure(topup.id, exc.code, exc.payment_intent_id)
        raise DomainError("card_declined", exc.message, status=402) from exc
    except PaymentRequestRejected as exc:
        _record_failure(topup.id, "request_rejected", None)
        raise DomainError(
            "payment_rejected", f"The payment provider refused the payment: {exc}", status=402
        ) from exc
    except PaymentProviderUnavailable as exc:
        log.warning("stripe unavailable for top-up %s: %s", topup.id, type(exc).__name__)
        _record_failure(topup.id, "provider_unavailable", None)
        raise provider_unavailable() from exc
    return intent


def _record_failure(topup_id: int, code: str, payment_intent_id: str | None) -> None:
    topup = db.session.get(TopUp, topup_id)
    assert topup is not None
    if topup.status != "succeeded":
        topup.status = "failed"
    topup.failure_code = code
    if payment_intent_id and topup.payment_intent_id is None:
        topup.payment_intent_id = payment_intent_id
    db.session.commit()  # a decline is a fact worth keeping even though the request fails


def apply_intent(intent: Intent) -> TopUp:
    """Bring our top-up up to date with a PaymentIntent; credit it if it succeeded."""
    user_id = _reader_id(intent)
    assert user_id is not None
    locked_wallet(user_id, intent.currency)
    topup = _topup_for_intent(intent, user_id)
    if topup.status != "succeeded":
        topup.status = intent.status if intent.status else topup.status
    topup.client_secret = intent.client_secret or topup.client_secret
    topup.charge_id = intent.charge_id or topup.charge_id
    db.session.flush()
    if intent.fee is not None:  # Stripe sent it expanded: no request of its own
        record_fee(topup.id, intent.fee)
    if intent.status == "succeeded":
        credit_intent(intent)
    return topup


def _reader_id(intent: Intent) -> int | None:
    """The reader a PaymentIntent belongs to, if it is one of ours."""
    meta = intent.metadata
    if meta.get(META_PURPOSE) != PURPOSE_TOPUP or not _is_row_id(meta.get(META_READER, "")):
        return None
    if intent.currency not in CURRENCIES:
        return None
    reader_id = int(meta[META_READER])
    if META_REF in meta and not _our_reference(meta[META_REF], reader_id):
        return None  # made by another deployment that shares the Stripe account
    return reader_id


def _our_reference(reference: str, reader_id: int) -> bool:
    """Whether one of our top-ups of this reader carries this metadata reference.

    PaymentIntents without one (made before references existed, or by hand in Stripe)
    are still told apart by their reader and purpose alone.
    """
    if len(reference) > REFERENCE_LENGTH:
        return False
    found = db.session.scalar(
        select(TopUp.id).where(TopUp.reference == reference, TopUp.user_id == reader_id)
    )
    return found is not None


def _is_row_id(value: str) -> bool:
    """An id as we write it into metadata; anything else (say "²" or 10**20) would make
    the lookup itself fail, and a verified event must never answer 500 for that."""
    return value.isascii() and value.isdigit() and 0 < int(value) <= MAX_ROW_ID


def is_ours(intent: Intent) -> bool:
    user_id = _reader_id(intent)
    return user_id is not None and db.session.get(User, user_id) is not None


def _topup_for_intent(intent: Intent, user_id: int) -> TopUp:
    """Our row for this PaymentIntent: by its id, else by the id in its metadata, else new.

    Called with the reader's wallet locked, so two reporters never both create it.
    """
    topup = db.session.scalar(select(TopUp).where(TopUp.payment_intent_id == intent.id))
    if topup is None and _is_row_id(intent.metadata.get(META_TOPUP, "")):
        candidate = db.session.get(TopUp, int(intent.metadata[META_TOPUP]))
        if (
            candidate is not None
            and candidate.user_id == user_id
            and candidate.payment_intent_id is None
        ):
            topup = candidate
    if topup is None:
        topup = TopUp(
            user_id=user_id, amount=intent.amount, currency=intent.currency, status=intent.status
        )
        db.session.add(topup)
    topup.payment_intent_id = intent.id
    db.session.flush()
    return topup


def credit_intent(intent: Intent) -> bool:
    """Credit a succeeded PaymentIntent of ours to its reader's wallet, exactly once.

    Returns True only for the call that credited it.
    """
    if intent.status != "succeeded":
        return False
    user_id = _reader_id(intent)
    if user_id is None or db.session.get(User, user_id) is None:
        return False
    wallet = locked_wallet(user_id, intent.currency)
    topup = _topup_for_intent(intent, user_id)
    topup.status = "succeeded"
    topup.charge_id = intent.charge_id or topup.charge_id
    entry = post_entry(wallet, ENTRY_TOPUP, intent.amount, intent.id, payment_intent_id=intent.id)
    if entry is None:
        return False
    topup.credited_at = utcnow()
    topup.failure_code = None
    if intent.fee is not None:
        record_fee(topup.id, intent.fee)
    queue_receipt(topup, intent.card_brand, intent.card_last4)
    _buy_on_credit(topup, intent)
    db.session.flush()
    return True


def _buy_on_credit(topup: TopUp, intent: Intent) -> None:
    """Complete the purchase that this top-up was made for, if the money now covers it."""
    article: Article | None = None
    if topup.buy_article_id is not None:
        article = db.session.get(Article, topup.buy_article_id)
    elif intent.metadata.get(META_ARTICLE):
        article = db.session.scalar(
            select(Article).where(Article.slug == intent.metadata[META_ARTICLE])
        )
    user = db.session.get(User, topup.user_id)
    if article is None or user is None:
        return
    try:
        with db.session.begin_nested():
            purchase_article(user, article)
    except DomainError as exc:
        log.info(
            "top-up %s credited; purchase of %s not made: %s", topup.id, article.slug, exc.code
        )


def reconcile(gateway_: PaymentGateway, lookback: timedelta = timedelta(days=3)) -> list[str]:
    """Credit every recent succeeded PaymentIntent of ours that is not credited yet."""
    since = int((utcnow() - lookback).timestamp())
    report: list[str] = []
    for intent in gateway_.recent_intents(since):
        if not is_ours(intent):
            continue
        if intent.status == "succeeded" and credit_intent(intent):
            report.append(
                f"credited {intent.id}: {format_money(intent.amount, intent.currency)} "
                f"to reader {intent.metadata[META_READER]}"
            )
        db.session.commit()
    return report
