"""The Stripe implementation of the payments port: PaymentGateway and WebhookEvents.

Stripe's payloads (PaymentIntents, charges, disputes) are read here and nowhere else.

This is the only module that imports `stripe`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import stripe

from dispatch_pay.config import STRIPE_NETWORK_RETRIES as NETWORK_RETRIES
from dispatch_pay.config import STRIPE_TIMEOUT_SECONDS as TIMEOUT_SECONDS
from dispatch_pay.payments.gateway import (
    CardDeclined,
    Charge,
    Dispute,
    Event,
    EventSubject,
    Fee,
    FeeDetail,
    Intent,
    InvalidSignature,
    PaymentProviderUnavailable,
    PaymentRequestRejected,
)

# Pinned so that payload shapes cannot change under us (e.g. `latest_charge`,
# `amount_refunded`); move it forward deliberately, with the tests.
STRIPE_API_VERSION = "2026-10-28.endive"
WEBHOOK_TOLERANCE_SECONDS = 300
# Asked for on the calls we make anyway, so that Stripe's fee (the latest charge's
# balance transaction) comes along without a request of its own where Stripe has it.
FEE_EXPAND = ["latest_charge.balance_transaction"]


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


def _metadata(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in (value or {}).items()}


def _id_of(value: Any) -> str | None:
    """Stripe sends either an id or the expanded object."""
    if isinstance(value, dict):
        return str(value.get("id")) if value.get("id") else None
    return str(value) if value else None


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
        metadata=_metadata(data.get("metadata")),
        client_secret=data.get("client_secret"),
        charge_id=charge_id,
        created=data.get("created"),
        livemode=bool(data.get("livemode", False)),
        fee=fee_from_charge(charge),
        failure_code=_failure_code(data.get("last_payment_error")),
        card_brand=card_brand,
        card_last4=card_last4,
    )


def _failure_code(error: Any) -> str | None:
    if not isinstance(error, dict) or not error.get("code"):
        return None
    return str(error["code"])


def charge_from_payload(data: dict[str, Any]) -> Charge:
    return Charge(
        id=_id_of(data.get("id")),
        payment_intent_id=_id_of(data.get("payment_intent")),
        amount=int(data.get("amount") or 0),
        amount_refunded=int(data.get("amount_refunded") or 0),
        currency=str(data.get("currency") or "").lower(),
        paid=bool(data.get("paid")) or data.get("status") == "succeeded",
        metadata=_metadata(data.get("metadata")),
        fee=fee_from_charge(data),
    )


def dispute_from_payload(data: dict[str, Any]) -> Dispute:
    """A dispute, with its charge (which Stripe sends as an id or an object)."""
    charge = data.get("charge")
    base: dict[str, Any] = dict(charge) if isinstance(charge, dict) else {"id": charge}
    if data.get("payment_intent") and not base.get("payment_intent"):
        base["payment_intent"] = data.get("payment_intent")
    return Dispute(
        id=str(data["id"]),
        amount=int(data.get("amount") or 0),
        won=data.get("status") in ("won", "warning_closed"),
        charge=charge_from_payload(base),
    )


_SUBJECTS: dict[str, Callable[[dict[str, Any]], EventSubject]] = {
    "payment_intent.": intent_from_payload,
    "charge.dispute.": dispute_from_payload,
    "charge.": charge_from_payload,
}


def build_client(
    secret_key: str,
    api_base: str | None,
    timeout: float = TIMEOUT_SECONDS,
    retries: int = NETWORK_RETRIES,
) -> stripe.StripeClient:
    """A client whose attempts together stay within `timeout` seconds (plus one short
    back-off between attempts, which stripe-python keeps under a second)."""
    base_addresses: Any = {"api": api_base} if api_base else None
    return stripe.StripeClient(
        secret_key,
        stripe_version=STRIPE_API_VERSION,
        base_addresses=base_addresses,
        max_network_retries=retries,
        http_client=stripe.RequestsClient(timeout=timeout / (retries + 1)),
    )


class StripeGateway:
    def __init__(
        self, client: stripe.StripeClient, publishable_key: str | None, api_base: str | None
    ) -> None:
        self._client = client
        self._publishable_key = publishable_key
        self._api_base = api_base

    def publishable_key(self) -> str | None:
        return self._publishable_key

    def js_url(self) -> str:
        if self._api_base:
            return self._api_base.rstrip("/") + "/js.stripe.com/v3/"
        return "https://js.stripe.com/v3/"

    def create_intent(
        self,
        *,
        amount: int,
        currency: str,
        metadata: dict[str, str],
        payment_method: str | None,
        idempotency_key: str,
    ) -> Intent:
        # Only parameters that real Stripe and localstripe both accept.
        params: dict[str, Any] = {
            "amount": amount,
            "currency": currency,
            "payment_method_types": ["card"],
            "metadata": metadata,
            "expand": FEE_EXPAND,
        }
        if payment_method:
            params["payment_method"] = payment_method
            params["confirm"] = True
        try:
            pi = self._client.v1.payment_intents.create(
                params=params,  # type: ignore[arg-type]  # plain dict of known keys
                options={"idempotency_key": idempotency_key},
            )
        except stripe.CardError as exc:
            error = exc.error
            intent = getattr(error, "payment_intent", None) if error else None
            raise CardDeclined(
                exc.code or "card_declined",
                exc.user_message or "Your card was declined.",
                intent.get("id") if isinstance(intent, dict) else None,
            ) from exc
        except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
            raise PaymentProviderUnavailable(str(exc)) from exc
        except stripe.InvalidRequestError as exc:
            raise PaymentRequestRejected(exc.user_message or str(exc)) from exc
        except stripe.StripeError as exc:
            raise PaymentProviderUnavailable(str(exc)) from exc
        return intent_from_payload(pi.to_dict())

    def retrieve_intent(self, intent_id: str) -> Intent:
        try:
            pi = self._client.v1.payment_intents.retrieve(intent_id, params={"expand": FEE_EXPAND})
        except stripe.InvalidRequestError as exc:
            raise PaymentRequestRejected(str(exc)) from exc
        except stripe.StripeError as exc:
            raise PaymentProviderUnavailable(str(exc)) from exc
        return intent_from_payload(pi.to_dict())

    def refund(self, payment_intent_id: str, amount: int, idempotency_key: str) -> str:
        try:
            refund = self._client.v1.refunds.create(
                params={"payment_intent": payment_intent_id, "amount": amount},
                options={"idempotency_key": idempotency_key},
            )
        except (stripe.InvalidRequestError, stripe.CardError) as exc:
            raise PaymentRequestRejected(str(exc)) from exc
        except stripe.StripeError as exc:
            raise PaymentProviderUnavailable(str(exc)) from exc
        return str(refund.id)

    def charge_fee(self, payment_intent_id: str) -> Fee | None:
        """The fee of the PaymentIntent's latest charge, from its balance transaction (one
        request, both expanded); None while there is no charge or it is not settled."""
        return self.retrieve_intent(payment_intent_id).fee

    def recent_intents(self, created_after: int) -> list[Intent]:
        """PaymentIntents created after a Unix time, newest first (at most 1,000)."""
        found: list[Intent] = []
        starting_after: str | None = None
        for _page in range(10):
            params: dict[str, Any] = {"limit": 100}
            if starting_after:
                params["starting_after"] = starting_after
            try:
                page = self._client.v1.payment_intents.list(params=params)  # type: ignore[arg-type]
            except stripe.StripeError as exc:
                raise PaymentProviderUnavailable(str(exc)) from exc
            items = [intent_from_payload(pi.to_dict()) for pi in page.data]
            recent = [i for i in items if (i.created or 0) >= created_after]
            found.extend(recent)
            if not page.has_more or not items or not recent:
                break
            starting_after = items[-1].id
        return found


def webhook_secrets(configured: str) -> list[str]:
    """STRIPE_WEBHOOK_SECRET may list several secrets, comma-separated, while one is rotated."""
    return [part.strip() for part in configured.split(",") if part.strip()]


def verify_webhook(payload: bytes, header: str | None, secret: str) -> dict[str, Any]:
    """The event as a dict, if `Stripe-Signature` is valid and fresh for any of the
    configured secrets (see `webhook_secrets`); else InvalidSignature."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidSignature(str(exc)) from exc
    failure: Exception = InvalidSignature("no webhook secret configured")
    for candidate in webhook_secrets(secret):
        try:
            stripe.WebhookSignature.verify_header(
                text, header, candidate, tolerance=WEBHOOK_TOLERANCE_SECONDS
            )
            break
        except stripe.SignatureVerificationError as exc:
            failure = exc
    else:
        raise InvalidSignature(str(failure)) from failure
    try:
        event = json.loads(payload)
    except ValueError as exc:
        raise InvalidSignature(str(exc)) from exc
    if not isinstance(event, dict) or "id" not in event or "type" not in event:
        raise InvalidSignature("not a Stripe event")
    return event


class StripeWebhooks:
    """WebhookEvents for Stripe: signatures checked against the configured secret(s)."""

    def __init__(self, secret: str | None) -> None:
        self._secret = secret or ""

    def configured(self) -> bool:
        return bool(webhook_secrets(self._secret))

    def verify(self, payload: bytes, header: str | None) -> Event:
        return self.event(verify_webhook(payload, header, self._secret))

    def event(self, event: dict[str, Any]) -> Event:
        return Event(
            id=str(event["id"]),
            type=str(event["type"]),
            livemode=bool(event.get("livemode", False)),
            payload=event,
        )

    def subject(self, event: Event) -> EventSubject | None:
        data = event.payload.get("data")
        obj = data.get("object") if isinstance(data, dict) else None
        if not isinstance(obj, dict):
            return None
        for prefix, parse in _SUBJECTS.items():
            if event.type.startswith(prefix):
                return parse(obj)
        return None
