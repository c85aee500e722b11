"""POST /webhooks/stripe: signatures, storage, and crediting once whoever reports first.

Events are built from the real PaymentIntents in localstripe, signed like Stripe signs
them, and posted through the test client.
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from models import ENTRY_TOPUP, LedgerEntry, TopUp, WebhookEvent, db
from tests.support.factories import bearer, make_article, make_token, reader_with_own_id
from tests.support.servers import LocalStripe
from tests.support.stripe_helpers import (
    CARD_3DS,
    WEBHOOK_SECRET,
    card_payment_method,
    card_top_up,
    event,
    recorded_topup,
    signature_header,
    signed,
    topup_metadata,
)
from tests.support.stripe_helpers import stripe_client as stripe_api

WEBHOOK = "/webhooks/stripe"


def ours(reader_id: int, amount: int = 500) -> dict[str, str]:
    """Our metadata for a top-up of the reader that the app recorded (see recorded_topup)."""
    return topup_metadata(reader_id, recorded_topup(reader_id, amount))


def intent_in_stripe(
    base: str, metadata: dict[str, str], amount: int = 500, card: str | None = None
) -> dict[str, Any]:
    """A confirmed PaymentIntent made in Stripe directly: no webhook, no app involved."""
    payment_method = card_payment_method(base, card) if card else card_payment_method(base)
    pi = stripe_api(base).v1.payment_intents.create(
        params={
            "amount": amount,
            "currency": "usd",
            "payment_method_types": ["card"],
            "payment_method": payment_method,
            "confirm": True,
            "metadata": metadata,
        }
    )
    return retrieve(base, pi.id)


def retrieve(base: str, pi_id: str) -> dict[str, Any]:
    """The PaymentIntent exactly as Stripe serialises it (as plain JSON)."""
    data: dict[str, Any] = json.loads(
        json.dumps(stripe_api(base).v1.payment_intents.retrieve(pi_id).to_dict())
    )
    return data


def deliver(client: FlaskClient, evt: dict[str, Any]) -> Any:
    payload, headers = signed(evt)
    return client.post(WEBHOOK, data=payload, headers=headers)


def balance(client: FlaskClient, token: str) -> int:
    return int(client.get("/api/v1/wallet", headers=bearer(token)).json["balance"]["amount"])


def credits_for(pi_id: str) -> list[int]:
    return list(
        db.session.scalars(
            select(LedgerEntry.amount).where(
                LedgerEntry.kind == ENTRY_TOPUP, LedgerEntry.reference == pi_id
            )
        )
    )


def stored_events() -> int:
    return int(db.session.scalar(select(func.count(WebhookEvent.id))) or 0)


def reconcile(app: Flask) -> str:
    result = app.test_cli_runner().invoke(args=["reconcile"])
    assert result.exit_code == 0, result.output
    return str(result.output)


# localstripe keeps every test's PaymentIntents while SQLite hands the ids of rolled-back
# rows out again, so `reconcile` would credit earlier tests' top-ups to a reader whose id
# merely repeats. Readers here get ids that no other reader of this run has.
_reader_ids = itertools.count(7_000_000)


@pytest.fixture()
def reader() -> tuple[int, str]:
    user = reader_with_own_id(_reader_ids)
    return user.id, make_token(user)


def test_synchronous_credit_then_the_webhook_credits_once(
    stripe_client: FlaskClient, localstripe: LocalStripe, reader: tuple[int, str]
) -> None:
    _reader_id, token = reader
    response = card_top_up(stripe_client, localstripe.base, token)
    pi_id = response.json["topup"]["id"]
    assert balance(stripe_client, token) == 500

    delivered = deliver(
        stripe_client, event("payment_intent.succeeded", retrieve(localstripe.base, pi_id))
    )

    assert delivered.status_code == 200
    assert delivered.json["outcome"] == "already_credited"
    assert balance(stripe_client, token) == 500
    assert credits_for(pi_id) == [500]


def test_webhook_first_then_reconcile_credits_once(
    stripe_app: Flask,
    stripe_client: FlaskClient,
    localstripe: LocalStripe,
    reader: tuple[int, str],
) -> None:
    reader_id, token = reader
    pi = intent_in_stripe(localstripe.base, ours(reader_id))
    assert pi["status"] == "succeeded"

    delivered = deliver(stripe_client, event("payment_intent.succeeded", pi))

    assert delivered.status_code == 200
    assert delivered.json["outcome"] == "credited"
    assert balance(stripe_client, token) == 500
    assert pi["id"] not in reconcile(stripe_app)
    assert balance(stripe_client, token) == 500
    assert credits_for(pi["id"]) == [500]
    topup = db.session.scalars(select(TopUp).where(TopUp.payment_intent_id == pi["id"])).one()
    assert (topup.user_id, topup.amount, topup.status) == (reader_id, 500, "succeeded")


def test_the_same_event_delivered_twice_credits_once(
    stripe_client: FlaskClient, localstripe: LocalStripe, reader: tuple[int, str]
) -> None:
    reader_id, token = reader
    evt = event("payment_intent.succeeded", intent_in_stripe(localstripe.base, ours(reader_id)))

    first, second = deliver(stripe_client, evt), deliver(stripe_client, evt)

    assert (first.status_code, second.status_code) == (200, 200)
    assert (first.json["outcome"], second.json["outcome"]) == ("credited", "duplicate")
    assert balance(stripe_client, token) == 500
    assert (
        db.session.scalar(
            select(func.count(WebhookEvent.id)).where(WebhookEvent.stripe_event_id == evt["id"])
        )
        == 1
    )


def test_another_event_for_the_same_payment_intent_credits_once(
    stripe_client: FlaskClient, localstripe: LocalStripe, reader: tuple[int, str]
) -> None:
    reader_id, token = reader
    pi = intent_in_stripe(localstripe.base, ours(reader_id))

    first = deliver(stripe_client, event("payment_intent.succeeded", pi))
    second = deliver(stripe_client, event("payment_intent.succeeded", pi))

    assert first.json["outcome"] == "credited"
    assert second.json["outcome"] == "already_credited"
    assert balance(stripe_client, token) == 500
    assert credits_for(pi["id"]) == [500]


@pytest.mark.parametrize("shape", ["expanded", "id"])
def test_latest_charge_as_an_object_or_an_id(
    stripe_client: FlaskClient, localstripe: LocalStripe, reader: tuple[int, str], shape: str
) -> None:
    reader_id, token = reader
    pi = intent_in_stripe(localstripe.base, ours(reader_id))
    charge_id = pi["latest_charge"]["id"]
    if shape == "id":
        pi["latest_charge"] = charge_id
        pi.pop("charges", None)

    delivered = deliver(stripe_client, event("payment_intent.succeeded", pi))

    assert delivered.json["outcome"] == "credited"
    assert balance(stripe_client, token) == 500
    topup = db.session.scalars(select(TopUp).where(TopUp.payment_intent_id == pi["id"])).one()
    assert topup.charge_id == charge_id
    # The charge id was recorded: a dispute naming only the charge finds the top-up.
    dispute = {
        "id": f"dp_{pi['id']}",
        "object": "dispute",
        "amount": 500,
        "currency": "usd",
        "status": "needs_response",
        "charge": charge_id,
    }
    assert deliver(stripe_client, event("charge.dispute.created", dispute)).json["outcome"] == (
        "frozen"
    )
    wallet = stripe_client.get("/api/v1/wallet", headers=bearer(token)).json
    assert wallet["status"] == "frozen"


def _forged(payload: bytes) -> dict[str, str]:
    return {"Stripe-Signature": signature_header(payload, secret="whsec_someone_else")}


def _tampered(payload: bytes) -> tuple[bytes, dict[str, str]]:
    headers = {"Stripe-Signature": signature_header(payload)}
    return payload.replace(b'"amount": 500', b'"amount": 90000'), headers


def _stale(payload: bytes) -> dict[str, str]:
    return {"Stripe-Signature": signature_header(payload, timestamp=int(time.time()) - 301)}


@pytest.mark.parametrize("attack", ["forged", "tampered", "stale", "missing", "garbage"])
def test_bad_signatures_are_refused_and_change_nothing(
    stripe_client: FlaskClient, localstripe: LocalStripe, reader: tuple[int, str], attack: str
) -> None:
    reader_id, token = reader
    pi = intent_in_stripe(localstripe.base, ours(reader_id))
    payload = json.dumps(event("payment_intent.succeeded", pi)).encode()
    assert b'"amount": 500' in payload
    headers: dict[str, str]
    if attack == "forged":
        headers = _forged(payload)
    elif attack == "tampered":
        payload, headers = _tampered(payload)
    elif attack == "stale":
        headers = _stale(payload)
    elif attack == "missing":
        headers = {}
    else:
        headers = {"Stripe-Signature": "t=not-a-time,v1=deadbeef"}
    before = stored_events()

    response = stripe_client.post(
        WEBHOOK, data=payload, headers={**headers, "Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_signature"
    assert stored_events() == before
    assert balance(stripe_client, token) == 0
    assert credits_for(pi["id"]) == []
    recorded = db.session.scalars(select(TopUp).where(TopUp.user_id == reader_id)).all()
    assert [(t.status, t.payment_intent_id) for t in recorded] == [
        ("requires_payment_method", None)  # as the top-up request left it
    ]


def test_a_signature_inside_the_tolerance_is_accepted(
    stripe_client: FlaskClient, localstripe: LocalStripe, reader: tuple[int, str]
) -> None:
    reader_id, token = reader
    payload = json.dumps(
        event("payment_intent.succeeded", intent_in_stripe(localstripe.base, ours(reader_id)))
    ).encode()
    headers = {
        "Stripe-Signature": signature_header(payload, timestamp=int(time.time()) - 240),
        "Content-Type": "application/json",
    }
    assert stripe_client.post(WEBHOOK, data=payload, headers=headers).status_code == 200
    assert balance(stripe_client, token) == 500


def test_a_signed_body_that_is_not_an_event_is_refused(stripe_client: FlaskClient) -> None:
    for body in (b"[]", b'{"id": "evt_1"}', b"not json"):
        before = stored_events()
        response = stripe_client.post(
            WEBHOOK, data=body, headers={"Stripe-Signature": signature_header(body)}
        )
        assert response.status_code == 400, body
        assert stored_events() == before


def test_unknown_event_types_are_acknowledged_and_ignored(
    stripe_client: FlaskClient, reader: tuple[int, str]
) -> None:
    _reader_id, token = reader
    evt = event("customer.created", {"id": "cus_123", "object": "customer"})

    response = deliver(stripe_client, evt)

    assert response.status_code == 200
    assert response.json["outcome"] == "ignored"
    stored = db.session.scalars(
        select(WebhookEvent).where(WebhookEvent.stripe_event_id == evt["id"])
    ).one()
    assert (stored.type, stored.outcome) == ("customer.created", "ignored")
    assert balance(stripe_client, token) == 0


@pytest.mark.parametrize(
    "metadata",
    [
        {},
        {"dispatch_purpose": "wallet_topup"},
        {"dispatch_reader": "{reader}"},
        {"dispatch_reader": "{reader}", "dispatch_purpose": "subscription"},
        # No reference to a top-up of ours (issue 11, item 13): never credited.
        {"dispatch_reader": "{reader}", "dispatch_purpose": "wallet_topup"},
        {"dispatch_reader": "{reader}", "dispatch_purpose": "wallet_topup", "dispatch_ref": ""},
        {"dispatch_reader": "999999999", "dispatch_purpose": "wallet_topup"},
        {"dispatch_reader": "not-a-number", "dispatch_purpose": "wallet_topup"},
        {"dispatch_reader": "99999999999999999999", "dispatch_purpose": "wallet_topup"},
        {"dispatch_reader": "²", "dispatch_purpose": "wallet_topup"},
    ],
)
def test_payment_intents_that_are_not_ours_are_ignored(
    stripe_client: FlaskClient,
    localstripe: LocalStripe,
    reader: tuple[int, str],
    metadata: dict[str, str],
) -> None:
    reader_id, token = reader
    filled = {key: value.format(reader=reader_id) for key, value in metadata.items()}
    pi = intent_in_stripe(localstripe.base, filled)

    response = deliver(stripe_client, event("payment_intent.succeeded", pi))

    assert response.status_code == 200
    assert response.json["outcome"] == "ignored"
    assert balance(stripe_client, token) == 0
    assert db.session.scalar(select(func.count(TopUp.id))) == 0
    assert db.session.scalar(select(func.count(LedgerEntry.id))) == 0
    charge = {**pi["latest_charge"], "amount_refunded": 500, "refunded": True}
    refunded = deliver(stripe_client, event("charge.refunded", charge))
    assert (refunded.status_code, refunded.json["outcome"]) == (200, "ignored")
    assert db.session.scalar(select(func.count(LedgerEntry.id))) == 0


def test_a_failed_payment_marks_the_top_up_failed_and_credits_nothing(
    stripe_client: FlaskClient, localstripe: LocalStripe, reader: tuple[int, str]
) -> None:
    reader_id, token = reader
    response = stripe_client.post(
        "/api/v1/wallet/topups",
        json={
            "amount": 500,
            "currency": "usd",
            "payment_method": card_payment_method(localstripe.base, CARD_3DS),
        },
        headers=bearer(token),
    )
    assert response.json["topup"]["status"] == "requires_action"
    pi_id = response.json["topup"]["id"]
    stripe_api(localstripe.base).raw_request(
        "post",
        f"/v1/payment_intents/{pi_id}/_authenticate",
        client_secret=response.json["topup"]["client_secret"],
        success="false",
    )
    failed = retrieve(localstripe.base, pi_id)
    assert failed["status"] == "requires_payment_method"

    delivered = deliver(stripe_client, event("payment_intent.payment_failed", failed))

    assert delivered.status_code == 200
    assert delivered.json["outcome"] == "marked_failed"
    topup = db.session.scalars(select(TopUp).where(TopUp.user_id == reader_id)).one()
    assert topup.status == "failed"
    assert topup.failure_code == "payment_intent_authentication_failure"
    assert balance(stripe_client, token) == 0


def test_without_a_webhook_secret_the_endpoint_answers_503(client: FlaskClient) -> None:
    evt = event("payment_intent.succeeded", {"id": "pi_x", "object": "payment_intent"})
    payload = json.dumps(evt).encode()
    response = client.post(
        WEBHOOK,
        data=payload,
        headers={"Stripe-Signature": signature_header(payload, WEBHOOK_SECRET)},
    )
    assert response.status_code == 503
    assert response.json["error"]["code"] == "webhook_not_configured"
    assert stored_events() == 0


def test_a_3ds_top_up_is_credited_by_its_webhook_and_completes_the_purchase(
    stripe_client: FlaskClient, localstripe: LocalStripe, reader: tuple[int, str]
) -> None:
    _reader_id, token = reader
    article = make_article(price=39)
    response = stripe_client.post(
        "/api/v1/wallet/topups",
        json={
            "amount": 500,
            "currency": "usd",
            "payment_method": card_payment_method(localstripe.base, CARD_3DS),
            "buy": article.slug,
        },
        headers=bearer(token),
    )
    topup = response.json["topup"]
    assert topup["status"] == "requires_action"
    stripe_api(localstripe.base).raw_request(
        "post",
        f"/v1/payment_intents/{topup['id']}/_authenticate",
        client_secret=topup["client_secret"],
        success="true",
    )

    delivered = deliver(
        stripe_client, event("payment_intent.succeeded", retrieve(localstripe.base, topup["id"]))
    )

    assert delivered.json["outcome"] == "credited"
    assert balance(stripe_client, token) == 461
    full = stripe_client.get(f"/api/v1/articles/{article.slug}", headers=bearer(token))
    assert full.status_code == 200
    rows = db.session.scalars(select(TopUp).where(TopUp.payment_intent_id == topup["id"])).all()
    assert [(row.status, row.buy_article_id) for row in rows] == [("succeeded", article.id)]


def test_a_malformed_top_up_reference_does_not_stop_the_credit(
    stripe_client: FlaskClient, localstripe: LocalStripe, reader: tuple[int, str]
) -> None:
    reader_id, token = reader
    metadata = {**ours(reader_id), "dispatch_topup": "99999999999999999999"}
    pi = intent_in_stripe(localstripe.base, metadata)

    delivered = deliver(stripe_client, event("payment_intent.succeeded", pi))

    assert (delivered.status_code, delivered.json["outcome"]) == (200, "credited")
    assert balance(stripe_client, token) == 500


def test_payment_intents_of_another_deployment_sharing_the_account_are_ignored(
    stripe_app: Flask,
    stripe_client: FlaskClient,
    localstripe: LocalStripe,
    reader: tuple[int, str],
) -> None:
    """Reader and top-up ids repeat across databases; the random reference does not."""
    reader_id, token = reader
    ours_now = stripe_client.post(
        "/api/v1/wallet/topups",
        json={"amount": 500, "currency": "usd"},
        headers=bearer(token),
    )
    assert ours_now.status_code == 201
    topup = db.session.scalar(
        select(TopUp).where(TopUp.payment_intent_id == ours_now.json["topup"]["id"])
    )
    assert topup is not None and topup.reference
    sent = retrieve(localstripe.base, topup.payment_intent_id or "")
    assert sent["metadata"]["dispatch_ref"] == topup.reference

    elsewhere = {
        **ours(reader_id),
        "dispatch_topup": str(topup.id),
        "dispatch_ref": "0" * 32,
    }
    foreign = intent_in_stripe(localstripe.base, elsewhere)

    delivered = deliver(stripe_client, event("payment_intent.succeeded", foreign))
    assert (delivered.status_code, delivered.json["outcome"]) == (200, "ignored")
    reconcile(stripe_app)
    assert balance(stripe_client, token) == 0
    assert credits_for(foreign["id"]) == []
