"""Auto top-up: when a purchase lacks funds, charge the reader's saved card off-session.

The settings: `below`, `amount` and `monthly_limit`, in one currency. A purchase that
lacks funds in that currency charges the saved card `amount` — more when the purchase
needs more, so that at least `below` is left in the wallet after it — provided the
month's (UTC) auto top-ups stay within `monthly_limit`.

Each auto top-up is an ordinary top-up (a `topups` row whose reference the PaymentIntent
carries as `dispatch_ref`), so the synchronous answer, the webhook and `reconcile` credit
it exactly once, through `crediting`.

Transactions (no row lock is held while Stripe answers):
1. the purchase fails for lack of funds with the wallet locked; under that same lock the
   month's auto top-ups are summed and the new one is recorded (so parallel purchases
   count each other's reservations and cannot pass the limit together); commit;
2. Stripe is asked, with no transaction open (the payments time budget applies);
3. what Stripe answered is applied in a new transaction: succeeded — credit it and buy
   (the purchase's rules are all checked again); needs the reader (3-D Secure) — nothing
   was charged, the top-up is failed and the purchase answers its 402; declined — auto
   top-up is switched off and the reader mailed.
A reservation whose outcome is unknown (Stripe timed out) keeps counting against the
limit until the webhook or `reconcile` says what happened.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any, TypeVar

from sqlalchemy import func, select

from dispatch_pay.errors import DomainError, invalid_fields
from dispatch_pay.mail.outbox import absolute_url, queue_mail
from dispatch_pay.money import format_money, money
from dispatch_pay.payments import cards
from dispatch_pay.payments import services as payments
from dispatch_pay.payments.gateway import current_gateway
from dispatch_pay.payments.limits import (
    TOPUP_MAXIMUM,
    topup_amount_allowed,
    topup_minimum,
    topup_range_message,
)
from dispatch_pay.wallet import crediting
from dispatch_pay.wallet.ledger import locked_wallet
from models import TopUp, TopUpStatus, User, WalletSettings, db, utcnow

log = logging.getLogger(__name__)

T = TypeVar("T")
DISABLED_BY_DECLINE = "card_declined"
AUTHENTICATION_REQUIRED = "authentication_required"


# --- settings -----------------------------------------------------------------------------


def _settings(user_id: int) -> WalletSettings:
    settings = db.session.get(WalletSettings, user_id)
    if settings is None:
        settings = WalletSettings(user_id=user_id)
        db.session.add(settings)
    return settings


def check_auto_topup(value: dict[str, Any]) -> None:
    """The rules no schema can say: one currency, a chargeable amount, a consistent limit."""
    currency = value["amount"]["currency"]
    problems: dict[str, list[str]] = {}
    for name in ("below", "monthly_limit"):
        if value[name]["currency"] != currency:
            problems[name] = [f"Must be in {currency}, the currency of amount."]
    if not topup_amount_allowed(value["amount"]["amount"], currency):
        problems["amount"] = [
            f"{topup_range_message(currency)} (Stripe's minimum card charge is "
            f"{format_money(topup_minimum(currency), currency)})."
        ]
    limit = value["monthly_limit"]["amount"]
    if "below" not in problems and value["below"]["amount"] > limit:
        problems["below"] = ["Cannot be above the monthly limit."]
    if "amount" not in problems and value["amount"]["amount"] > limit:
        problems["monthly_limit"] = ["Must be at least the top-up amount."]
    if problems:
        raise invalid_fields({"auto_topup": problems})


def set_auto_topup(user: User, value: dict[str, Any] | None) -> WalletSettings:
    """Switch auto top-up on (or again, after a decline switched it off), or off (None)."""
    if value is not None:
        check_auto_topup(value)
    settings = _settings(user.id)
    settings.auto_topup_below = value["below"]["amount"] if value else None
    settings.auto_topup_amount = value["amount"]["amount"] if value else None
    settings.auto_topup_monthly_limit = value["monthly_limit"]["amount"] if value else None
    settings.auto_topup_currency = value["amount"]["currency"] if value else None
    settings.auto_topup_disabled_reason = None
    settings.updated_at = utcnow()
    db.session.flush()
    return settings


def start_of_month(now: datetime | None = None) -> datetime:
    day = (now or utcnow()).astimezone(UTC).date().replace(day=1)
    return datetime.combine(day, time(0), tzinfo=UTC)


def topped_up_this_month(user_id: int, currency: str) -> int:
    """Auto top-ups this month (UTC) that charged, or may have charged, the card."""
    return int(
        db.session.scalar(
            select(func.coalesce(func.sum(TopUp.amount), 0)).where(
                TopUp.user_id == user_id,
                TopUp.currency == currency,
                TopUp.auto.is_(True),
                TopUp.created_at >= start_of_month(),
                TopUp.status.not_in([TopUpStatus.FAILED, TopUpStatus.CANCELED]),
            )
        )
        or 0
    )


def settings_view(user_id: int) -> dict[str, Any] | None:
    """The auto top-up settings as the API shows them; None when it is off."""
    settings = db.session.get(WalletSettings, user_id)
    if settings is None or settings.auto_topup_currency is None:
        return None
    currency = settings.auto_topup_currency
    return {
        "below": money(settings.auto_topup_below or 0, currency),
        "amount": money(settings.auto_topup_amount or 0, currency),
        "monthly_limit": money(settings.auto_topup_monthly_limit or 0, currency),
        "topped_up_this_month": money(topped_up_this_month(user_id, currency), currency),
        "active": settings.auto_topup_disabled_reason is None,
        "disabled_reason": settings.auto_topup_disabled_reason,
    }


# --- charging -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Reservation:
    topup_id: int
    request: payments.IntentRequest


def _refusal_note(refusal: DomainError, status: str, message: str) -> DomainError:
    """The purchase's own 402, saying what auto top-up did and where to see to it."""
    refusal.message = message
    refusal.extra["auto_topup"] = {
        "status": status,
        "wallet_url": absolute_url("wallet.wallet_page"),
    }
    return refusal


