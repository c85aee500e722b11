"""Second attack round on the quick purchase (wallet/quick_purchase.py), with real
threads on PostgreSQL: a purchase that waits for the reader's wallet while something it
depends on changes. The view re-reads after taking the wallet's lock; the one statement
sees the database as it was when it started."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text
from werkzeug.test import Client

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

__all__ = ["books_balance_afterwards", "own_stripe", "race_app"]

pytestmark = [pytest.mark.postgres_only]


def _waiting_purchase(race_app: Flask, path: str, change: str) -> tuple[int, Any, dict[str, Any]]:
    """A purchase (quick path or view) queued behind a held wallet lock while `change`
    (SQL, committed) happens; then the lock is released. (status, body, rows)."""
    quick = quick_of(race_app)
    with race_app.app_context():
        reader = make_user()
        token = make_token(reader)
        fund(reader.id, 1000)
        learn = make_article(price=1).slug
        article = make_article(price=39)
        slug, article_id, user_id = article.slug, article.id, reader.id
        wallet_id = db.session.scalar(
            text("SELECT id FROM wallets WHERE user_id = :u"), {"u": user_id}
        )
        db.session.commit()
        engine = db.engine
    token_in_use(race_app, token)
    first = Client(quick).post(f"/api/v1/articles/{learn}/purchase", headers=bearer(token))
    assert first.status_code == 201 and quick.headers is not None
    # The view alone: the app below its own quick path (which, once it learned its
    # headers, would answer the plain purchase itself).
    buyer: Any = quick if path == "quick" else quick.app
    result: dict[str, Any] = {}

    def buy() -> None:
        response = Client(buyer).post(f"/api/v1/articles/{slug}/purchase", headers=bearer(token))
        result["answer"] = (response.status_code, response.get_json(silent=True))

    before = set(backends_waiting_on_locks(engine))
    holder = engine.connect()
    transaction = holder.begin()
    holder.execute(text("SELECT id FROM wallets WHERE id = :id FOR UPDATE"), {"id": wallet_id})
    thread = threading.Thread(target=buy)
    try:
        thread.start()
        assert wait_until(lambda: len(set(backends_waiting_on_locks(engine)) - before) >= 1, 10)
        with engine.begin() as other:
            other.execute(text(change), {"a": article_id, "u": user_id})
    finally:
        transaction.rollback()
        holder.close()
        thread.join(timeout=30)
    with engine.connect() as conn:
        purchase = conn.execute(
            text("SELECT id, amount FROM purchases WHERE user_id = :u AND article_id = :a"),
            {"u": user_id, "a": article_id},
        ).first()
        entry = None
        if purchase is not None:
            entry = conn.execute(
                text("SELECT amount FROM ledger_entries WHERE purchase_id = :p"), {"p": purchase[0]}
            ).scalar()
        balance = conn.execute(
            text("SELECT balance FROM wallets WHERE id = :w"), {"w": wallet_id}
        ).scalar()
    status, body = result["answer"]
    return status, body, {"purchase": purchase, "entry": entry, "balance": balance}


@pytest.mark.parametrize("path", ["quick", "view"])
def test_a_price_change_while_the_purchase_waits_is_paid_consistently(
    race_app: Flask, path: str
) -> None:
    status, body, rows = _waiting_purchase(
        race_app, path, "UPDATE articles SET price_amount = 99 WHERE id = :a"
    )
    assert status == 201, body
    price = body["purchase"]["price"]["amount"]
    assert rows["purchase"][1] == price and rows["entry"] == -price
    assert rows["balance"] == 1000 - 1 - price == body["wallet"]["balance"]["amount"]


@pytest.mark.parametrize("path", ["quick", "view"])
def test_a_daily_cap_set_while_the_purchase_waits_for_the_wallet_holds(
    race_app: Flask, path: str
) -> None:
    """The cap is checked with the wallet locked (accounts/spending_cap.py): a purchase
    that only gets the wallet after the reader's cap was saved must be refused by it.
    The view reads the cap after the lock; the quick statement's NOT EXISTS saw the
    settings as they were before it waited, so it buys past the cap."""
    status, body, rows = _waiting_purchase(
        race_app,
        path,
        "INSERT INTO wallet_settings (user_id, daily_cap_amount, daily_cap_currency, updated_at)"
        " VALUES (:u, 10, 'usd', now())",
    )
    assert status == 402 and body["error"]["code"] == "spending_cap_reached", (status, body)
    assert rows["purchase"] is None and rows["balance"] == 1000 - 1
