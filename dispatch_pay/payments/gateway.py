"""The payment gateway interface. Only stripe_gateway.py talks to Stripe."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


class PaymentProviderUnavailable(Exception):
    """Stripe could not be reached, timed out, or failed on its side."""


class CardDeclined(Exception):
    def __init__(self, code: str, message: str, payment_intent_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.payment_intent_id = payment_intent_id


class PaymentRequestRejected(Exception):
    """Stripe refused the request itself (a bug on our side or a bad payment method)."""


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


def intent_from_payload(data: dict[str, Any]) -> Intent:
    """Build an Intent from a PaymentIntent as Stripe serialises it (API or event)."""
    charge = data.get("latest_charge")
    charge_id = charge.get("id") if isinstance(charge, dict) else charge
    return Intent(
        id=str(data["id"]),
        status=str(data.get("status") or ""),
        amount=int(data.get("amount") or 0),
        currency=str(data.get("currency") or "").lower(),
        metadata={str(k): str(v) for k, v in (data.get("metadata") or {}).items()},
        client_secret=data.get("client_secret"),
        charge_id=charge_id,
        created=data.get("created"),
        livemode=bool(data.get("livemode", False)),
    )


class PaymentGateway(Protocol):
    def create_intent(
        self,
        *,
        amount: int,
        currency: str,
        metadata: dict[str, str],
        payment_method: str | None,
        idempotency_key: str,
    ) -> Intent: ...

    def retrieve_intent(self, intent_id: str) -> Intent: ...

    def recent_intents(self, created_after: int) -> list[Intent]: ...

    def publishable_key(self) -> str | None: ...

    def js_url(self) -> str: ...
