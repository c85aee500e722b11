"""Auto top-up and saved cards when Stripe is down, slow, or answers something else than
yes or no: a fake gateway chosen by configuration (create_app(payment_gateway=...))."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, select

from dispatch_pay import create_app
from dispatch_pay.payments.gateway import (
    CardDetails,
    CardSetup,
    Intent,
    PaymentProviderUnavailable,
    PaymentRequestRejected,
)
from dispatch_pay.wallet.audit import audit
from models import TopUp, db
from tests.conftest import test_config as app_config
from tests.support.factories import bearer, make_article, make_token, make_user
from tests.support.fake_gateway import InMemoryGateway
from tests.support.stripe_helpers import WEBHOOK_SECRET, event, signed
from tests.support.web import assert_error

_ids = itertools.count(1)
AUTO = {
    "auto_topup": {
        "below": {"amount": 0, "currency": "usd"},
        "amount": {"amount": 500, "currency": "usd"},
        "monthly_limit": {"amount": 1000, "currency": "usd"},
    }
}


class TroubledStripe(InMemoryGateway):
    """`mode`: ok, timeout (the charge may have happened), processing, rejected, down."""

    def __init__(self) -> None:
        super().__init__()
        self.mode = "ok"
        self.last: Intent | None = None

    def _down(self) -> None:
        if self.mode == "down":
            raise PaymentProviderUnavailable("Stripe is down")

    def create_intent(self, **kwargs: Any) -> Intent:
        self._down()
        if self.mode == "rejected":
            raise PaymentRequestRejected("No such PaymentMethod")
        pi_id = f"pi_troubled_{next(_ids)}"
        status = {"processing": "processing"}.get(self.mode, "succeeded")
        self.last = self.keep_intent(
            pi_id,
            status=status,
            amount=kwargs["amount"],
            currency=kwargs["currency"],
            metadata=kwargs["metadata"],
            charge_id=f"ch_{pi_id}",
            created=int(time.time()),
        )
        if self.mode == "timeout":
            raise PaymentProviderUnavailable("read timed out", outcome_unknown=True)
        return self.last

    def create_customer(self, *, metadata: dict[str, str], idempotency_key: str) -> str:
        self._down()
        return super().create_customer(metadata=metadata, idempotency_key=idempotency_key)

    def setup_card(self, **kwargs: Any) -> CardSetup:
        self._down()
        return super().setup_card(**kwargs)

    def card_details(self, payment_method: str) -> CardDetails:
        self._down()
        return super().card_details(payment_method)

    def detach_card(self, payment_method: str) -> None:
        self._down()
        super().detach_card(payment_method)


@pytest.fixture()
def troubled(backend: tuple[str, Engine], app: Flask, db_connection: Any) -> Iterator[Any]:
    _kind, engine = backend
    stripe = TroubledStripe()
    own = create_app(
        app_config(
            engine.url.render_as_string(hide_password=False), STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET
        ),
        configure_database=False,
        payment_gateway=stripe,
    )
    with own.app_context():
        yield own.test_client(), stripe


def ready(client: FlaskClient) -> tuple[int, dict[str, str]]:
    user = make_user()
    auth = bearer(make_token(user))
    assert (
        client.put("/api/v1/wallet/card", json={"payment_method": "pm_x"}, headers=auth).status_code
        == 200
    )
    assert client.put("/api/v1/wallet/settings", json=AUTO, headers=auth).status_code == 200
    return user.id, auth


def buy(client: FlaskClient, auth: dict[str, str], price: int = 39) -> Any:
    return client.post(f"/api/v1/articles/{make_article(price=price).slug}/purchase", headers=auth)


def this_month(client: FlaskClient, auth: dict[str, str]) -> int:
    settings = client.get("/api/v1/wallet/settings", headers=auth).json["auto_topup"]
    return int(settings["topped_up_this_month"]["amount"])


def test_a_charge_whose_answer_was_lost_keeps_counting_and_the_webhook_credits_it(
    troubled: tuple[FlaskClient, TroubledStripe],
) -> None:
    client, stripe = troubled
    user_id, auth = ready(client)
    stripe.mode = "timeout"

    assert_error(buy(client, auth), 503, "payment_provider_unavailable")

    (topup,) = db.session.scalars(select(TopUp).where(TopUp.user_id == user_id))
    assert (topup.status, topup.failure_code) == ("requires_confirmation", "provider_unavailable")
    assert this_month(client, auth) == 500  # it may have charged: it counts
    assert stripe.last is not None
    intent = stripe.last
    payload = {
        "id": intent.id,
        "object": "payment_intent",
        "amount": intent.amount,
        "currency": "usd",
        "status": "succeeded",
        "latest_charge": intent.charge_id,
        "metadata": dict(intent.metadata),
    }
    body, headers = signed(event("payment_intent.succeeded", payload))
    response = client.post("/webhooks/stripe", data=body, headers=headers)
    assert response.json["outcome"] == "credited"
    wallet = client.get("/api/v1/wallet", headers=auth).json
    assert wallet["balance"] == {"amount": 500, "currency": "usd"}
    assert audit() == []


def test_a_processing_charge_is_402_until_it_is_credited(
    troubled: tuple[FlaskClient, TroubledStripe],
) -> None:
    client, stripe = troubled
    _user_id, auth = ready(client)
    stripe.mode = "processing"
    body = assert_error(buy(client, auth), 402, "insufficient_funds")
    assert body["auto_topup"]["status"] == "processing"
    assert this_month(client, auth) == 500


def test_a_refused_charge_keeps_auto_topup_on_and_charges_nothing(
    troubled: tuple[FlaskClient, TroubledStripe],
) -> None:
    client, stripe = troubled
    _user_id, auth = ready(client)
    stripe.mode = "rejected"
    body = assert_error(buy(client, auth), 402, "insufficient_funds")
    assert body["auto_topup"]["status"] == "payment_rejected"
    settings = client.get("/api/v1/wallet/settings", headers=auth).json["auto_topup"]
    assert settings["active"] is True and settings["topped_up_this_month"]["amount"] == 0


def test_stripe_down_changes_no_saved_card_and_refuses_at_once(
    troubled: tuple[FlaskClient, TroubledStripe],
) -> None:
    client, stripe = troubled
    user = make_user()
    auth = bearer(make_token(user))
    stripe.mode = "down"
    saving = client.put("/api/v1/wallet/card", json={"payment_method": "pm_y"}, headers=auth)
    assert_error(saving, 503, "payment_provider_unavailable")
    assert client.get("/api/v1/wallet/card", headers=auth).json == {"card": None}

    stripe.mode = "ok"
    assert (
        client.put("/api/v1/wallet/card", json={"payment_method": "pm_y"}, headers=auth).status_code
        == 200
    )
    stripe.mode = "down"
    assert_error(
        client.delete("/api/v1/wallet/card", headers=auth), 503, "payment_provider_unavailable"
    )
    assert client.get("/api/v1/wallet/card", headers=auth).json == {
        "card": {"brand": "visa", "last4": "4242"}
    }
    # The monthly limit: 500 + 500 fit 1000, a third does not (and asks Stripe nothing).
    stripe.mode = "ok"
    assert client.put("/api/v1/wallet/settings", json=AUTO, headers=auth).status_code == 200
    assert buy(client, auth, 450).status_code == 201
    assert buy(client, auth, 450).status_code == 201
    stripe.mode = "down"
    body = assert_error(buy(client, auth, 450), 402, "insufficient_funds")
    assert body["auto_topup"]["status"] == "monthly_limit_reached"
