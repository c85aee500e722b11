"""What the app sends Stripe, how long a reader can wait for it, and signed events the
app cannot make sense of.

A recording stand-in for Stripe's API (a loopback HTTP server in a thread) shows the
exact requests the real StripeGateway makes; localstripe frozen with SIGSTOP stands in
for a Stripe that accepts connections and never answers.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from dispatch_pay.payments.stripe_gateway import (
    NETWORK_RETRIES,
    STRIPE_API_VERSION,
    TIMEOUT_SECONDS,
)
from models import LedgerEntry, TopUp, Wallet, WebhookEvent, db
from tests.conftest import test_config as app_config
from tests.support.factories import bearer, make_article, make_token, make_user
from tests.support.servers import LocalStripe
from tests.support.stripe_helpers import (
    WEBHOOK_SECRET,
    card_payment_method,
    event,
    payment_intent_obj,
    signed,
)


class RecordingStripe(ThreadingHTTPServer):
    """Answers POST /v1/payment_intents like Stripe and keeps every request it got.

    `drop_first` closes the first connection without an answer, as a network failure
    would, so that the client's retry can be seen.
    """

    daemon_threads = True

    def __init__(self, drop_first: bool = False) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict[str, Any]] = []
        self.drop_first = drop_first

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: RecordingStripe

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        record = {"path": self.path, "headers": dict(self.headers), "form": form}
        self.server.requests.append(record)
        if self.server.drop_first and len(self.server.requests) == 1:
            self.close_connection = True
            return  # no status line at all: the client sees a broken connection
        metadata = {
            key[len("metadata[") : -1]: values[0]
            for key, values in form.items()
            if key.startswith("metadata[")
        }
        body = json.dumps(
            {
                "id": "pi_recorded_1",
                "object": "payment_intent",
                "amount": int(form["amount"][0]),
                "currency": form["currency"][0],
                "status": "requires_payment_method",
                "client_secret": "pi_recorded_1_secret_x",
                "latest_charge": None,
                "metadata": metadata,
                "created": int(time.time()),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture()
def recording_stripe() -> Iterator[RecordingStripe]:
    server = RecordingStripe()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def app_against(base: str, backend: Any) -> Flask:
    from dispatch_pay import create_app

    _kind, engine = backend
    return create_app(
        app_config(
            engine.url.render_as_string(hide_password=False),
            STRIPE_SECRET_KEY="sk_test_recorded",
            STRIPE_PUBLISHABLE_KEY="pk_test_recorded",
            STRIPE_API_BASE=base,
            STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        ),
        configure_database=False,
    )


def test_every_payment_intent_is_pinned_keyed_and_tagged(
    backend: Any, client: FlaskClient, recording_stripe: RecordingStripe
) -> None:
    app = app_against(recording_stripe.base, backend)
    with app.app_context():
        article = make_article(price=39)
        reader = make_user()
        response = app.test_client().post(
            "/api/v1/wallet/topups",
            json={"amount": 500, "currency": "usd", "buy": article.slug},
            headers=bearer(make_token(reader)),
        )
        assert response.status_code == 201, response.json
        topup = db.session.scalar(select(TopUp).where(TopUp.user_id == reader.id))
        assert topup is not None

    [sent] = recording_stripe.requests
    assert sent["path"] == "/v1/payment_intents"
    assert sent["headers"]["Stripe-Version"] == STRIPE_API_VERSION
    assert sent["headers"]["Idempotency-Key"] == f"dispatch-topup-{topup.id}"
    assert sent["form"] == {
        "amount": ["500"],
        "currency": ["usd"],
        "payment_method_types[0]": ["card"],
        "metadata[dispatch_reader]": [str(reader.id)],
        "metadata[dispatch_purpose]": ["wallet_topup"],
        "metadata[dispatch_topup]": [str(topup.id)],
        "metadata[dispatch_ref]": [topup.reference],
        "metadata[dispatch_article]": [article.slug],
        "expand[0]": ["latest_charge.balance_transaction"],  # the fee, in the same request
    }


def test_a_retry_after_a_network_failure_carries_the_same_idempotency_key(
    backend: Any, client: FlaskClient, recording_stripe: RecordingStripe
) -> None:
    recording_stripe.drop_first = True
    app = app_against(recording_stripe.base, backend)
    with app.app_context():
        response = app.test_client().post(
            "/api/v1/wallet/topups",
            json={"amount": 500, "currency": "usd"},
            headers=bearer(make_token(make_user())),
        )
    assert response.status_code == 201, response.json
    assert NETWORK_RETRIES >= 1
    first, retry = recording_stripe.requests
    assert first["headers"]["Idempotency-Key"] == retry["headers"]["Idempotency-Key"]
    assert first["form"] == retry["form"]


def test_a_stripe_that_never_answers_is_a_503_within_about_ten_seconds(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    reader = make_user()
    token = make_token(reader)
    payment_method = card_payment_method(localstripe.base)
    localstripe.pause()
    try:
        started = time.monotonic()
        response = stripe_client.post(
            "/api/v1/wallet/topups",
            json={"amount": 500, "currency": "usd", "payment_method": payment_method},
            headers=bearer(token),
        )
        waited = time.monotonic() - started
    finally:
        localstripe.resume()

    assert response.status_code == 503
    assert response.json["error"]["code"] == "payment_provider_unavailable"
    # Every attempt times out; together they stay within the budget (plus a short back-off).
    assert TIMEOUT_SECONDS <= waited < 12
    topup = db.session.scalar(select(TopUp).where(TopUp.user_id == reader.id))
    assert topup is not None
    assert (topup.status, topup.credited_at) == ("failed", None)
    credited = select(func.count(LedgerEntry.id)).join(Wallet).where(Wallet.user_id == reader.id)
    assert db.session.scalar(credited) == 0


@pytest.mark.parametrize(
    "damage",
    [
        {"amount": "lots"},
        {"metadata": ["not", "a", "map"]},
        {"id": None, "amount": {"nested": True}},
    ],
    ids=["amount-not-a-number", "metadata-not-a-map", "no-id"],
)
def test_a_signed_event_the_app_cannot_read_is_stored_and_acknowledged(
    stripe_client: FlaskClient, damage: dict[str, Any]
) -> None:
    """Stripe retries a 5xx for days; a retry cannot fix an event, so store it and say 200."""
    reader = make_user()
    obj = {**payment_intent_obj("pi_damaged", 500, reader.id), **damage}
    evt = event("payment_intent.succeeded", obj)
    payload, headers = signed(evt)

    response = stripe_client.post("/webhooks/stripe", data=payload, headers=headers)

    assert response.status_code == 200, response.json
    assert response.json["outcome"].startswith("unreadable")
    stored = db.session.scalar(
        select(WebhookEvent).where(WebhookEvent.stripe_event_id == evt["id"])
    )
    assert stored is not None and stored.outcome.startswith("unreadable")
    again = stripe_client.post("/webhooks/stripe", data=payload, headers=headers)
    assert again.json["outcome"] == "duplicate"
    assert db.session.scalar(select(func.count(LedgerEntry.id))) == 0
