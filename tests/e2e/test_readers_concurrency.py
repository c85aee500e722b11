"""Readers' limits under real concurrency on PostgreSQL: a daily cap and a gift link's reads.

Uses the race harness of test_concurrency (own schema, committing sessions, threads
released together by a barrier).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from flask import Flask

from dispatch_pay.accounts.spending_cap import set_daily_cap
from dispatch_pay.catalog.gifts import create_gift
from models import GiftRead, Purchase, db
from tests.e2e.test_concurrency import (  # the race harness and its module-scoped app
    books_balance_afterwards,
    count,
    fund,
    own_stripe,
    race,
    race_app,
    running_balances,
    token_in_use,
    wallet_of,
)
from tests.support.factories import bearer, grant, make_article, make_token, make_user
from tests.support.web import csrf_token_from

__all__ = ["books_balance_afterwards", "own_stripe", "race_app"]  # fixtures, used by name
pytestmark = [pytest.mark.postgres_only]


def test_20_parallel_purchases_stop_at_the_daily_cap(race_app: Flask) -> None:
    with race_app.app_context():
        reader = make_user()
        token = make_token(reader)
        slugs = [make_article(price=39).slug for _ in range(20)]
        fund(reader.id, 20 * 39)  # money for all of them: only the cap stops them
        set_daily_cap(reader, {"amount": 5 * 39, "currency": "usd"})
        db.session.commit()
        reader_id = reader.id
    token_in_use(race_app, token)

    def buy(i: int) -> tuple[int, Any]:
        response = race_app.test_client().post(
            f"/api/v1/articles/{slugs[i]}/purchase", headers=bearer(token)
        )
        return response.status_code, response.get_json()

    results = race(20, buy)

    assert Counter(status for status, _ in results) == {201: 5, 402: 15}
    assert {body["error"]["code"] for status, body in results if status == 402} == {
        "spending_cap_reached"
    }
    with race_app.app_context():
        wallet = wallet_of(reader_id)
        assert wallet.balance == 15 * 39
        assert len(running_balances(wallet.id)) == 1 + 5  # the funding and 5 debits
        assert count(Purchase, Purchase.user_id == reader_id) == 5


def test_12_people_opening_one_gift_link_at_once_get_3_reads(race_app: Flask) -> None:
    with race_app.app_context():
        giver = make_user()
        article = make_article(body="Raced-gift-text.", price=39)
        grant(giver, article)
        gift = create_gift(giver, article)
        db.session.commit()
        path = "/gift/" + gift.token
        gift_id = gift.gift.id

    clients = [race_app.test_client() for _ in range(12)]
    tokens = [csrf_token_from(c, path) for c in clients]

    def open_link(i: int) -> bool:
        response = clients[i].post(path, data={"csrf_token": tokens[i]})
        assert response.status_code == 303
        return "Raced-gift-text." in clients[i].get(path).get_data(as_text=True)

    assert Counter(race(12, open_link)) == {True: 3, False: 9}
    with race_app.app_context():
        assert count(GiftRead, GiftRead.gift_id == gift_id) == 3


def test_12_people_opening_four_links_of_one_giver_at_once_get_3_reads(race_app: Flask) -> None:
    """The publisher's number is the giver's, not each link's: parallel claims through
    several links of one giver still let only 3 people read."""
    with race_app.app_context():
        giver = make_user()
        article = make_article(body="Raced-gift-text.", price=39)
        grant(giver, article)
        paths = ["/gift/" + create_gift(giver, article).token for _ in range(4)]
        db.session.commit()
        article_id = article.id

    clients = [race_app.test_client() for _ in range(12)]
    tokens = [csrf_token_from(c, paths[i % 4]) for i, c in enumerate(clients)]

    def open_link(i: int) -> bool:
        path = paths[i % 4]
        response = clients[i].post(path, data={"csrf_token": tokens[i]})
        assert response.status_code == 303
        return "Raced-gift-text." in clients[i].get(path).get_data(as_text=True)

    assert Counter(race(12, open_link)) == {True: 3, False: 9}
    with race_app.app_context():
        assert count(GiftRead, GiftRead.article_id == article_id) == 3
