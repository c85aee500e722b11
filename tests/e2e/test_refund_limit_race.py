"""Real threads on PostgreSQL (issue 11, item 10, and the wallet row lock).

A reader may refund at most 3 purchases in 30 days. Refunds of purchases in three
currencies (three wallets) raced past it: only the purchase's own wallet was locked.
And the wallet's row lock itself: a hand-made mutation that removed it passed every
SQLite run; here a purchase must wait for a transaction that holds the lock.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text

from dispatch_pay.wallet.ledger import locked_wallet, post_entry
from models import ENTRY_ADJUSTMENT, Purchase, Wallet, db
from tests.e2e.test_concurrency import (
    books_balance_afterwards,
    count,
    own_stripe,
    race,
    race_app,
    token_in_use,
)
from tests.support.factories import bearer, make_article, make_token, make_user
from tests.support.faults import backends_waiting_on_locks
from tests.support.servers import wait_until

__all__ = ["books_balance_afterwards", "own_stripe", "race_app"]  # fixtures used here

pytestmark = [pytest.mark.postgres_only]
CURRENCIES = ("usd", "eur", "gbp")


def fund(user_id: int, currency: str, amount: int) -> None:
    wallet = locked_wallet(user_id, currency)
    post_entry(wallet, ENTRY_ADJUSTMENT, amount, f"refund-race-funding:{user_id}:{currency}")
    db.session.commit()


def reader_with_purchases(app: Flask, per_currency: int) -> tuple[int, str, list[int]]:
    """A reader who bought `per_currency` articles in each of three currencies."""
    with app.app_context():
        reader = make_user()
        token = make_token(reader)
        for currency in CURRENCIES:
            fund(reader.id, currency, 1000)
        slugs = [
            make_article(price=100, currency=currency).slug
            for currency in CURRENCIES
            for _ in range(per_currency)
        ]
        reader_id = reader.id
    token_in_use(app, token)
    client = app.test_client()
    purchase_ids = []
    for slug in slugs:
        response = client.post(f"/api/v1/articles/{slug}/purchase", headers=bearer(token))
        assert response.status_code == 201, response.json
        purchase_ids.append(int(response.json["purchase"]["id"]))
    return reader_id, token, purchase_ids


@pytest.mark.parametrize("round_", range(3))
def test_nine_refunds_in_three_currencies_at_once_make_exactly_three(
    race_app: Flask, round_: int
) -> None:
    reader_id, token, purchase_ids = reader_with_purchases(race_app, per_currency=3)

    def refund(i: int) -> tuple[int, Any]:
        response = race_app.test_client().post(
            f"/api/v1/purchases/{purchase_ids[i]}/refund", headers=bearer(token)
        )
        return response.status_code, response.get_json()

    results = race(len(purchase_ids), refund)

    assert Counter(status for status, _ in results) == {200: 3, 409: 6}, results
    for status, body in results:
        if status == 409:
            assert body["error"]["code"] == "refund_limit_reached"
    with race_app.app_context():
        assert count(Purchase, Purchase.user_id == reader_id, Purchase.status == "refunded") == 3


def test_a_purchase_waits_for_the_wallet_row_lock(race_app: Flask) -> None:
    with race_app.app_context():
        reader = make_user()
        token = make_token(reader)
        fund(reader.id, "usd", 100)
        slug = make_article(price=39).slug
        wallet_id = db.session.scalar(
            text("SELECT id FROM wallets WHERE user_id = :u"), {"u": reader.id}
        )
        engine = db.engine
    token_in_use(race_app, token)
    waiting_before = set(backends_waiting_on_locks(engine))
    holder = engine.connect()
    transaction = holder.begin()
    holder.execute(text("SELECT id FROM wallets WHERE id = :id FOR UPDATE"), {"id": wallet_id})
    result: list[int] = []
    buyer = threading.Thread(
        target=lambda: result.append(
            race_app.test_client()
            .post(f"/api/v1/articles/{slug}/purchase", headers=bearer(token))
            .status_code
        )
    )
    try:
        buyer.start()
        assert wait_until(
            lambda: bool(set(backends_waiting_on_locks(engine)) - waiting_before), timeout=10
        ), "the purchase did not wait for the wallet's row lock"
        time.sleep(0.2)
        assert result == []  # still waiting
    finally:
        transaction.rollback()
        holder.close()
        buyer.join(timeout=20)
    assert result == [201]
    with race_app.app_context():
        wallet = db.session.get(Wallet, wallet_id)
        assert wallet is not None
        db.session.refresh(wallet)
        assert wallet.balance == 100 - 39
