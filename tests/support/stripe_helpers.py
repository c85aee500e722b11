"""Stripe test helpers: signed events (localstripe sends none of some kinds) and cards."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import secrets
import time
from typing import Any

import stripe

WEBHOOK_SECRET = "whsec_dispatch_tests"
_seq = itertools.count(1)

CARD_OK = "4242424242424242"
CARD_DECLINED = "4000000000000341"
CARD_3DS = "4000002500003155"


def signature_header(
    payload: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None
) -> str:
    ts = int(time.time()) if timestamp is None else timestamp
    signed = f"{ts}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={ts},v1={digest}"


def event(event_type: str, obj: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    return {
        "id": event_id or f"evt_test_{next(_seq)}_{int(time.time() * 1000)}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "livemode": False,
        "api_version": "2026-10-28.endive",
        "data": {"object": obj},
    }


def signed(
    evt: dict[str, Any], secret: str = WEBHOOK_SECRET, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    payload = json.dumps(evt).encode()
    return payload, {
        "Stripe-Signature": signature_header(payload, secret, timestamp),
        "Content-Type": "application/json",
    }


def stripe_client(api_base: str) -> stripe.StripeClient:
    return stripe.StripeClient("sk_test_dispatch", base_addresses={"api": api_base})


def card_payment_method(api_base: str, number: str = CARD_OK) -> str:
    """A PaymentMethod id for a test card, as Stripe.js would create in the browser."""
    pm = stripe_client(api_base).v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
        }
    )
    return str(pm.id)


def recorded_topup(reader_id: int, amount: int, currency: str = "usd") -> str:
    """A top-up as the top-up request records it before Stripe is asked; its reference.

    Our PaymentIntents carry that reference as `dispatch_ref`, and only those are credited:
    an event or a PaymentIntent made in Stripe by a test names it through `topup_metadata`.
    Commits (the racers and servers of some tests read it from other connections).
    """
    from models import TopUp, TopUpStatus, db

    topup = TopUp(
        user_id=reader_id,
        amount=amount,
        currency=currency,
        status=TopUpStatus.REQUIRES_PAYMENT_METHOD,
        reference=secrets.token_hex(16),
    )
    db.session.add(topup)
    db.session.commit()
    assert topup.reference is not None
    return topup.reference


def topup_metadata(reader_id: int, reference: str) -> dict[str, str]:
    """The metadata the app puts on a top-up's PaymentIntent."""
    return {
        "dispatch_reader": str(reader_id),
        "dispatch_purpose": "wallet_topup",
        "dispatch_ref": reference,
    }


