"""Attacks on the quick purchase (wallet/quick_purchase.py) with real threads on PostgreSQL.

Each test here failed when written, and shows a promise the purchase path broke.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text
from werkzeug.test import Client

from dispatch_pay.wallet.services import purchase_article
from models import db
from tests.e2e.test_concurrency import (
    books_balance_afterwards,
    fund,
    own_stripe,
    quick_of,
    race_app,
    token_in_use,
)
from tests.support.factories import bearer, make_article, make_token, make_user
from tests.support.faults import backends_waiting_on_locks
from tests.support.servers import wait_until

__all__ = ["books_balance_afterwards", "own_stripe", "race_app"]  # fixtures used here

pytestmark = [pytest.mark.postgres_only]


def deadlocks(engine: Any) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
            ).scalar_one()
        )


@pytest.mark.parametrize("path", ["quick", "view"])
@pytest.mark.parametrize("round_", range(3))
def test_a_publisher_refund_and_a_purchase_by_the_same_reader_both_answer(
    race_app: Flask, round_: int, path: str
) -> None:
    """A refund locks the reader's row, then the wallet; a purchase locks the wallet, then
    (inserting a purchase that references the reader) takes a KEY SHARE lock on the
    reader's row, which the refund's FOR UPDATE blocks: a deadlock, and PostgreSQL
    aborts one of them. Here the purchase waits for the wallet first (held for a moment
    by another transaction), the refund then locks the reader and queues for the wallet:
    once the wallet is free, each waits for the other. Both must still be answered
    (no 503 for the refund, no lost purchase)."""
    quick = quick_of(race_app)
    with race_app.app_context():
        reader = make_user()
        publisher = make_user(role="publisher")
        token = make_token(reader)
        publisher_token = make_token(publisher)
        fund(reader.id, 1000)
        bought = make_article(price=39)
        purchase = purchase_article(reader, bought)
        db.session.commit()
        purchase_id = purchase.purchase.id
        learn = make_article(price=1).slug
        slug = make_article(price=39).slug
        wallet_id = db.session.scalar(
            text("SELECT id FROM wallets WHERE user_id = :u"), {"u": reader.id}
        )
        engine = db.engine
    token_in_use(race_app, token)
    token_in_use(race_app, publisher_token)
    buyer: Any = quick if path == "quick" else quick.app  # the view (below any quick path)
    first = Client(quick).post(f"/api/v1/articles/{learn}/purchase", headers=bearer(token))
    assert first.status_code == 201 and quick.headers is not None

    results: dict[str, tuple[int, Any]] = {}

    def buy() -> None:
        response = Client(buyer).post(f"/api/v1/articles/{slug}/purchase", headers=bearer(token))
        results["buy"] = (response.status_code, response.get_json(silent=True))

    def refund() -> None:
        response = race_app.test_client().post(
            f"/api/v1/purchases/{purchase_id}/refund", headers=bearer(publisher_token)
        )
        results["refund"] = (response.status_code, response.get_json(silent=True))

    deadlocks_before = deadlocks(engine)
    before = set(backends_waiting_on_locks(engine))
    holder = engine.connect()
    transaction = holder.begin()
    holder.execute(text("SELECT id FROM wallets WHERE id = :id FOR UPDATE"), {"id": wallet_id})
    threads = [threading.Thread(target=buy), threading.Thread(target=refund)]
    try:
        threads[0].start()
        assert wait_until(lambda: len(set(backends_waiting_on_locks(engine)) - before) >= 1, 10)
        threads[1].start()
        assert wait_until(lambda: len(set(backends_waiting_on_locks(engine)) - before) >= 2, 10)
        time.sleep(0.1)
    finally:
        transaction.rollback()
        holder.close()
        for thread in threads:
            thread.join(timeout=30)
    assert results["refund"][0] == 200, results
    time.sleep(0.6)  # the statistics collector reports with a delay
    assert deadlocks(engine) == deadlocks_before, "the refund and the purchase deadlocked"
    assert results["buy"][0] == 201, results
