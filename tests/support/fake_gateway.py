"""The common core of the in-memory payment gateways tests pass to
`create_app(payment_gateway=...)` (the PaymentGateway protocol of payments/gateway.py).

It keeps PaymentIntents in a dict and answers retrieve/recent, the keys and the Stripe.js
URL. How an intent is created (faults, idempotency, fees) is each test's own behaviour, so
each subclass writes the protocol's `create_intent` (not repeated here) and builds its
intents with `keep_intent`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from flask import Flask
from sqlalchemy import Engine

from dispatch_pay import create_app
from dispatch_pay.payments.gateway import (
    CardDetails,
    CardSetup,
    Fee,
    Intent,
    PaymentRequestRejected,
)
from tests.support.stripe_helpers import WEBHOOK_SECRET


# eq=False: a gateway is one service object, compared and hashed by identity.
@dataclass(eq=False)
class InMemoryGateway:
    """PaymentIntents in memory; every intent's client secret is derived from its id."""

    intents: dict[str, Intent] = field(default_factory=dict)
    # (payment_intent_id, amount, idempotency_key) of every refund asked for.
    refunds: list[tuple[str, int, str]] = field(default_factory=list)
    # payment method -> the Customer a SetupIntent attached it to.
    attached: dict[str, str] = field(default_factory=dict)

    def keep_intent(
        self,
        pi_id: str,
        *,
        status: str,
        amount: int,
        currency: str,
        metadata: dict[str, str],
        **rest: Any,
    ) -> Intent:
        """Build an Intent as Stripe would answer it (`rest`: charge_id, fee, created)
        and remember it under its id."""
        intent = Intent(
            id=pi_id,
            status=status,
            amount=amount,
            currency=currency,
            metadata=dict(metadata),
            client_secret=f"{pi_id}_secret",
            **rest,
        )
        self.intents[pi_id] = intent
        return intent

    def retrieve_intent(self, intent_id: str) -> Intent:
        if intent_id not in self.intents:
            raise PaymentRequestRejected(f"No such payment_intent: {intent_id}")
        return self.intents[intent_id]

    def recent_intents(self, created_after: int) -> list[Intent]:
        return [i for i in self.intents.values() if (i.created or 0) >= created_after]

    def charge_fee(self, payment_intent_id: str) -> Fee | None:
        return None

    def refund(self, payment_intent_id: str, amount: int, idempotency_key: str) -> str:
        if payment_intent_id not in self.intents:
            raise PaymentRequestRejected(f"No such payment_intent: {payment_intent_id}")
        if all(key != idempotency_key for _pi, _amount, key in self.refunds):
            self.refunds.append((payment_intent_id, amount, idempotency_key))
        return f"re_{len(self.refunds)}"

    def cancel_intent(self, intent_id: str) -> None:
        intent = self.retrieve_intent(intent_id)
        self.intents[intent_id] = replace(intent, status="canceled")

    # Saved cards: every card saves, on one Customer per call; tests that need more
    # (declines, 3-D Secure) write their own.
    def create_customer(self, *, metadata: dict[str, str], idempotency_key: str) -> str:
        return f"cus_{idempotency_key}"

    def setup_card(
        self, *, customer: str, payment_method: str, metadata: dict[str, str], idempotency_key: str
    ) -> CardSetup:
        self.attached[payment_method] = customer
        return CardSetup(
            id=f"seti_{idempotency_key}", status="succeeded", payment_method=payment_method
        )

    def retrieve_setup(self, setup_intent_id: str) -> CardSetup:
        return CardSetup(id=setup_intent_id, status="succeeded")

    def card_details(self, payment_method: str) -> CardDetails:
        return CardDetails(
            id=payment_method,
            customer=self.attached.get(payment_method),
            brand="visa",
            last4="4242",
        )

    def detach_card(self, payment_method: str) -> None:
        self.attached.pop(payment_method, None)

    def publishable_key(self) -> str | None:
        return "pk_test_fake"

    def js_url(self) -> str:
        return "https://js.stripe.com/v3/"


def app_paying_through(backend: tuple[str, Engine], gateway: Any, **config: Any) -> Flask:
    """The app with `gateway` as its PaymentGateway and the tests' webhook secret.

    Made before `db_connection` binds the session, as the suite's own apps are.
    """
    from tests.conftest import test_config as app_config  # the suite's one test configuration

    _kind, engine = backend
    return create_app(
        app_config(
            engine.url.render_as_string(hide_password=False),
            STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
            **config,
        ),
        payment_gateway=gateway,
        configure_database=False,
    )
