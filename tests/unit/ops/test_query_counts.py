"""SQL statements per request stay the same however large the catalog and its buyers grow.

Each scenario is measured on a small data set, the data set is then grown (more
articles, readers and entitlements, including the caller's own), and the same request
must issue exactly as many statements. Each count also has a small upper bound, so a
new query on a hot path is a deliberate change of this file.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import event

from dispatch_pay.catalog.public_cache import clear_all_caches
from dispatch_pay.wallet.ledger import locked_wallet, post_entry
from models import ENTRY_TOPUP, Article, User, db
from tests.support.factories import bearer, grant, make_article, make_token, make_user
from tests.support.stripe_helpers import event as stripe_event
from tests.support.stripe_helpers import recorded_topup, signed, topup_metadata
from tests.support.web import log_in

# Savepoints belong to the test harness (each test runs in a rolled-back transaction).
HARNESS = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")
_seq = itertools.count(1)


class StatementCounter:
    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip().upper().startswith(HARNESS):
            self.statements.append(statement)


Measure = Callable[[Callable[[], Any]], int]


@pytest.fixture()
def counter(db_connection: Any) -> Iterator[StatementCounter]:
    found = StatementCounter()
    event.listen(db_connection, "before_cursor_execute", found)
    yield found
    event.remove(db_connection, "before_cursor_execute", found)


@pytest.fixture()
def count_queries(counter: StatementCounter) -> Measure:
    def measure(request: Callable[[], Any]) -> int:
        request()  # warm-up: first use of a code path may load lazily
        db.session.expire_all()  # nothing carried over from the warm-up in the identity map
        clear_all_caches()  # anonymous requests measure the render, not the cache hit
        counter.statements.clear()
        request()
        return len(counter.statements)

    return measure


def fund(user: User, amount: int = 100_00) -> None:
    wallet = locked_wallet(user.id, "usd")
    post_entry(wallet, ENTRY_TOPUP, amount, f"seed:{user.id}:{next(_seq)}")
    db.session.commit()


def grow(articles: int, readers: int, owner: User | None = None) -> list[Article]:
    """More published articles, more readers, each reader entitled to several of them."""
    made = [make_article() for _ in range(articles)]
    for _ in range(readers):
        reader = make_user()
        for article in made[:5]:
            grant(reader, article)
    if owner is not None:
        for article in made:
            grant(owner, article)
    return made


def assert_flat(measure: Measure, request: Callable[[], Any], owner: User) -> int:
    """Statements of one request; the same before and after the data set grows."""
    small = measure(request)
    grow(articles=15, readers=4, owner=owner)
    large = measure(request)
    assert large == small, f"{small} statements on a small catalog, {large} on a larger one"
    return small


@pytest.fixture()
def reader(client: FlaskClient) -> User:
    return make_user()


def anonymous_get(client: FlaskClient, path: str, status: int = 200) -> Callable[[], Any]:
    def request() -> None:
        client._cookies.clear()
        assert client.get(path).status_code == status

    return request


def test_front_page(client: FlaskClient, count_queries: Measure, reader: User) -> None:
    grow(articles=3, readers=1, owner=reader)
    anonymous = assert_flat(count_queries, anonymous_get(client, "/"), reader)
    assert anonymous <= 4
    log_in(client, reader)
    logged_in = assert_flat(count_queries, lambda: client.get("/"), reader)
    assert logged_in <= anonymous + 2  # the user and the badges of owned articles


def test_cached_anonymous_page_costs_one_query(
    client: FlaskClient, counter: StatementCounter
) -> None:
    article = make_article()
    path = f"/articles/{article.slug}"
    anonymous_get(client, path)()
    counter.statements.clear()
    response = client.get(path)
    assert response.headers.get("X-Dispatch-Cache") == "hit"
    assert len(counter.statements) == 1, counter.statements  # the catalog version


def test_teaser_page(client: FlaskClient, count_queries: Measure, reader: User) -> None:
    article = make_article()
    assert (
        assert_flat(count_queries, anonymous_get(client, f"/articles/{article.slug}"), reader) <= 5
    )


def test_entitled_full_page(client: FlaskClient, count_queries: Measure, reader: User) -> None:
    article = make_article(body="Words for owners.")
    grant(reader, article)
    log_in(client, reader)

    def request() -> None:
        response = client.get(f"/articles/{article.slug}")
        assert "Words for owners." in response.get_data(as_text=True)

    assert assert_flat(count_queries, request, reader) <= 7


def test_article_api_402_and_200(client: FlaskClient, count_queries: Measure, reader: User) -> None:
    article = make_article()
    path = f"/api/v1/articles/{article.slug}"
    assert assert_flat(count_queries, anonymous_get(client, path, 402), reader) <= 3
    grant(reader, article)
    token = make_token(reader)

    def entitled() -> None:
        assert client.get(path, headers=bearer(token)).status_code == 200

    assert assert_flat(count_queries, entitled, reader) <= 7


def test_entitled_reads_from_the_render_cache_cost_the_caller_and_one_statement(
    client: FlaskClient, counter: StatementCounter, reader: User
) -> None:
    """Once a text is rendered, an owner's read is one statement with a token (who the
    token is, the article, what they hold of it, the catalog version: answered before
    Flask, see catalog/owner_reads.py), and one in a browser too (the session's, with the
    same: catalog/owner_pages.py)."""
    article = make_article(body="Words for owners.")
    grant(reader, article)
    token = make_token(reader)
    api = f"/api/v1/articles/{article.slug}"
    page = f"/articles/{article.slug}"
    assert client.get(api, headers=bearer(token)).status_code == 200  # rendered here
    counter.statements.clear()
    response = client.get(api, headers=bearer(token))
    assert "Words for owners." in response.get_data(as_text=True)
    assert len(counter.statements) == 1, counter.statements
    log_in(client, reader)
    assert client.get(page).status_code == 200
    counter.statements.clear()
    response = client.get(page)
    assert "Words for owners." in response.get_data(as_text=True)
    assert len(counter.statements) == 1, counter.statements


def test_library(client: FlaskClient, count_queries: Measure, reader: User) -> None:
    grow(articles=2, readers=1, owner=reader)
    token = make_token(reader)

    def request() -> None:
        assert client.get("/api/v1/library", headers=bearer(token)).status_code == 200

    assert assert_flat(count_queries, request, reader) <= 6


def test_purchase(client: FlaskClient, count_queries: Measure, reader: User) -> None:
    fund(reader)
    token = make_token(reader)
    to_buy = iter([make_article() for _ in range(4)])

    def request() -> None:
        slug = next(to_buy).slug
        response = client.post(f"/api/v1/articles/{slug}/purchase", headers=bearer(token))
        assert response.status_code == 201, response.json

    # The token, the article, the locked wallet, an active purchase, the daily cap; then
    # the purchase, its ledger entry (its unique reference decides: no look-up first),
    # the balance and the entitlement (one upsert).
    assert assert_flat(count_queries, request, reader) <= 10


def test_webhook_ingest(stripe_client: FlaskClient, count_queries: Measure, reader: User) -> None:
    references = [recorded_topup(reader.id, 500) for _ in range(4)]  # one per request

    def request() -> None:
        n = next(_seq)
        intent = {
            "id": f"pi_count_{n}",
            "object": "payment_intent",
            "status": "succeeded",
            "amount": 500,
            "currency": "usd",
            "metadata": topup_metadata(reader.id, references.pop()),
            "latest_charge": f"ch_count_{n}",
        }
        payload, headers = signed(stripe_event("payment_intent.succeeded", intent))
        response = stripe_client.post("/webhooks/stripe", data=payload, headers=headers)
        assert response.status_code == 200
        assert json.loads(response.data)["outcome"] == "credited"

    # 16: crediting also writes the receipt into the mail outbox, in the same transaction.
    assert assert_flat(count_queries, request, reader) <= 16
