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
    # The card that paid (latest_charge.payment_method_details.card), for receipts.
    card_brand: str | None = None
    card_last4: str | None = None


def _minor_units(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _currency(value: Any) -> str | None:
    if isinstance(value, str) and len(value) == 3 and value.isascii() and value.isalpha():
        return value.lower()
    return None


def fee_from_charge(charge: Any) -> Fee | None:
    """The fee in a Charge whose `balance_transaction` is expanded; None when it is an id,
    null (not settled yet) or not shaped as Stripe documents it."""
    if not isinstance(charge, dict):
        return None
    txn = charge.get("balance_transaction")
    if not isinstance(txn, dict):
        return None
    amount, currency = _minor_units(txn.get("fee")), _currency(txn.get("currency"))
    if amount is None or currency is None:
        return None
    details: list[FeeDetail] = []
    for item in txn.get("fee_details") or []:
        if not isinstance(item, dict):
            continue
        part, part_currency = _minor_units(item.get("amount")), _currency(item.get("currency"))
        if part is None or part_currency is None:
            continue
        description = item.get("description")
        details.append(
            FeeDetail(
                type=str(item.get("type") or "")[:50],
                amount=part,
                currency=part_currency,
                description=str(description)[:200] if description else None,
            )
        )
    txn_id = txn.get("id")
    return Fee(
        amount=amount,
        currency=currency,
        balance_transaction_id=str(txn_id)[:255] if txn_id else None,
        details=tuple(details),
    )


def card_from_charge(charge: Any) -> tuple[str | None, str | None]:
    """(brand, last four) of the card that paid an expanded Charge, when Stripe says."""
    details = charge.get("payment_method_details") if isinstance(charge, dict) else None
    card = details.get("card") if isinstance(details, dict) else None
    if not isinstance(card, dict):
        return None, None
    brand, last4 = card.get("brand"), card.get("last4")
    return (
        str(brand)[:20] if isinstance(brand, str) and brand else None,
        last4 if isinstance(last4, str) and len(last4) == 4 and last4.isdigit() else None,
    )


def intent_from_payload(data: dict[str, Any]) -> Intent:
    """Build an Intent from a PaymentIntent as Stripe serialises it (API or event)."""
    charge = data.get("latest_charge")
    charge_id = charge.get("id") if isinstance(charge, dict) else charge
    card_brand, card_last4 = card_from_charge(charge)
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
        fee=fee_from_charge(charge),
        card_brand=card_brand,
        card_last4=card_last4,
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

    def charge_fee(self, payment_intent_id: str) -> Fee | None:
        """Stripe's fee for the PaymentIntent's latest charge; None while it is unknown."""
        ...

    def refund(self, payment_intent_id: str, amount: int, idempotency_key: str) -> str:
        """Refund `amount` of a PaymentIntent's charge to its card; the Refund's id."""
        ...

    def publishable_key(self) -> str | None: ...

    def js_url(self) -> str: ...
