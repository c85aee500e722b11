"""The Stripe implementation of the payments port: PaymentGateway and WebhookEvents.

Stripe's payloads (PaymentIntents, charges, disputes) are read here and nowhere else.

This is the only module that imports `stripe`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import stripe

from dispatch_pay.config import STRIPE_MAX_CONCURRENT_CALLS as MAX_CONCURRENT_CALLS
from dispatch_pay.config import STRIPE_NETWORK_RETRIES as NETWORK_RETRIES
from dispatch_pay.config import STRIPE_TIMEOUT_SECONDS as TIMEOUT_SECONDS
from dispatch_pay.payments.gateway import (
    CardDeclined,
    CardDetails,
    CardSetup,
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
        amount_refunded=_refunded(charge),
        disputed=bool(charge.get("disputed")) if isinstance(charge, dict) else False,
    )


def _refunded(charge: Any) -> int:
    """`amount_refunded` of an expanded charge; 0 when it is an id (not expanded)."""
    if not isinstance(charge, dict):
        return 0
    return int(charge.get("amount_refunded") or 0)


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
        # Only a lost dispute takes the money: `won`, and `warning_closed` (an early
        # fraud warning that never became a dispute), leave it with the reader.
        won=data.get("status") != "lost",
        charge=charge_from_payload(base),
    )


def setup_from_payload(data: dict[str, Any]) -> CardSetup:
    return CardSetup(
        id=str(data["id"]),
        status=str(data.get("status") or ""),
        client_secret=data.get("client_secret"),
        payment_method=_id_of(data.get("payment_method")),
    )


def card_from_payload(data: dict[str, Any]) -> CardDetails:
    """A PaymentMethod (`card.brand`, `card.last4`), or a legacy Card object (`brand`,
    `last4` at the top: what localstripe answers for the `card_` ids of its Stripe.js)."""
    nested = data.get("card")
    card: dict[str, Any] = nested if isinstance(nested, dict) else data
    brand, last4 = card.get("brand"), card.get("last4")
    return CardDetails(
        id=str(data["id"]),
        customer=_id_of(data.get("customer")),
        brand=str(brand).lower()[:20] if isinstance(brand, str) and brand else None,
        last4=last4 if isinstance(last4, str) and len(last4) == 4 and last4.isdigit() else None,
    )


_SUBJECTS: dict[str, Callable[[dict[str, Any]], EventSubject]] = {
    "payment_intent.": intent_from_payload,
    "charge.dispute.": dispute_from_payload,
    "charge.": charge_from_payload,
}


class _DeadlineRequestsClient(stripe.RequestsClient):
    """requests, with each attempt's timeout set by the caller's thread (`attempt_timeout`):
    the gateway gives every attempt what is left of one budget, never more."""

    def __init__(self, timeout: float) -> None:
        self._per_thread = threading.local()
        self._fallback_timeout = timeout
        super().__init__(timeout=timeout)

    @property  # stripe-python reads self._timeout at each request
    def _timeout(self) -> float:
        return float(getattr(self._per_thread, "timeout", self._fallback_timeout))

    @_timeout.setter
    def _timeout(self, value: Any) -> None:
        self._fallback_timeout = float(value)

    def attempt_timeout(self, seconds: float | None) -> None:
        if seconds is None:
            vars(self._per_thread).pop("timeout", None)
        else:
            self._per_thread.timeout = seconds


def build_client(
    secret_key: str, api_base: str | None, http: stripe.HTTPClient
) -> stripe.StripeClient:
    """A client that makes one attempt per call; StripeGateway retries within its budget
    (stripe-python's own retries sleep between attempts, past any budget)."""
    base_addresses: Any = {"api": api_base} if api_base else None
    return stripe.StripeClient(
        secret_key,
        stripe_version=STRIPE_API_VERSION,
        base_addresses=base_addresses,
        max_network_retries=0,
        http_client=http,
    )


T = TypeVar("T")
# Below this, another attempt could not get an answer in time anyway.
LEAST_ATTEMPT_SECONDS = 0.05


def _outcome_unknown(exc: stripe.StripeError) -> bool:
    """Whether a failed request may have reached Stripe (and so taken effect)."""
    if isinstance(exc, stripe.APIConnectionError):
        text = str(exc)
        never_sent = ("ConnectTimeout", "NewConnectionError", "Connection refused")
        return not any(marker in text for marker in never_sent)
    return not isinstance(exc, stripe.RateLimitError)  # a 429 was refused before acting


class StripeGateway:
    """PaymentGateway for Stripe.

    Every call has one time budget (STRIPE_TIMEOUT_SECONDS) shared by its attempts, and
    at most `max_concurrent` calls run at once in this process: a frozen Stripe holds
    only that many of the process's threads, and the others keep serving pages (a call
    that finds no free slot is refused at once, as if Stripe were unavailable).
    """

    def __init__(
        self,
        secret_key: str,
        publishable_key: str | None,
        api_base: str | None,
        *,
        budget: float = TIMEOUT_SECONDS,
        retries: int = NETWORK_RETRIES,
        max_concurrent: int = MAX_CONCURRENT_CALLS,
    ) -> None:
        self._http = _DeadlineRequestsClient(timeout=budget)
        self._client = build_client(secret_key, api_base, self._http)
        self._publishable_key = publishable_key
        self._api_base = api_base
        self._budget = budget
        self._attempts = max(1, retries + 1)
        self._slots = threading.BoundedSemaphore(max(1, max_concurrent))

    def _call(self, request: Callable[[], T]) -> T:
        """Run a Stripe request within the budget, retrying what may be retried."""
        if not self._slots.acquire(blocking=False):
            raise PaymentProviderUnavailable("too many Stripe calls in flight in this process")
        deadline = time.monotonic() + self._budget
        failure: stripe.StripeError | None = None
        try:
            for attempt in range(self._attempts):
                left = deadline - time.monotonic()
                if left < LEAST_ATTEMPT_SECONDS:
                    break
                self._http.attempt_timeout(left / (self._attempts - attempt))
                try:
                    return request()
                except (stripe.APIConnectionError, stripe.APIError) as exc:
                    failure = exc  # retried with the same Idempotency-Key: never twice
        finally:
            self._http.attempt_timeout(None)
            self._slots.release()
        assert failure is not None
        raise PaymentProviderUnavailable(
            str(failure), outcome_unknown=_outcome_unknown(failure)
        ) from failure

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
        customer: str | None = None,
        off_session: bool = False,
    ) -> Intent:
        # Only parameters that real Stripe and localstripe both accept.
        params: dict[str, Any] = {
            "amount": amount,
            "currency": currency,
            "payment_method_types": ["card"],
            "metadata": metadata,
            "expand": FEE_EXPAND,
        }
        if customer:
            # Stripe then refuses a payment method attached to another Customer.
            params["customer"] = customer
        if payment_method:
            params["payment_method"] = payment_method
            params["confirm"] = True
            if off_session:
                # Stripe answers a card that needs its holder with a CardError
                # `authentication_required` (localstripe: `requires_action`); nothing is charged.
                params["off_session"] = True
        try:
            pi = self._call(
                lambda: self._client.v1.payment_intents.create(
                    params=params,  # type: ignore[arg-type]  # plain dict of known keys
                    options={"idempotency_key": idempotency_key},
                )
            )
        except stripe.CardError as exc:
            error = exc.error
            intent = getattr(error, "payment_intent", None) if error else None
            raise CardDeclined(
                exc.code or "card_declined",
                exc.user_message or "Your card was declined.",
                intent.get("id") if isinstance(intent, dict) else None,
            ) from exc
        except stripe.InvalidRequestError as exc:
            raise PaymentRequestRejected(exc.user_message or str(exc)) from exc
        except stripe.StripeError as exc:
            raise PaymentProviderUnavailable(
                str(exc), outcome_unknown=_outcome_unknown(exc)
            ) from exc
        return intent_from_payload(pi.to_dict())

    def cancel_intent(self, intent_id: str) -> None:
        try:
            self._call(lambda: self._client.v1.payment_intents.cancel(intent_id))
        except stripe.InvalidRequestError as exc:  # already canceled, failed or succeeded
            raise PaymentRequestRejected(str(exc)) from exc
        except stripe.StripeError as exc:
            raise PaymentProviderUnavailable(str(exc)) from exc

    def create_customer(self, *, metadata: dict[str, str], idempotency_key: str) -> str:
        try:
            found = self._call(
                lambda: self._client.v1.customers.create(
                    params={"metadata": metadata},
                    options={"idempotency_key": idempotency_key},
                )
            )
        except stripe.InvalidRequestError as exc:
            raise PaymentRequestRejected(str(exc)) from exc
        except stripe.StripeError as exc:
            raise PaymentProviderUnavailable(str(exc)) from exc
        return str(found.id)

    def setup_card(
        self, *, customer: str, payment_method: str, metadata: dict[str, str], idempotency_key: str
    ) -> CardSetup:
        # Created, then confirmed with the card: two requests that Stripe and localstripe
        # both accept (localstripe takes neither `payment_method` nor `confirm` on create).
        # Confirming a SetupIntent of a Customer attaches the card to that Customer.
        create: dict[str, Any] = {
            "customer": customer,
            "usage": "off_session",
            "payment_method_types": ["card"],
            "metadata": metadata,
        }
        try:
            created = self._call(
                lambda: self._client.v1.setup_intents.create(
                    params=create,  # type: ignore[arg-type]  # plain dict of known keys
                    options={"idempotency_key": f"{idempotency_key}-create"},
                )
            )
            confirmed = self._call(
                lambda: self._client.v1.setup_intents.confirm(
                    created.id,
                    params={"payment_method": payment_method},
                    options={"idempotency_key": f"{idempotency_key}-confirm"},
                )
            )
        except stripe.CardError as exc:
            raise CardDeclined(
                exc.code or "card_declined", exc.user_message or "Your card was declined."
            ) from exc
        except stripe.InvalidRequestError as exc:
            raise PaymentRequestRejected(exc.user_message or str(exc)) from exc
        except stripe.StripeError as exc:
            raise PaymentProviderUnavailable(str(exc)) from exc
        return setup_from_payload(confirmed.to_dict())

    def retrieve_setup(self, setup_intent_id: str) -> CardSetup:
        try:
            found = self._call(lambda: self._client.v1.setup_intents.retrieve(setup_intent_id))
        except stripe.InvalidRequestError as exc:
            raise PaymentRequestRejected(str(exc)) from exc
        except stripe.StripeError as exc:
            raise PaymentProviderUnavailable(str(exc)) from exc
        return setup_from_payload(found.to_dict())

    def card_details(self, payment_method: str) -> CardDetails:
        try:
            found = self._call(lambda: self._client.v1.payment_methods.retrieve(payment_method))
        except stripe.InvalidRequestError as exc:
            raise PaymentRequestRejected(exc.user_message or str(exc)) from exc
        except stripe.StripeError as exc:
            raise PaymentProviderUnavailable(str(exc)) from exc
        return card_from_payload(found.to_dict())

    def detach_card(self, payment_method: str) -> None:
        try:
            self._call(lambda: self._client.v1.payment_methods.detach(payment_method))
        except stripe.InvalidRequestError as exc:
            raise PaymentRequestRejected(str(exc)) from exc
        except stripe.StripeError as exc:
            raise PaymentProviderUnavailable(str(exc)) from exc

    def retrieve_intent(self, intent_id: str) -> Intent:
        try:
            pi = self._call(
                lambda: self._client.v1.payment_intents.retrieve(
                    intent_id, params={"expand": FEE_EXPAND}
                )
            )
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

    def _list_intents(self, params: dict[str, Any]) -> Any:
        return self._client.v1.payment_intents.list(params=params)  # type: ignore[arg-type]

    def recent_intents(self, created_after: int) -> list[Intent]:
        """PaymentIntents created after a Unix time, newest first (at most 1,000)."""
        found: list[Intent] = []
        starting_after: str | None = None
        for _page in range(10):
            # The latest charge comes along: reconcile must see what was refunded or
            # disputed before it credits anything.
            params: dict[str, Any] = {"limit": 100, "expand": ["data.latest_charge"]}
            if starting_after:
                params["starting_after"] = starting_after
            try:
                page = self._call(partial(self._list_intents, params))
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
