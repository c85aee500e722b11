"""The Stripe implementation of PaymentGateway, and webhook signature checks.

This is the only module that imports `stripe`.
"""

from __future__ import annotations

import json
from typing import Any

import stripe

from dispatch_pay.payments.gateway import (
    CardDeclined,
    Fee,
    Intent,
    PaymentProviderUnavailable,
    PaymentRequestRejected,
    intent_from_payload,
)

# Pinned so that payload shapes cannot change under us (e.g. `latest_charge`,
# `amount_refunded`); move it forward deliberately, with the tests.
STRIPE_API_VERSION = "2026-10-28.endive"
# The whole budget of one Stripe call, shared by its attempts (STRIPE_TIMEOUT_SECONDS):
# a reader waits about this long, never more, before a hung Stripe becomes a 503.
TIMEOUT_SECONDS = 10.0
# Retries reuse the Idempotency-Key, so Stripe never charges twice for them.
NETWORK_RETRIES = 1
WEBHOOK_TOLERANCE_SECONDS = 300
# Asked for on the calls we make anyway, so that Stripe's fee (the latest charge's
# balance transaction) comes along without a request of its own where Stripe has it.
FEE_EXPAND = ["latest_charge.balance_transaction"]


class InvalidSignature(Exception):
    pass


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
