"""Wallet top-ups through Stripe: the top-up records, and which PaymentIntents are ours.

Nothing here commits and nothing here touches a wallet: the boundary (the top-up
request, the webhook, `reconcile`) commits, and `wallet.crediting` credits what
`our_intent` recognises. A top-up request is two transactions around the Stripe call
(see `wallet/api.py`): the top-up row (with its Idempotency-Key) is committed first, so
that a payment Stripe took is always traceable to it, whoever reports it first.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from dispatch_pay.errors import DomainError
from dispatch_pay.payments.cards import check_payment_method_is_theirs
from dispatch_pay.payments.fees import record_fee
from dispatch_pay.payments.gateway import (
    CardDeclined,
    Intent,
    PaymentProviderUnavailable,
    PaymentRequestRejected,
    provider_unavailable,
    require_gateway,
)
from dispatch_pay.payments.limits import topup_amount_allowed, validate_topup_amount
from models import Article, TopUp, TopUpStatus, User, db, utcnow

log = logging.getLogger(__name__)

META_READER = "dispatch_reader"
META_PURPOSE = "dispatch_purpose"
META_ARTICLE = "dispatch_article"
META_TOPUP = "dispatch_topup"
META_REF = "dispatch_ref"
REFERENCE_LENGTH = 32  # secrets.token_hex(16)
PURPOSE_TOPUP = "wallet_topup"


def _fingerprint(
    amount: int, currency: str, payment_method: str | None, buy: str | None, price: int | None
) -> str:
    request = f"{amount}|{currency}|{payment_method}|{buy}"
    if price is not None:  # only then: fingerprints of older top-ups stay valid
        request += f"|{price}"
    return hashlib.sha256(request.encode()).hexdigest()


def prepare_topup(
    user: User,
    *,
    amount: int,
    currency: str,
    payment_method: str | None,
    buy: Article | None,
    idempotency_key: str | None,
    buy_price: int | None = None,
) -> tuple[TopUp, bool]:
    """Validate and record the top-up; (top-up, True) when Stripe must still be asked.

    `buy` is the article to buy once the money is in, already checked by the caller;
    `buy_price` the price the reader was shown for it (it is bought only at that price).
    """
    require_gateway()  # 503 before anything is recorded when Stripe is not configured
    validate_topup_amount(amount, currency)
    if payment_method is not None:
        check_payment_method_is_theirs(user.id, payment_method)
    fingerprint = _fingerprint(
        amount, currency, payment_method, buy.slug if buy else None, buy_price
    )
    if idempotency_key is not None:
        existing = _topup_for_key(user.id, idempotency_key)
        if existing is not None:
            return _replay(existing, fingerprint)
    topup = TopUp(
        user_id=user.id,
        amount=amount,
        currency=currency,
        status=TopUpStatus.REQUIRES_PAYMENT_METHOD,
        idempotency_key=idempotency_key,
        request_fingerprint=fingerprint,
        buy_article_id=buy.id if buy else None,
        buy_expected_amount=buy_price if buy else None,
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


def record_auto_topup(user_id: int, amount: int, currency: str) -> TopUp:
    """The top-up row of an auto top-up, before Stripe is asked (the caller holds the
    wallet lock, under which the monthly limit was checked)."""
    topup = TopUp(
        user_id=user_id,
        amount=amount,
        currency=currency,
        status=TopUpStatus.REQUIRES_CONFIRMATION,
        reference=secrets.token_hex(REFERENCE_LENGTH // 2),
        auto=True,
    )
    db.session.add(topup)
    db.session.flush()
    return topup


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
    if existing.status == TopUpStatus.FAILED:
        raise _replayed_failure(existing)
    return existing, False


def _replayed_failure(topup: TopUp) -> DomainError:
    """A retry with the key of a failed top-up gets the failure again, not a 201."""
    if topup.failure_code == "request_rejected":
        return DomainError(
            "payment_rejected", "The payment provider refused the payment.", status=402
        )
    return DomainError("card_declined", "Your card was declined.", status=402)


@dataclass(frozen=True)
class IntentRequest:
    """What Stripe is asked for a top-up, read before the transaction ends."""

    topup_id: int
    amount: int
    currency: str
    metadata: dict[str, str]
    payment_method: str | None
    reference: str | None = None
    customer: str | None = None  # the reader's Stripe Customer
    off_session: bool = False  # auto top-up: the reader is not there to confirm

    @property
    def idempotency_key(self) -> str:
        """Stripe's Idempotency-Key: the top-up's random reference, so that two
        deployments sharing a Stripe account never collide (top-up ids repeat)."""
        return f"dispatch-topup-{self.reference or self.topup_id}"


class TopUpFailure(Exception):
    """Stripe refused or failed a top-up: recorded by `record_failure`, then raised."""

    def __init__(
        self,
        topup_id: int,
        code: str,
        payment_intent_id: str | None,
        error: DomainError,
        *,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(error.message)
        # Stripe may have acted on the request (a timeout): the card may be charged.
        self.outcome_unknown = outcome_unknown
        self.topup_id = topup_id
        self.code = code
        self.payment_intent_id = payment_intent_id
        self.error = error


def intent_request(
    topup_id: int,
    payment_method: str | None,
    *,
    customer: str | None = None,
    off_session: bool = False,
) -> IntentRequest:
    """The PaymentIntent to create for a top-up, tagged with our metadata."""
    topup = db.session.get(TopUp, topup_id)
    assert topup is not None
    metadata = {
        META_READER: str(topup.user_id),
        META_PURPOSE: PURPOSE_TOPUP,
        META_TOPUP: str(topup.id),
    }
    if topup.reference:
        metadata[META_REF] = topup.reference
    if topup.buy_article_id is not None:
        article = db.session.get(Article, topup.buy_article_id)
        if article is not None:
            metadata[META_ARTICLE] = article.slug
    return IntentRequest(
        topup.id,
        topup.amount,
        topup.currency,
        metadata,
        payment_method,
        topup.reference,
        customer=customer,
        off_session=off_session,
    )


def create_intent(request: IntentRequest) -> Intent:
    """Create (and with a payment method, confirm) the PaymentIntent at Stripe.

    Call it with no transaction open. Failures come back as TopUpFailure.
    """
    try:
        return require_gateway().create_intent(
            amount=request.amount,
            currency=request.currency,
            metadata=request.metadata,
            payment_method=request.payment_method,
            idempotency_key=request.idempotency_key,
            customer=request.customer,
            off_session=request.off_session,
        )
    except CardDeclined as exc:
        error = DomainError("card_declined", exc.message, status=402)
        raise TopUpFailure(request.topup_id, exc.code, exc.payment_intent_id, error) from exc
    except PaymentRequestRejected as exc:
        error = DomainError(
            "payment_rejected", f"The payment provider refused the payment: {exc}", status=402
        )
        raise TopUpFailure(request.topup_id, "request_rejected", None, error) from exc
    except PaymentProviderUnavailable as exc:
        log.warning("stripe unavailable for top-up %s: %s", request.topup_id, type(exc).__name__)
        error = provider_unavailable(exc.outcome_unknown)
        raise TopUpFailure(
            request.topup_id,
            "provider_unavailable",
            None,
            error,
            outcome_unknown=exc.outcome_unknown,
        ) from exc


def record_failure(failure: TopUpFailure) -> None:
    """Stripe refused the top-up, or did not answer. The row is locked and read afresh: a
    webhook may have credited it while Stripe was asked (a timeout after the charge), and
    a credited top-up stays as it is, whatever this request heard."""
    topup = locked_topup(failure.topup_id)
    if topup.status != TopUpStatus.SUCCEEDED and topup.credited_at is None:
        topup.status = TopUpStatus.FAILED
        topup.failure_code = failure.code
    if failure.payment_intent_id and topup.payment_intent_id is None:
        topup.payment_intent_id = failure.payment_intent_id
    db.session.flush()


@dataclass(frozen=True)
class OurIntent:
    """A PaymentIntent recognised as one of our top-ups, its metadata checked once."""

    intent: Intent
    reader: User
    topup_id: int  # our top-up row, found by the PaymentIntent's dispatch_ref
    article_slug: str | None  # the article this top-up was made to buy, if any


class NotCreditable(Exception):
    """A PaymentIntent that names one of our top-ups but does not match it (another
    reader, amount, currency or PaymentIntent): never credited; stored and reported."""

    def __init__(self, intent: Intent, reason: str) -> None:
        super().__init__(f"{intent.id}: {reason}")
        self.intent = intent
        self.reason = reason


def our_intent(intent: Intent) -> OurIntent | None:
    """The reader, top-up and article behind a PaymentIntent; None if it is not ours.

    Ours means: made by this deployment for a top-up, i.e. its `dispatch_ref` is the
    reference of one of our top-ups (PaymentIntents without one are never credited,
    whatever reader they name). One that names our top-up but disagrees with it raises
    NotCreditable: a top-up is credited only to its own reader, for its own amount.
    """
    meta = intent.metadata
    reference = meta.get(META_REF, "")
    if meta.get(META_PURPOSE) != PURPOSE_TOPUP or not 0 < len(reference) <= REFERENCE_LENGTH:
        return None
    topup = db.session.scalar(select(TopUp).where(TopUp.reference == reference))
    if topup is None:
        return None  # made by another deployment that shares the Stripe account
    reason = _mismatch(intent, topup)
    if reason is not None:
        raise NotCreditable(intent, reason)
    reader = db.session.get(User, topup.user_id)
    if reader is None:
        return None
    return OurIntent(intent, reader, topup.id, meta.get(META_ARTICLE) or None)


def _mismatch(intent: Intent, topup: TopUp) -> str | None:
    """Why a PaymentIntent carrying this top-up's reference is not this top-up's payment."""
    if intent.metadata.get(META_READER) != str(topup.user_id):
        return "another_reader"
    if topup.payment_intent_id is not None and topup.payment_intent_id != intent.id:
        return "another_payment_intent"
    if intent.currency != topup.currency:
        return "another_currency"
    if intent.amount != topup.amount:
        return "another_amount"
    if not topup_amount_allowed(topup.amount, topup.currency):
        return "amount_outside_limits"
    return None


def topup_for_intent(ours: OurIntent) -> TopUp:
    """Our row for this PaymentIntent (the one its reference names), linked to it.

    The caller holds the reader's wallet lock; the row is locked and read afresh (an
    object loaded before, say by a request that then asked Stripe, may be out of date).
    """
    topup = locked_topup(ours.topup_id)
    topup.payment_intent_id = ours.intent.id
    db.session.flush()
    return topup


def locked_topup(topup_id: int) -> TopUp:
    """The top-up, its row locked for this transaction and read afresh (an object loaded
    earlier, or by a request that then waited on Stripe, may be out of date). What this
    transaction changed is flushed first, so it is kept. The caller holds the wallet's
    lock first, if it takes it at all (the order every path keeps)."""
    db.session.flush()
    topup = db.session.get(TopUp, topup_id, with_for_update=True, populate_existing=True)
    assert topup is not None
    return topup


def update_topup(ours: OurIntent) -> TopUp:
    """Bring our top-up row up to date with what Stripe says of its PaymentIntent."""
    intent = ours.intent
    topup = topup_for_intent(ours)
    reported = TopUpStatus.of(intent.status)
    if topup.status != TopUpStatus.SUCCEEDED and reported is not None:
        topup.status = reported
    topup.client_secret = intent.client_secret or topup.client_secret
    topup.charge_id = intent.charge_id or topup.charge_id
    db.session.flush()
    if intent.fee is not None:  # Stripe sent it expanded: no request of its own
        record_fee(topup.id, intent.fee)
    return topup


def claim_stripe_check(topup_id: int, interval_seconds: float) -> bool:
    """Whether Stripe may be asked about this top-up now: True for at most one caller
    every `interval_seconds`, whichever process it runs in (a conditional UPDATE)."""
    now = utcnow()
    claimed = db.session.execute(
        update(TopUp)
        .where(
            TopUp.id == topup_id,
            or_(
                TopUp.checked_at.is_(None),
                TopUp.checked_at <= now - timedelta(seconds=interval_seconds),
            ),
        )
        .values(checked_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(claimed, "rowcount", 0) == 1)


def mark_failed(topup: TopUp, code: str | None) -> None:
    """payment_intent.payment_failed: a top-up not credited yet is failed, with Stripe's code."""
    if topup.status != TopUpStatus.SUCCEEDED:
        topup.status = TopUpStatus.FAILED
        topup.failure_code = str(code or "payment_failed")[:100]
    db.session.flush()


def find_topup(payment_intent_id: str | None, charge_id: str | None = None) -> TopUp | None:
    """Our top-up behind a charge: by its PaymentIntent, else by the charge id."""
    topup = None
    if payment_intent_id:
        topup = db.session.scalar(select(TopUp).where(TopUp.payment_intent_id == payment_intent_id))
    if topup is None and charge_id:
        topup = db.session.scalar(select(TopUp).where(TopUp.charge_id == charge_id))
    return topup
