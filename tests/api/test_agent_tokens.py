"""Agent tokens: created by their reader with a budget, refused beyond it, revocable."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from models import ApiToken, LedgerEntry, Purchase, db
from tests.support.factories import bearer, make_agent_token, make_article, make_token, make_user
from tests.support.wallet import fund


def budget(max_price: int = 100, daily_limit: int = 200, currency: str = "usd") -> dict[str, Any]:
    return {
        "name": "research agent",
        "max_price": {"amount": max_price, "currency": currency},
        "daily_limit": {"amount": daily_limit, "currency": currency},
    }


def purchases(user_id: int) -> int:
    return int(
        db.session.scalar(select(func.count(Purchase.id)).where(Purchase.user_id == user_id)) or 0
    )


def entries() -> int:
    return int(db.session.scalar(select(func.count(LedgerEntry.id))) or 0)


def buy(client: FlaskClient, token: str, slug: str, **body: Any) -> Any:
    return client.post(
        f"/api/v1/articles/{slug}/purchase", json=body or None, headers=bearer(token)
    )


def test_a_reader_creates_lists_and_revokes_an_agent_token(client: FlaskClient) -> None:
    reader = make_user()
    own = bearer(make_token(reader))
    created = client.post("/api/v1/agent-tokens", json=budget(39, 100), headers=own)
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["token"].startswith("dp_")
    assert body["agent_token"]["name"] == "research agent"
    assert body["agent_token"]["max_price"] == {"amount": 39, "currency": "usd"}
    assert body["agent_token"]["daily_limit"] == {"amount": 100, "currency": "usd"}
    assert body["agent_token"]["spent_today"] == {"amount": 0, "currency": "usd"}
    secret = body["token"]
    assert secret not in str(client.get("/api/v1/agent-tokens", headers=own).get_json())

    fund(reader, 500)
    article = make_article(price=39)
    assert buy(client, secret, article.slug).status_code == 201
    listed = client.get("/api/v1/agent-tokens", headers=own).get_json()["agent_tokens"]
    assert [t["spent_today"] for t in listed] == [{"amount": 39, "currency": "usd"}]

    revoked = client.delete(f"/api/v1/agent-tokens/{listed[0]['id']}", headers=own)
    assert revoked.status_code == 200
    assert revoked.get_json()["agent_token"]["revoked_at"] is not None
    assert client.get("/api/v1/articles", headers=bearer(secret)).status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (budget(max_price=-1), "max_price"),
        (budget(daily_limit=-5), "daily_limit"),
        (budget(currency="eur"), "max_price"),
        (budget(currency="xyz"), "max_price"),
        ({**budget(), "max_price": {"amount": "39", "currency": "usd"}}, "max_price"),
        ({**budget(), "max_price": {"amount": 3.9, "currency": "usd"}}, "max_price"),
        ({**budget(), "name": "   "}, "name"),
        ({k: v for k, v in budget().items() if k != "daily_limit"}, "daily_limit"),
    ],
)
def test_bad_budgets_are_422_and_create_nothing(
    client: FlaskClient, body: dict[str, Any], field: str
) -> None:
    own = bearer(make_token(make_user()))
    before = db.session.scalar(select(func.count(ApiToken.id)))
    response = client.post("/api/v1/agent-tokens", json=body, headers=own)
    assert response.status_code == 422, response.get_json()
    assert field in response.get_json()["error"]["fields"]
    assert db.session.scalar(select(func.count(ApiToken.id))) == before


def test_an_agent_token_cannot_make_agent_tokens_or_see_the_wallet(client: FlaskClient) -> None:
    reader = make_user()
    agent = bearer(make_agent_token(reader))
    for method, path in [
        ("POST", "/api/v1/agent-tokens"),
        ("GET", "/api/v1/agent-tokens"),
        ("GET", "/api/v1/wallet"),
        ("GET", "/api/v1/tokens"),
        ("POST", "/api/v1/tokens"),
        ("GET", "/api/v1/me"),
    ]:
        response = client.open(path, method=method, json=budget(), headers=agent)
        assert response.status_code == 403, (path, response.status_code)
        assert response.get_json()["error"]["code"] == "agent_not_allowed"


def test_over_max_price_is_402_budget_exceeded_and_changes_nothing(client: FlaskClient) -> None:
    reader = make_user()
    fund(reader, 500)
    token = make_agent_token(reader, max_price=38, daily_limit=500)
    article = make_article(price=39)
    before = entries()
    response = buy(client, token, article.slug)
    assert response.status_code == 402
    body = response.get_json()
    assert body["error"]["code"] == "budget_exceeded"
    assert body["budget"]["max_price"] == {"amount": 38, "currency": "usd"}
    assert body["offer"]["price"] == {"amount": 39, "currency": "usd"}
    assert "PAYMENT-REQUIRED" in response.headers
    assert entries() == before and purchases(reader.id) == 0


def test_the_daily_limit_counts_todays_purchases_through_the_token(client: FlaskClient) -> None:
    reader = make_user()
    fund(reader, 1000)
    token = make_agent_token(reader, max_price=100, daily_limit=100)
    first, second, third = (make_article(price=39) for _ in range(3))
    assert buy(client, token, first.slug).status_code == 201
    assert buy(client, token, second.slug).status_code == 201  # 78 of 100
    refused = buy(client, token, third.slug)
    assert refused.status_code == 402
    assert refused.get_json()["error"]["code"] == "budget_exceeded"
    assert refused.get_json()["budget"]["spent_today"]["amount"] == 78
    # Yesterday's spending does not count; the reader's own purchases do not either.
    for purchase in db.session.scalars(select(Purchase).where(Purchase.user_id == reader.id)):
        purchase.created_at -= timedelta(days=1)
    db.session.commit()
    assert buy(client, token, third.slug).status_code == 201


def test_another_currency_than_the_budget_is_refused(client: FlaskClient) -> None:
    reader = make_user()
    fund(reader, 500, "eur")
    token = make_agent_token(reader, max_price=1000, daily_limit=1000)
    article = make_article(price=39, currency="eur")
    response = buy(client, token, article.slug)
    assert response.status_code == 402
    assert response.get_json()["error"]["code"] == "budget_exceeded"


def test_a_repeat_through_the_token_is_free_even_when_the_budget_is_spent(
    client: FlaskClient,
) -> None:
    reader = make_user()
    fund(reader, 500)
    token = make_agent_token(reader, max_price=39, daily_limit=39)
    article = make_article(price=39)
    assert buy(client, token, article.slug).status_code == 201
    again = client.post(
        f"/api/v1/articles/{article.slug}/purchase?include=article", headers=bearer(token)
    )
    assert again.status_code == 200
    assert again.get_json()["article"]["body_html"]
    assert purchases(reader.id) == 1


def test_buy_and_read_in_one_request(client: FlaskClient) -> None:
    reader = make_user()
    fund(reader, 500)
    token = make_agent_token(reader)
    article = make_article(price=39, body="Only for buyers: the whole story.")
    price = {"amount": 39, "currency": "usd"}
    url = f"/api/v1/articles/{article.slug}/purchase?include=article"
    first = client.post(url, json={"expected_price": price}, headers=bearer(token))
    assert first.status_code == 201, first.get_json()
    body = first.get_json()
    assert body["wallet"]["balance"] == {"amount": 461, "currency": "usd"}
    read = client.get(f"/api/v1/articles/{article.slug}", headers=bearer(token)).get_json()
    assert body["article"] == read
    assert "whole story" in body["article"]["body_html"]
    repeat = client.post(url, json={"expected_price": price}, headers=bearer(token))
    assert repeat.status_code == 200
    assert repeat.get_json()["article"] == read
    assert repeat.get_json()["wallet"]["balance"]["amount"] == 461
    assert purchases(reader.id) == 1
    plain = client.post(f"/api/v1/articles/{article.slug}/purchase", headers=bearer(token))
    assert "article" not in plain.get_json()


@pytest.mark.parametrize(
    ("expected", "status", "code"),
    [
        ({"amount": 29, "currency": "usd"}, 409, "price_changed"),
        ({"amount": 39, "currency": "eur"}, 409, "price_changed"),
        ({"amount": -39, "currency": "usd"}, 422, "invalid_fields"),
        ({"amount": 39, "currency": "xyz"}, 422, "invalid_fields"),
        ({"amount": "39", "currency": "usd"}, 422, "invalid_fields"),
        ("39", 422, "invalid_fields"),
    ],
)
def test_an_expected_price_that_is_not_the_price_debits_nothing(
    client: FlaskClient, expected: Any, status: int, code: str
) -> None:
    reader = make_user()
    fund(reader, 500)
    article = make_article(price=39)
    before = entries()
    for token in (make_token(reader), make_agent_token(reader)):
        response = buy(client, token, article.slug, expected_price=expected)
        assert response.status_code == status, response.get_json()
        assert response.get_json()["error"]["code"] == code
        if status == 409:
            assert response.get_json()["offer"]["price"] == {"amount": 39, "currency": "usd"}
    assert entries() == before and purchases(reader.id) == 0


def test_unknown_include_is_422(client: FlaskClient) -> None:
    reader = make_user()
    fund(reader, 500)
    article = make_article(price=39)
    response = client.post(
        f"/api/v1/articles/{article.slug}/purchase?include=wallet",
        headers=bearer(make_token(reader)),
    )
    assert response.status_code == 422
    assert purchases(reader.id) == 0


def test_another_readers_agent_token_buys_for_its_own_reader_only(client: FlaskClient) -> None:
    reader, other = make_user(), make_user()
    fund(reader, 500)
    other_agent = make_agent_token(other)
    article = make_article(price=39)
    response = buy(client, other_agent, article.slug)
    assert response.status_code == 402  # the other reader's empty wallet
    assert response.get_json()["error"]["code"] == "insufficient_funds"
    assert purchases(reader.id) == 0
