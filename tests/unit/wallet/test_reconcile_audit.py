"""`flask reconcile` credits what no webhook reported; `flask audit` checks the books.

localstripe is shared by the whole session and keeps every test's PaymentIntents, so
`reconcile` sees them all: assertions look at this test's reader and PaymentIntents only.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text

from dispatch_pay.payments.services import prepare_topup
from models import ENTRY_TOPUP, LedgerEntry, Purchase, TopUp, User, Wallet, db
from tests.support.factories import bearer, make_article, make_token, reader_with_own_id
from tests.support.servers import LocalStripe
from tests.support.stripe_helpers import (
    CARD_3DS,
    card_payment_method,
    card_top_up,
    dispute_obj,
    event,
    paid_in_stripe_unheard,
    signed,
)
from tests.support.stripe_helpers import stripe_client as stripe_api

# localstripe outlives each test while SQLite reuses the ids of rolled-back rows: a reader
# whose id merely repeated an earlier test's would be credited that test's top-ups.
_reader_ids = itertools.count(9_000_000)


@dataclass
class Reader:
    id: int
    token: str


@pytest.fixture()
def reader() -> Reader:
    user = reader_with_own_id(_reader_ids)
    return Reader(user.id, make_token(user))


def run(app: Flask, command: str) -> Any:
    return app.test_cli_runner().invoke(args=[command])


def balance(client: FlaskClient, reader: Reader) -> int:
    response = client.get("/api/v1/wallet", headers=bearer(reader.token))
    return int(response.json["balance"]["amount"])


def credits_for(pi_id: str) -> list[int]:
    return list(
        db.session.scalars(
            select(LedgerEntry.amount).where(
                LedgerEntry.kind == ENTRY_TOPUP, LedgerEntry.reference == pi_id
            )
        )
    )


def test_reconcile_credits_a_top_up_whose_webhook_never_came_once(
    stripe_app: Flask, stripe_client: FlaskClient, localstripe: LocalStripe, reader: Reader
) -> None:
    pi_id = paid_in_stripe_unheard(localstripe.base, reader.id, 700)
    assert balance(stripe_client, reader) == 0

    first = run(stripe_app, "reconcile")

    assert first.exit_code == 0, first.output
    assert f"credited {pi_id}: $7.00 to reader {reader.id}" in first.output
    assert balance(stripe_client, reader) == 700
    assert credits_for(pi_id) == [700]
    topup = db.session.scalars(select(TopUp).where(TopUp.payment_intent_id == pi_id)).one()
    assert (topup.user_id, topup.amount, topup.status) == (reader.id, 700, "succeeded")
    assert topup.credited_at is not None

    second = run(stripe_app, "reconcile")

    assert second.exit_code == 0, second.output
    assert pi_id not in second.output
    assert balance(stripe_client, reader) == 700
    assert credits_for(pi_id) == [700]


def test_reconcile_skips_top_ups_credited_synchronously(
    stripe_app: Flask, stripe_client: FlaskClient, localstripe: LocalStripe, reader: Reader
) -> None:
    response = card_top_up(stripe_client, localstripe.base, reader.token)
    pi_id = response.json["topup"]["id"]

    result = run(stripe_app, "reconcile")

    assert result.exit_code == 0
    assert pi_id not in result.output
    assert balance(stripe_client, reader) == 500
    assert credits_for(pi_id) == [500]


def test_reconcile_finishes_a_3ds_top_up_and_its_purchase(
    stripe_app: Flask, stripe_client: FlaskClient, localstripe: LocalStripe, reader: Reader
) -> None:
    article = make_article(price=39)
    response = stripe_client.post(
        "/api/v1/wallet/topups",
        json={
            "amount": 500,
            "currency": "usd",
            "payment_method": card_payment_method(localstripe.base, CARD_3DS),
            "buy": article.slug,
        },
        headers=bearer(reader.token),
    )
    topup = response.json["topup"]
    assert topup["status"] == "requires_action"
    assert topup["id"] not in run(stripe_app, "reconcile").output
    assert balance(stripe_client, reader) == 0

    # The reader authenticates, then closes the tab: nobody polls and no webhook arrives.
    stripe_api(localstripe.base).raw_request(
        "post",
        f"/v1/payment_intents/{topup['id']}/_authenticate",
        client_secret=topup["client_secret"],
        success="true",
    )
    result = run(stripe_app, "reconcile")

    assert f"credited {topup['id']}" in result.output
    assert balance(stripe_client, reader) == 461
    purchase = db.session.scalars(select(Purchase).where(Purchase.user_id == reader.id)).one()
    assert (purchase.article_id, purchase.amount) == (article.id, 39)
    full = stripe_client.get(f"/api/v1/articles/{article.slug}", headers=bearer(reader.token))
    assert full.status_code == 200
    assert credits_for(topup["id"]) == [500]


def _deliver(client: FlaskClient, evt: dict[str, Any]) -> None:
    payload, headers = signed(evt)
    assert client.post("/webhooks/stripe", data=payload, headers=headers).status_code == 200


def busy_books(app: Flask, client: FlaskClient, base: str, reader: Reader) -> int:
    """Top-ups, purchases, a reader refund, a lost dispute: every kind of entry. The wallet id."""
    articles = [make_article(price=39), make_article(price=120)]
    card_top_up(client, base, reader.token, buy=articles[0].slug)
    purchase = client.post(
        f"/api/v1/articles/{articles[1].slug}/purchase", headers=bearer(reader.token)
    )
    assert purchase.status_code == 201
    refund = client.post(
        f"/api/v1/purchases/{purchase.json['purchase']['id']}/refund",
        headers=bearer(reader.token),
    )
    assert refund.status_code == 200
    disputed = paid_in_stripe_unheard(base, reader.id, 300)
    assert f"credited {disputed}" in run(app, "reconcile").output
    dispute = dispute_obj(f"dp_{disputed}", disputed, 300, "lost")
    dispute["charge"] = db.session.scalar(
        select(TopUp.charge_id).where(TopUp.payment_intent_id == disputed)
    )
    _deliver(client, event("charge.dispute.created", {**dispute, "status": "needs_response"}))
    _deliver(client, event("charge.dispute.closed", dispute))
    assert balance(client, reader) == 500 - 39 + 300 - 300
    wallet_id = db.session.scalar(select(Wallet.id).where(Wallet.user_id == reader.id))
    assert wallet_id is not None
    return int(wallet_id)


def test_audit_passes_on_books_that_balance(
    stripe_app: Flask, stripe_client: FlaskClient, localstripe: LocalStripe, reader: Reader
) -> None:
    busy_books(stripe_app, stripe_client, localstripe.base, reader)

    result = run(stripe_app, "audit")

    assert result.exit_code == 0, result.output
    assert "every ledger invariant holds" in result.output


def _corrupt_balance(wallet_id: int) -> None:
    db.session.execute(
        text("UPDATE wallets SET balance = balance + 100 WHERE id = :id"), {"id": wallet_id}
    )


def _corrupt_disputes(wallet_id: int) -> None:
    db.session.execute(
        text("UPDATE wallets SET open_disputes = 1 WHERE id = :id"), {"id": wallet_id}
    )


def _drop_entitlements(wallet_id: int) -> None:
    db.session.execute(
        text(
            "DELETE FROM entitlements WHERE purchase_id IN "
            "(SELECT id FROM purchases WHERE wallet_id = :id)"
        ),
        {"id": wallet_id},
    )


def _forget_a_top_up(wallet_id: int) -> None:
    db.session.execute(
        text(
            "UPDATE topups SET amount = amount + 1 WHERE user_id = "
            "(SELECT user_id FROM wallets WHERE id = :id)"
        ),
        {"id": wallet_id},
    )


@pytest.mark.parametrize(
    ("corrupt", "expected"),
    [
        (_corrupt_balance, "wallet {wallet}: balance 561 but its entries sum to 461"),
        (_corrupt_disputes, "wallet {wallet}: open_disputes 1 but 0 open"),
        (_drop_entitlements, "active but no entitlement"),
        (_forget_a_top_up, "credited 500, record says 501 succeeded"),
    ],
)
def test_audit_reports_corrupted_books_and_exits_1(
    stripe_app: Flask,
    stripe_client: FlaskClient,
    localstripe: LocalStripe,
    reader: Reader,
    corrupt: Callable[[int], None],
    expected: str,
) -> None:
    wallet_id = busy_books(stripe_app, stripe_client, localstripe.base, reader)
    assert run(stripe_app, "audit").exit_code == 0

    corrupt(wallet_id)
    db.session.expire_all()  # the ORM would otherwise keep its copy of the rows
    result = run(stripe_app, "audit")

    assert result.exit_code == 1, result.output
    assert expected.format(wallet=wallet_id) in result.output
    assert "problem(s) found" in result.output


def test_reconcile_finds_the_top_up_of_a_request_that_died_after_stripe_charged(
    stripe_app: Flask, stripe_client: FlaskClient, localstripe: LocalStripe, reader: Reader
) -> None:
    """The app recorded the top-up and Stripe charged it, but the answer never came back."""
    article = make_article(price=39)
    payment_method = card_payment_method(localstripe.base)
    body = {"amount": 500, "currency": "usd", "payment_method": payment_method, "buy": article.slug}
    user = db.session.get(User, reader.id)
    assert user is not None
    topup, must_submit = prepare_topup(
        user,
        amount=500,
        currency="usd",
        payment_method=payment_method,
        buy=article,
        idempotency_key="lost-answer",
    )
    assert must_submit
    db.session.commit()
    pi = stripe_api(localstripe.base).v1.payment_intents.create(
        params={
            "amount": 500,
            "currency": "usd",
            "payment_method_types": ["card"],
            "payment_method": payment_method,
            "confirm": True,
            "metadata": {
                "dispatch_reader": str(reader.id),
                "dispatch_purpose": "wallet_topup",
                "dispatch_topup": str(topup.id),
                "dispatch_ref": str(topup.reference),
                "dispatch_article": article.slug,
            },
        }
    )
    headers = {**bearer(reader.token), "Idempotency-Key": "lost-answer"}
    in_flight = stripe_client.post("/api/v1/wallet/topups", json=body, headers=headers)
    assert in_flight.status_code == 409
    assert in_flight.json["error"]["code"] == "idempotency_key_in_use"

    assert f"credited {pi.id}" in run(stripe_app, "reconcile").output

    rows = db.session.scalars(select(TopUp).where(TopUp.user_id == reader.id)).all()
    assert [(row.id, row.payment_intent_id, row.status) for row in rows] == [
        (topup.id, pi.id, "succeeded")
    ]
    assert balance(stripe_client, reader) == 461
    assert db.session.scalars(select(Purchase).where(Purchase.user_id == reader.id)).one()
    # The reader's retry now gets the same top-up, and is not charged again.
    retry = stripe_client.post("/api/v1/wallet/topups", json=body, headers=headers)
    assert retry.status_code == 201
    assert (retry.json["topup"]["id"], retry.json["topup"]["status"]) == (pi.id, "succeeded")
    assert balance(stripe_client, reader) == 461
    assert credits_for(pi.id) == [500]


def test_reconcile_without_stripe_keys_says_so_and_exits_1(app: Flask, client: FlaskClient) -> None:
    result = app.test_cli_runner().invoke(args=["reconcile"])
    assert result.exit_code == 1
    assert "Stripe is not configured" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
