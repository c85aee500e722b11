"""The payment gateway port: what the app asks of Stripe, and the typed values it gets.

Only stripe_gateway.py talks to Stripe; tests plug in their own implementation through
`create_app(payment_gateway=...)`. `current_gateway` is the one accessor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from flask import current_app

from dispatch_pay.errors import DomainError


class PaymentProviderUnavailable(Exception):
    """Stripe could not be reached, timed out, or failed on its side.

    `outcome_unknown`: the request may have reached Stripe (a timeout, an error on
    Stripe's side), so whether it took effect (a card charged) is not known.
    """

    def __init__(self, message: str, *, outcome_unknown: bool = False) -> None:
        super().__init__(message)
        self.outcome_unknown = outcome_unknown


class CardDeclined(Exception):
    def __init__(self, code: str, message: str, payment_intent_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.payment_intent_id = payment_intent_id


class PaymentRequestRejected(Exception):
    """Stripe refused the request itself (a bug on our side or a bad payment method)."""


@dataclass(frozen=True)
class FeeDetail:
    """One line of a balance transaction's `fee_details` (e.g. type "stripe_fee")."""

    type: str
    amount: int
    currency: str
    description: str | None = None


@dataclass(frozen=True)
class Fee:
    """Stripe's fee for a charge, from its balance transaction: integer minor units of
    the balance transaction's currency (the settlement currency, which may differ from
    the charge's)."""

    amount: int
    currency: str
    balance_transaction_id: str | None = None
    details: tuple[FeeDetail, ...] = ()


@dataclass(frozen=True)
class Intent:
    """The parts of a PaymentIntent that the app relies on."""

    id: str
    status: str
    amount: int
    currency: str
    metadata: dict[str, str] = field(default_factory=dict)
    client_secret: str | None = None
    charge_id: str | None = None
    created: int | None = None
    livemode: bool = False
    # Only when Stripe sent latest_charge and its balance_transaction expanded.
    fee: Fee | None = None
    # Stripe's code for why the last payment attempt failed (last_payment_error.code).
    failure_code: str | None = None
    # The card that paid (latest_charge.payment_method_details.card), for receipts.
    card_brand: str | None = None
    card_last4: str | None = None
    # Of the latest charge, when Stripe sent it expanded (0 / False when it did not):
    # money the card got back, and whether the cardholder disputed it.
    amount_refunded: int = 0
    disputed: bool = False


@dataclass(frozen=True)
class Charge:
    """The parts of a Charge that refunds, disputes and fees rely on."""

    id: str | None
    payment_intent_id: str | None
    amount: int = 0
    amount_refunded: int = 0
    currency: str = ""
    paid: bool = False
    metadata: dict[str, str] = field(default_factory=dict)
    # Only when Stripe sent the balance transaction expanded.
    fee: Fee | None = None


@dataclass(frozen=True)
class Dispute:
    id: str
    amount: int
    won: bool
    charge: Charge


# What a verified event is about, as the Stripe implementation reads it.
EventSubject = Intent | Charge | Dispute


@dataclass(frozen=True)
class Event:
    """A verified Stripe event: its envelope, and its object as Stripe sent it."""

    id: str
    type: str
    livemode: bool
    payload: dict[str, Any]


class InvalidSignature(Exception):
    pass


@dataclass(frozen=True)
class CardSetup:
    """A SetupIntent that saves a card on a Customer for off-session charges."""

    id: str
    status: str  # "succeeded", "requires_action", ... as Stripe names it
    client_secret: str | None = None
    payment_method: str | None = None


@dataclass(frozen=True)
class CardDetails:
    """A PaymentMethod (or a legacy card) as far as saving it needs: whose it is, and
    what to show."""

    id: str
    customer: str | None
    brand: str | None = None
    last4: str | None = None


class PaymentGateway(Protocol):
    def create_intent(
        self,
        *,
        amount: int,
        currency: str,
        metadata: dict[str, str],
        payment_method: str | None,
        idempotency_key: str,
        customer: str | None = None,
        off_session: bool = False,
    ) -> Intent:
        """Create (with a payment method: and confirm) a PaymentIntent. `customer`: the
        reader's Customer; `off_session`: the reader is not there (auto top-up), so a
        card that needs them comes back as CardDeclined("authentication_required") or
        an Intent in `requires_action`, and is not charged."""
        ...

    def cancel_intent(self, intent_id: str) -> None:
        """Cancel a PaymentIntent nobody will finish (off-session, asking for 3-D Secure)."""
        ...

    def create_customer(self, *, metadata: dict[str, str], idempotency_key: str) -> str:
        """A new Stripe Customer for a reader; its id."""
        ...

    def setup_card(
        self, *, customer: str, payment_method: str, metadata: dict[str, str], idempotency_key: str
    ) -> CardSetup:
        """Save a card on the Customer for off-session use (a confirmed SetupIntent).
        CardDeclined when the bank refuses it."""
        ...

    def retrieve_setup(self, setup_intent_id: str) -> CardSetup: ...

    def card_details(self, payment_method: str) -> CardDetails: ...

    def detach_card(self, payment_method: str) -> None:
        """Take the card off its Customer: it can no longer be charged through it."""
        ...

    def retrieve_intent(self, intent_id: str) -> Intent: ...

    def recent_intents(self, created_after: int) -> list[Intent]: ...

    def charge_fee(self, payment_intent_id: str) -> Fee | None:
        """Stripe's fee for the PaymentIntent's latest charge; None while it is unknown."""
        ...

    def refund(self, payment_intent_id: str, amount: int, idempotency_key: str) -> str:
        """Refund `amount` of a PaymentIntent's charge to its card; the Refund's id."""
        ...

    def publishable_key(self) -> str | None: ...

    def js_url(self) -> str: ...


class WebhookEvents(Protocol):
    """Stripe's side of a webhook: the signature check and reading an event's object.

    Separate from PaymentGateway because it needs only the webhook secret: events are
    verified (and refunds and disputes applied) even where no API key is configured.
    """

    def configured(self) -> bool:
        """Whether a webhook secret is set (else the endpoint answers 503)."""
        ...

    def event(self, payload: dict[str, Any]) -> Event:
        """The envelope of an event that is already trusted (verified, or a replay)."""
        ...

    def verify(self, payload: bytes, header: str | None) -> Event:
        """The event if `Stripe-Signature` is valid and fresh; else InvalidSignature."""
        ...

    def subject(self, event: Event) -> EventSubject | None:
        """The event's object as a typed value; None for a type we do not handle.
        Raises ValueError (or TypeError, KeyError) for an object we cannot read."""
        ...


GATEWAY_KEY = "payment_gateway"
WEBHOOKS_KEY = "stripe_webhooks"


def current_gateway() -> PaymentGateway | None:
    """The gateway this app was built with (create_app); None when Stripe is not configured."""
    found: PaymentGateway | None = current_app.extensions.get(GATEWAY_KEY)
    return found


def require_gateway() -> PaymentGateway:
    """The configured gateway, or the contract's 503 when buying is disabled."""
    found = current_gateway()
    if found is None:
        raise DomainError(
            "payments_disabled",
            "Buying is not available: Stripe is not configured on this server.",
            status=503,
        )
    return found


def card_payments_enabled() -> bool:
    """Top-ups need both Stripe keys: the secret one here, the publishable one for Stripe.js."""
    found = current_gateway()
    return found is not None and bool(found.publishable_key())


def webhook_events() -> WebhookEvents:
    """The webhook verifier this app was built with (see `configured`)."""
    found: WebhookEvents = current_app.extensions[WEBHOOKS_KEY]
    return found


def provider_unavailable(outcome_unknown: bool = False) -> DomainError:
    """The contract's 503. After a timeout nobody knows whether the card was charged, so
    the message says what happens either way instead of "nothing was charged"."""
    if outcome_unknown:
        message = (
            "The payment provider did not answer in time. If your card was charged, your "
            "wallet is credited automatically; retrying with the same Idempotency-Key "
            "never charges twice."
        )
    else:
        message = "The payment provider is unavailable; nothing was charged. Try again shortly."
    return DomainError("payment_provider_unavailable", message, status=503)


def live_keys(config: Mapping[str, Any] | None = None) -> bool:
    """Whether the configured Stripe key is a live one: events of the other mode are not
    for this deployment (a test event must never move real money, nor the reverse).
    `config`: the app's, where no context is pushed (the quick credit)."""
    key = str((current_app.config if config is None else config).get("STRIPE_SECRET_KEY") or "")
    return key.startswith(("sk_live_", "rk_live_"))