def payment_intent_obj(
    pi_id: str,
    amount: int,
    reader_id: int,
    status: str = "succeeded",
    *,
    reference: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A PaymentIntent as Stripe would put it in an event; `reference`: the top-up it pays
    (see `recorded_topup`; without one the app credits nothing)."""
    metadata = {"dispatch_reader": str(reader_id), "dispatch_purpose": "wallet_topup"}
    if reference is not None:
        metadata["dispatch_ref"] = reference
    return {
        "id": pi_id,
        "object": "payment_intent",
        "amount": amount,
        "currency": "usd",
        "status": status,
        "created": int(time.time()),
        "latest_charge": f"ch_for_{pi_id}",
        "metadata": metadata,
        **extra,
    }


def charge_obj(
    pi_id: str, amount: int, amount_refunded: int, reader_id: int, charge_id: str | None = None
) -> dict[str, Any]:
    return {
        "id": charge_id or f"ch_for_{pi_id}",
        "object": "charge",
        "amount": amount,
        "amount_refunded": amount_refunded,
        "currency": "usd",
        "paid": True,
        "status": "succeeded",
        "refunded": amount_refunded >= amount,
        "refunds": {"object": "list", "data": []},
        "payment_intent": pi_id,
        "metadata": {"dispatch_reader": str(reader_id), "dispatch_purpose": "wallet_topup"},
    }


def dispute_obj(
    dispute_id: str,
    pi_id: str,
    amount: int,
    status: str = "needs_response",
    charge_id: str | None = None,
) -> dict[str, Any]:
    return {
        "id": dispute_id,
        "object": "dispute",
        "amount": amount,
        "currency": "usd",
        "status": status,
        "charge": charge_id or f"ch_for_{pi_id}",
        "payment_intent": pi_id,
    }


def card_top_up(
    client: Any,
    api_base: str,
    token: str,
    amount: Any = 500,
    *,
    card: str = CARD_OK,
    currency: str = "usd",
    status: int = 201,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Any:
    """Top up `token`'s wallet through the API with a card (by default one localstripe
    accepts); the API must answer `status` (201: the top-up was charged). Returns the
    response; what to check about the credit is each test's own business. `extra`: more
    request fields (e.g. `buy`); `headers`: more request headers (e.g. Idempotency-Key)."""
    response = client.post(
        "/api/v1/wallet/topups",
        json={
            "amount": amount,
            "currency": currency,
            "payment_method": card_payment_method(api_base, card),
            **extra,
        },
        headers={"Authorization": f"Bearer {token}", **(headers or {})},
    )
    assert response.status_code == status, response.json
    return response


def paid_in_stripe_unheard(api_base: str, reader_id: int, amount: int = 500) -> str:
    """A top-up PaymentIntent of `reader_id` with all of our metadata, confirmed in Stripe
    directly: it succeeded, and no webhook is sent. Its id."""
    pi = stripe_client(api_base).v1.payment_intents.create(
        params={
            "amount": amount,
            "currency": "usd",
            "payment_method_types": ["card"],
            "payment_method": card_payment_method(api_base),
            "confirm": True,
            "metadata": topup_metadata(reader_id, recorded_topup(reader_id, amount)),
        }
    )
    assert pi.status == "succeeded"
    return str(pi.id)


def pending_top_up(client: Any, api_base: str, token: str, amount: int = 500) -> str:
    """A top-up with a card that asks for 3-D Secure: it waits for the reader's bank
    (`requires_action`) and the app knows its PaymentIntent. Its id."""
    response = card_top_up(client, api_base, token, amount, card=CARD_3DS)
    assert response.json["topup"]["status"] == "requires_action"
    return str(response.json["topup"]["id"])


def unheard_top_up(client: Any, api_base: str, token: str, amount: int = 500, **extra: Any) -> str:
    """A top-up the app made (its PaymentIntent carries all of the app's metadata) that
    then succeeded in Stripe without the app hearing of it: a card that asks for 3-D
    Secure, authenticated in Stripe as Stripe.js would. No webhook, no poll. Its id."""
    response = client.post(
        "/api/v1/wallet/topups",
        json={
            "amount": amount,
            "currency": "usd",
            "payment_method": card_payment_method(api_base, CARD_3DS),
            **extra,
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201, response.json
    topup = response.json["topup"]
    assert topup["status"] == "requires_action"
    stripe_client(api_base).raw_request(
        "post",
        f"/v1/payment_intents/{topup['id']}/_authenticate",
        client_secret=topup["client_secret"],
        success="true",
    )
    return str(topup["id"])


def stripe_charge_of(api_base: str, pi_id: str) -> dict[str, Any]:
    """The latest charge of a PaymentIntent exactly as Stripe serialises it."""
    pi = stripe_client(api_base).v1.payment_intents.retrieve(
        pi_id, params={"expand": ["latest_charge"]}
    )
    charge: dict[str, Any] = json.loads(json.dumps(pi.to_dict()["latest_charge"]))
    return charge


def stripe_intent_of(api_base: str, pi_id: str) -> dict[str, Any]:
    """A PaymentIntent exactly as Stripe serialises it (latest_charge as an id)."""
    pi = stripe_client(api_base).v1.payment_intents.retrieve(pi_id)
    data: dict[str, Any] = json.loads(json.dumps(pi.to_dict()))
    return data


def save_card(client: Any, api_base: str, token: str, number: str = CARD_OK) -> str:
    """Save a test card for auto top-up through PUT /api/v1/wallet/card (which must answer
    200); its PaymentMethod id. A card that asks for 3-D Secure is confirmed in Stripe
    as Stripe.js would, then sent again."""
    payment_method = card_payment_method(api_base, number)
    headers = {"Authorization": f"Bearer {token}"}
    response = client.put(
        "/api/v1/wallet/card", json={"payment_method": payment_method}, headers=headers
    )
    if response.status_code == 402 and response.json["error"]["code"] == "requires_action":
        finish_setup(api_base, response.json["setup_intent"])
        response = client.put(
            "/api/v1/wallet/card", json={"payment_method": payment_method}, headers=headers
        )
    assert response.status_code == 200, response.json
    return payment_method


def finish_setup(api_base: str, setup_intent: dict[str, Any]) -> None:
    """Complete a SetupIntent waiting for 3-D Secure, as Stripe.js does after the bank's check."""
    stripe_client(api_base).raw_request(
        "post",
        f"/v1/setup_intents/{setup_intent['id']}/confirm",
        client_secret=setup_intent["client_secret"],
    )
