"""Agent budgets hold under parallel purchases (PostgreSQL, real threads, real commits)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from flask import Flask

from models import Purchase
from tests.factories import bearer, make_agent_token, make_article, make_user
from tests.test_concurrency import (  # noqa: F401 - the fixtures are used by name
    books_balance_afterwards,
    count,
    fund,
    own_stripe,
    race,
    race_app,
    wallet_of,
)

pytestmark = [pytest.mark.postgres_only]


def warmed(app: Flask, token: str) -> str:
    """Use the token once, so the racers do not queue on its first last_used_at update."""
    assert app.test_client().get("/api/v1/library", headers=bearer(token)).status_code == 200
    return token


def test_24_parallel_purchases_stop_at_the_daily_limit(race_app: Flask) -> None:  # noqa: F811
    with race_app.app_context():
        reader = make_user()
        token = make_agent_token(reader, max_price=39, daily_limit=100)
        slugs = [make_article(price=39).slug for _ in range(24)]
        fund(reader.id, 10_000)
        reader_id = reader.id
    warmed(race_app, token)

    def buy(i: int) -> tuple[int, Any]:
        response = race_app.test_client().post(
            f"/api/v1/articles/{slugs[i]}/purchase", headers=bearer(token)
        )
        return response.status_code, response.get_json()

    results = race(24, buy)

    assert Counter(status for status, _ in results) == {201: 2, 402: 22}
    assert {body["error"]["code"] for status, body in results if status == 402} == {
        "budget_exceeded"
    }
    with race_app.app_context():
        assert count(Purchase, Purchase.user_id == reader_id) == 2
        assert wallet_of(reader_id).balance == 10_000 - 78


def test_two_agents_of_one_reader_each_keep_their_own_limit(race_app: Flask) -> None:  # noqa: F811
    with race_app.app_context():
        reader = make_user()
        tokens = [make_agent_token(reader, max_price=50, daily_limit=100) for _ in range(2)]
        slugs = [make_article(price=50).slug for _ in range(12)]
        fund(reader.id, 10_000)
        reader_id = reader.id
    for token in tokens:
        warmed(race_app, token)

    results = race(
        12,
        lambda i: (
            race_app.test_client()
            .post(f"/api/v1/articles/{slugs[i]}/purchase", headers=bearer(tokens[i % 2]))
            .status_code
        ),
    )

    assert Counter(results) == {201: 4, 402: 8}
    with race_app.app_context():
        assert count(Purchase, Purchase.user_id == reader_id) == 4
