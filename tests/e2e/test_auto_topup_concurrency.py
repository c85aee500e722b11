"""Auto top-up under real concurrency on PostgreSQL: parallel purchases that all lack
funds never take the month's auto top-ups over the reader's limit.

Uses the race harness of test_concurrency (own schema, committing sessions, threads
released together by a barrier) and its own localstripe.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from models import ENTRY_TOPUP, LedgerEntry, Purchase, TopUp, TopUpStatus, db
from tests.e2e.test_concurrency import (  # the race harness and its module-scoped app
    books_balance_afterwards,
    count,
    own_stripe,
    race,
    race_app,
    token_in_use,
    wallet_of,
)
from tests.support.factories import bearer, make_article, make_token, make_user
from tests.support.servers import LocalStripe
from tests.support.stripe_helpers import card_payment_method

__all__ = ["books_balance_afterwards", "own_stripe", "race_app"]  # fixtures, used by name
pytestmark = [pytest.mark.postgres_only]


def test_parallel_purchases_never_pass_the_monthly_auto_topup_limit(
    race_app: Flask, own_stripe: LocalStripe
) -> None:
    with race_app.app_context():
        reader = make_user()
        token = make_token(reader)
        slugs = [make_article(price=400).slug for _ in range(8)]
        db.session.commit()
        reader_id = reader.id
    token_in_use(race_app, token)
    client = race_app.test_client()
    saved = client.put(
        "/api/v1/wallet/card",
        json={"payment_method": card_payment_method(own_stripe.base)},
        headers=bearer(token),
    )
    assert saved.status_code == 200, saved.json
    usd = {"currency": "usd"}
    settings = client.put(
        "/api/v1/wallet/settings",
        json={
            "auto_topup": {
                "below": {"amount": 0, **usd},
                "amount": {"amount": 500, **usd},
                "monthly_limit": {"amount": 1500, **usd},
            }
        },
        headers=bearer(token),
    )
    assert settings.status_code == 200, settings.json

    def buy(i: int) -> tuple[int, Any]:
        response = race_app.test_client().post(
            f"/api/v1/articles/{slugs[i]}/purchase", headers=bearer(token)
        )
        return response.status_code, response.get_json()

    # Every racer reaches Stripe (the app allows 2 calls in flight per process by
    # default, which would turn most of them away before the limit is even tested).
    gateway = race_app.extensions["payment_gateway"]
    slots, gateway._slots = gateway._slots, threading.BoundedSemaphore(8)
    try:
        results = race(8, buy)
    finally:
        gateway._slots = slots

    statuses = Counter(status for status, _ in results)
    assert set(statuses) <= {201, 402, 503}, results
    assert statuses[201] >= 1
    with race_app.app_context():
        counted = db.session.scalar(
            select(func.coalesce(func.sum(TopUp.amount), 0)).where(
                TopUp.user_id == reader_id,
                TopUp.auto.is_(True),
                TopUp.status.not_in([TopUpStatus.FAILED, TopUpStatus.CANCELED]),
            )
        )
        assert counted is not None and counted <= 1500
        wallet = wallet_of(reader_id)
        credited = db.session.scalar(
            select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
                LedgerEntry.wallet_id == wallet.id, LedgerEntry.kind == ENTRY_TOPUP
            )
        )
        assert credited is not None and credited <= 1500
        bought = count(Purchase, Purchase.user_id == reader_id)
        assert bought == statuses[201]
        assert wallet.balance == credited - 400 * bought >= 0
