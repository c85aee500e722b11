"""The reader's Stripe Customer and the card saved on it for off-session top-ups.

Every reader gets one Customer, made the first time it is needed; their top-ups and
their saved card are used only with it (issue 11, item 13a): Stripe refuses a payment
method attached to another Customer, and a card saved here belongs to one reader only
(`stripe_customers.payment_method_id` is unique), which also holds with localstripe,
whose SetupIntents attach nothing.

Stripe is never called with a transaction open: the callers commit before (see each
function), and what Stripe answered is written afterwards, in a transaction the
boundary commits.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from dispatch_pay.errors import DomainError
from dispatch_pay.payments.gateway import (
    CardDeclined,
    CardDetails,
    PaymentProviderUnavailable,
    PaymentRequestRejected,
    provider_unavailable,
    require_gateway,
)
from models import StripeCustomer, User, db, utcnow

log = logging.getLogger(__name__)

META_READER = "dispatch_reader"
META_PURPOSE = "dispatch_purpose"
PURPOSE_CUSTOMER = "reader"
PURPOSE_SAVED_CARD = "saved_card"


def customer_of(user_id: int) -> StripeCustomer | None:
    return db.session.get(StripeCustomer, user_id)


def ensure_customer(user: User) -> str:
    """The reader's Stripe Customer id, made at Stripe (and recorded) the first time.

    Commits the transaction in progress before it asks Stripe (no lock is held while
    Stripe answers); the new row is flushed, and the caller commits it.
    """
    found = customer_of(user.id)
    if found is not None:
        return found.customer_id
    user_id = user.id
    # The key names the reader and the moment they signed up: two first top-ups in
    # parallel make one Customer, and another deployment's reader 7 is another key.
    key = f"dispatch-customer-{user_id}-{int(user.created_at.timestamp())}"
    db.session.commit()
    try:
        customer_id = require_gateway().create_customer(
            metadata={META_READER: str(user_id), META_PURPOSE: PURPOSE_CUSTOMER},
            idempotency_key=key,
        )
    except PaymentProviderUnavailable as exc:
        raise provider_unavailable() from exc
    except PaymentRequestRejected as exc:
        raise DomainError(
            "payment_rejected", f"The payment provider refused: {exc}", status=402
        ) from exc
    try:
        with db.session.begin_nested():
            db.session.add(StripeCustomer(user_id=user_id, customer_id=customer_id))
    except IntegrityError:  # made in parallel (the same idempotency key: the same Customer)
        pass
    found = customer_of(user_id)
    assert found is not None
    return found.customer_id


def check_payment_method_is_theirs(user_id: int, payment_method: str) -> None:
    """Refuse a card saved by another reader (402 `payment_rejected`, as Stripe would)."""
    owner = db.session.scalar(
        select(StripeCustomer.user_id).where(StripeCustomer.payment_method_id == payment_method)
    )
    if owner is not None and owner != user_id:
        raise _not_yours()


def _not_yours() -> DomainError:
    return DomainError(
        "payment_rejected",
        "This payment method belongs to another account; use a card of your own.",
        status=402,
    )


@dataclass(frozen=True)
class SavedCard:
    brand: str | None
    last4: str | None


def saved_card(user_id: int) -> SavedCard | None:
    row = customer_of(user_id)
    if row is None or row.payment_method_id is None:
        return None
    return SavedCard(row.card_brand, row.card_last4)


def saved_payment_method(user_id: int) -> tuple[str, str] | None:
    """(Customer, payment method) to charge off-session, when the reader saved a card."""
    row = customer_of(user_id)
    if row is None or row.payment_method_id is None:
        return None
    return row.customer_id, row.payment_method_id


def save_card(user: User, payment_method: str) -> SavedCard:
    """Save a card for off-session top-ups: a confirmed SetupIntent on the reader's Customer.

    402 `card_declined`; 402 `requires_action` with the SetupIntent's `client_secret`
    (Stripe.js finishes it; the same request again then saves the card). Commits the
    transaction in progress before Stripe is asked; the caller commits what follows.
    """
    user_id = user.id
    check_payment_method_is_theirs(user_id, payment_method)
    customer_id = ensure_customer(user)
    row = customer_of(user_id)
    assert row is not None
    pending = (
        row.pending_setup_intent_id if row.pending_payment_method_id == payment_method else None
    )
    db.session.commit()  # nothing is locked while Stripe answers
    gateway = require_gateway()
    try:
        if pending is not None:
            setup = gateway.retrieve_setup(pending)
        else:
            setup = gateway.setup_card(
                customer=customer_id,
                payment_method=payment_method,
                metadata={META_READER: str(user_id), META_PURPOSE: PURPOSE_SAVED_CARD},
                idempotency_key=f"dispatch-setup-{secrets.token_hex(12)}",
            )
        details = gateway.card_details(payment_method) if setup.status == "succeeded" else None
    except CardDeclined as exc:
        raise DomainError("card_declined", exc.message, status=402) from exc
    except PaymentRequestRejected as exc:
        raise DomainError(
            "payment_rejected", f"The payment provider refused the card: {exc}", status=402
        ) from exc
    except PaymentProviderUnavailable as exc:
        raise provider_unavailable() from exc
    row = customer_of(user_id)
    assert row is not None
    if setup.status == "requires_action":
        row.pending_setup_intent_id = setup.id
        row.pending_payment_method_id = payment_method
        db.session.commit()  # the request fails, but the pending setup is worth keeping
        raise DomainError(
            "requires_action",
            "Your bank asks you to confirm this card; nothing was saved yet.",
            status=402,
            extra={"setup_intent": {"id": setup.id, "client_secret": setup.client_secret}},
        )
    if details is None:
        raise DomainError(
            "card_declined", f"The card could not be saved ({setup.status}).", status=402
        )
    previous = row.payment_method_id
    saved = _record_card(row, customer_id, details)
    if previous and previous != details.id:
        # The replaced card leaves the Customer: nothing can charge it through us again.
        db.session.commit()
        _detach_quietly(previous)
    return saved


def _detach_quietly(payment_method: str) -> None:
    """Detach a card nobody uses any more; a failure leaves it attached but unused."""
    try:
        require_gateway().detach_card(payment_method)
    except (PaymentRequestRejected, PaymentProviderUnavailable) as exc:
        log.warning("could not detach replaced card %s: %s", payment_method, type(exc).__name__)


def _record_card(row: StripeCustomer, customer_id: str, details: CardDetails) -> SavedCard:
    # Stripe attached the card to this Customer when the SetupIntent was confirmed;
    # localstripe attaches nothing (customer None): the unique column below then is
    # what keeps the card to this reader.
    if details.customer not in (None, customer_id):
        raise _not_yours()
    row.payment_method_id = details.id
    row.card_brand = details.brand
    row.card_last4 = details.last4
    row.card_saved_at = utcnow()
    row.pending_setup_intent_id = None
    row.pending_payment_method_id = None
    try:
        with db.session.begin_nested():
            db.session.flush()
    except IntegrityError as exc:  # saved by another reader meanwhile
        raise _not_yours() from exc
    return SavedCard(details.brand, details.last4)


def remove_card(user: User) -> bool:
    """Detach the saved card at Stripe, then forget it; False when none was saved.

    Commits before Stripe is asked; when Stripe cannot be reached, nothing changes (503).
    """
    user_id = user.id
    found = saved_payment_method(user_id)
    if found is None:
        return False
    _customer, payment_method = found
    db.session.commit()
    try:
        require_gateway().detach_card(payment_method)
    except PaymentRequestRejected as exc:
        # Not attached (any more) or unknown to Stripe: nothing can charge it through us.
        log.info("detaching %s: %s", payment_method, exc)
    except PaymentProviderUnavailable as exc:
        raise provider_unavailable() from exc
    row = customer_of(user_id)
    if row is not None and row.payment_method_id == payment_method:
        row.payment_method_id = None
        row.card_brand = None
        row.card_last4 = None
        row.card_saved_at = None
        db.session.flush()
    return True