def reserve(user_id: int, currency: str, shortfall: int) -> Reservation | str | None:
    """Record an auto top-up for a purchase short of `shortfall` (the wallet locked).

    A Reservation when Stripe is to be asked; a reason (str) when auto top-up is on but
    may not charge (the monthly limit); None when it is off or there is no card.
    """
    settings = db.session.get(WalletSettings, user_id)
    saved = cards.saved_payment_method(user_id)
    if (
        settings is None
        or settings.auto_topup_currency != currency
        or settings.auto_topup_disabled_reason is not None
        or saved is None
        or current_gateway() is None
    ):
        return None
    assert settings.auto_topup_amount is not None and settings.auto_topup_below is not None
    assert settings.auto_topup_monthly_limit is not None
    locked_wallet(user_id, currency)  # held already by the purchase; said here for the reader
    amount = max(settings.auto_topup_amount, shortfall + settings.auto_topup_below)
    if amount > TOPUP_MAXIMUM:
        amount = max(settings.auto_topup_amount, shortfall)
    if amount > TOPUP_MAXIMUM:
        return "over_maximum"
    if topped_up_this_month(user_id, currency) + amount > settings.auto_topup_monthly_limit:
        return "monthly_limit_reached"
    topup = payments.record_auto_topup(user_id, amount, currency)
    customer, payment_method = saved
    request = payments.intent_request(topup.id, payment_method, customer=customer, off_session=True)
    return Reservation(topup.id, request)


def top_up_and_buy(
    user_id: int, currency: str, refusal: DomainError, purchase: Callable[[], T]
) -> T:
    """The purchase `purchase` retried after an auto top-up, or `refusal` (its 402).

    Called in the transaction where the purchase failed for lack of funds, with the
    wallet still locked; commits it (see the module's docstring for the steps).
    """
    shortfall = int(refusal.extra["shortfall"]["amount"])
    reserved = reserve(user_id, currency, shortfall)
    if reserved is None:
        raise refusal
    if isinstance(reserved, str):
        db.session.rollback()
        raise _refusal_note(
            refusal,
            reserved,
            "Your wallet does not cover this dispatch, and auto top-up would go over the "
            "monthly limit you set; nothing was charged. Top up on your wallet page.",
        )
    db.session.commit()  # the reservation counts for parallel purchases; locks released
    try:
        intent = payments.create_intent(reserved.request)
    except payments.TopUpFailure as failure:
        _record_failure(user_id, failure)
        db.session.commit()
        if failure.code == AUTHENTICATION_REQUIRED:
            raise _needs_reader(refusal) from failure
        if failure.code == "request_rejected":
            raise _refusal_note(
                refusal,
                "payment_rejected",
                "The payment provider refused to charge your saved card; nothing was "
                "charged. Save the card again or top up on your wallet page.",
            ) from failure
        if failure.error.status == 402:
            raise _refusal_note(
                refusal,
                DISABLED_BY_DECLINE,
                "Your saved card was declined, so nothing was charged and auto top-up is "
                "now off. Check the card or save another on your wallet page.",
            ) from failure
        raise failure.error from failure
    if intent.status == TopUpStatus.REQUIRES_ACTION:
        _cancel(intent.id)
        _record_failure(
            user_id,
            payments.TopUpFailure(reserved.topup_id, AUTHENTICATION_REQUIRED, intent.id, refusal),
        )
        db.session.commit()
        raise _needs_reader(refusal)
    crediting.apply_intent(intent)
    if intent.status != TopUpStatus.SUCCEEDED:  # processing: credited when it succeeds
        db.session.commit()
        raise _refusal_note(
            refusal,
            "processing",
            "Your saved card is being charged; the dispatch can be bought once the money "
            "is in your wallet.",
        )
    return purchase()


def _needs_reader(refusal: DomainError) -> DomainError:
    return _refusal_note(
        refusal,
        "requires_action",
        "Your bank wants you to confirm payments with your saved card, so auto top-up "
        "charged nothing. Top up on your wallet page (your bank will ask you there).",
    )


def _cancel(intent_id: str) -> None:
    """An off-session PaymentIntent waiting for 3-D Secure is canceled: nobody is there to
    finish it, and it must not be completed later behind the reader's back."""
    gateway = current_gateway()
    if gateway is None:
        return
    try:
        gateway.cancel_intent(intent_id)
    except Exception as exc:  # best effort: an unconfirmed PaymentIntent charges nothing
        log.warning("could not cancel %s: %s", intent_id, type(exc).__name__)


def _record_failure(user_id: int, failure: payments.TopUpFailure) -> None:
    """A refused auto top-up charged nothing (failed, not counted); a decline also
    switches auto top-up off and tells the reader. After a timeout nobody knows: the
    top-up stays reserved until the webhook or `reconcile` says."""
    if failure.outcome_unknown:
        topup = payments.locked_topup(failure.topup_id)  # the webhook may have credited it
        if topup.credited_at is None:
            topup.failure_code = failure.code
        db.session.flush()
        return
    payments.record_failure(failure)
    if failure.code in (AUTHENTICATION_REQUIRED, "request_rejected", "provider_unavailable"):
        return
    _switch_off_after_decline(user_id, failure.topup_id)


def _switch_off_after_decline(user_id: int, topup_id: int) -> None:
    settings = db.session.get(WalletSettings, user_id)
    if settings is None or settings.auto_topup_disabled_reason is not None:
        return
    settings.auto_topup_disabled_reason = DISABLED_BY_DECLINE
    user = db.session.get(User, user_id)
    topup = db.session.get(TopUp, topup_id)
    card = cards.saved_card(user_id)
    if user is None or user.is_deleted or topup is None:
        return
    name = f"{card.brand or 'card'} ending in {card.last4}" if card and card.last4 else "card"
    queue_mail(
        "auto_topup_declined",
        user.email,
        "Your card was declined: auto top-up is off",
        card=f"saved {name}",
        amount_text=format_money(topup.amount, topup.currency),
        url=absolute_url("wallet.wallet_page"),
    )
    db.session.flush()
