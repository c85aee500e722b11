"""The plain wallet purchase made before Flask on PostgreSQL (wallet/quick_purchase.py):
the same answer, the same rows and the same rules as the view's; everything that is not
the plain case is the view's to answer. On SQLite the view answers every request, and
these tests hold all the same."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from dispatch_pay.wallet.ledger import find_wallet
from models import (
    ROLE_PUBLISHER,
    ApiToken,
    Entitlement,
    LedgerEntry,
    Purchase,
    TokenKind,
    User,
    db,
    utcnow,
)
from tests.support.factories import bearer, make_agent_token, make_article, make_token, make_user
from tests.support.wallet import fund
from tests.support.web import answered_before_flask

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00")


def quick(caplog: pytest.LogCaptureFixture, response: TestResponse) -> bool:
    """`response` was made before Flask."""
    return answered_before_flask(caplog, response, "quick-purchase")


def buy(client: FlaskClient, token: str, slug: str, **kwargs: Any) -> TestResponse:
    return client.post(f"/api/v1/articles/{slug}/purchase", headers=bearer(token), **kwargs)


def balance(user: User) -> int:
    db.session.expire_all()
    wallet = find_wallet(user.id, "usd")
    assert wallet is not None
    return wallet.balance


def shape(body: Any) -> Any:
    """The answer with its values' kinds in place of the values that differ per purchase."""
    if isinstance(body, dict):
        return {k: shape(v) for k, v in body.items()}
    if isinstance(body, str) and ISO.fullmatch(body):
        return "<time>"
    return type(body).__name__ if isinstance(body, int) else body


@pytest.fixture
def reader() -> tuple[User, str]:
    user = make_user()
    fund(user, 1000)
    return user, make_token(user)


def learned(client: FlaskClient, token: str) -> TestResponse:
    """A first plain purchase: the view answers it (and the quick path learns its headers)."""
    response = buy(client, token, make_article(price=39).slug)
    assert response.status_code == 201, response.json
    return response


def test_a_plain_purchase_is_the_views_answer_and_the_same_rows(
    client: FlaskClient, reader: tuple[User, str], logs: pytest.LogCaptureFixture, postgres: bool
) -> None:
    user, token = reader
    first = learned(client, token)
    article = make_article(price=39)
    second = buy(client, token, article.slug)
    assert second.status_code == 201, second.json
    assert quick(logs, first) is False
    assert quick(logs, second) is postgres
    body = second.json
    assert body is not None and first.json is not None
    assert shape({**body["purchase"], "article": ""}) == shape(
        {**first.json["purchase"], "article": ""}
    )
    assert list(body) == list(first.json) and list(body["purchase"]) == list(first.json["purchase"])
    assert body["purchase"]["article"] == article.slug
    assert body["purchase"]["price"] == {"amount": 39, "currency": "usd"}
    assert body["wallet"]["balance"] == {"amount": 1000 - 78, "currency": "usd"}
    same = {k: v for k, v in first.headers.items() if k not in ("X-Request-ID", "Content-Length")}
    assert same == {
        k: v for k, v in second.headers.items() if k not in ("X-Request-ID", "Content-Length")
    }
    assert len(second.data) == int(second.headers["Content-Length"])
    # The rows the service writes: the purchase, its ledger entry, the entitlement.
    purchase = db.session.get(Purchase, body["purchase"]["id"])
    assert purchase is not None and purchase.status == "active" and purchase.amount == 39
    assert purchase.agent_token_id is None and purchase.article_id == article.id
    entry = db.session.scalar(select(LedgerEntry).where(LedgerEntry.purchase_id == purchase.id))
    assert entry is not None and entry.amount == -39
    assert entry.reference == f"purchase:{purchase.id}" and entry.kind == "purchase"
    owned = db.session.scalar(
        select(Entitlement).where(
            Entitlement.user_id == user.id, Entitlement.article_id == article.id
        )
    )
    assert owned is not None and owned.source == "purchase" and owned.purchase_id == purchase.id
    assert balance(user) == 1000 - 78
    # Bought again: the existing purchase (200), nothing debited.
    again = buy(client, token, article.slug)
    assert again.status_code == 200 and again.json["purchase"]["id"] == purchase.id
    assert quick(logs, again) is False
    assert balance(user) == 1000 - 78


def test_a_granted_article_bought_gets_its_purchase_behind_the_grant(
    client: FlaskClient, reader: tuple[User, str]
) -> None:
    from tests.support.factories import grant

    user, token = reader
    learned(client, token)
    article = make_article(price=39)
    grant(user, article)
    response = buy(client, token, article.slug)
    assert response.status_code == 201
    owned = db.session.scalars(
        select(Entitlement).where(
            Entitlement.user_id == user.id, Entitlement.article_id == article.id
        )
    ).all()
    assert [(e.source, e.purchase_id) for e in owned] == [
        ("purchase", response.json["purchase"]["id"])
    ]


def test_what_is_not_the_plain_case_is_the_views_to_answer(
    client: FlaskClient, reader: tuple[User, str], logs: pytest.LogCaptureFixture
) -> None:
    user, token = reader
    learned(client, token)
    # A wallet that does not cover the price: the 402 with its offer.
    dear = make_article(price=5000)
    short = buy(client, token, dear.slug)
    assert short.status_code == 402 and short.json["error"]["code"] == "insufficient_funds"
    assert "offer" in short.json["error"] or "offer" in short.json
    assert not quick(logs, short)
    # A free article, an unknown one, a body the view must read.
    assert buy(client, token, make_article(price=0).slug).status_code == 409
    assert buy(client, token, "no-such-dispatch").status_code == 404
    cheap = make_article(price=39)
    wrong = buy(
        client, token, cheap.slug, json={"expected_price": {"amount": 1, "currency": "usd"}}
    )
    assert wrong.status_code == 409 and wrong.json["error"]["code"] == "price_changed"
    bad = buy(client, token, cheap.slug, data=b"[]", content_type="application/json")
    assert bad.status_code == 400 and not quick(logs, bad)
    # A revoked token, a publisher's token.
    revoked = make_token(user)
    db.session.scalars(select(ApiToken).where(ApiToken.user_id == user.id)).all()[
        -1
    ].revoked_at = utcnow()
    db.session.commit()
    assert buy(client, revoked, cheap.slug).status_code == 401
    publisher = make_user(role=ROLE_PUBLISHER)
    assert buy(client, make_token(publisher), cheap.slug).status_code == 403
    assert balance(user) == 1000 - 39
    assert db.session.scalar(select(func.count()).select_from(Purchase)) == 1


def test_a_cap_an_agent_a_frozen_wallet_and_a_due_touch_keep_their_rules(
    client: FlaskClient, reader: tuple[User, str], logs: pytest.LogCaptureFixture
) -> None:
    user, token = reader
    learned(client, token)
    # An agent token within a budget of 50 a day: its budget holds.
    agent = make_agent_token(user, max_price=100, daily_limit=50)
    assert buy(client, agent, make_article(price=39).slug).status_code == 201
    over = buy(client, agent, make_article(price=39).slug)
    assert over.status_code == 402 and over.json["error"]["code"] == "budget_exceeded"
    # A daily cap of 80 (39 + 39 spent today): the next one is refused.
    capped = client.put(
        "/api/v1/wallet/settings",
        headers=bearer(token),
        json={"daily_cap": {"amount": 80, "currency": "usd"}},
    )
    assert capped.status_code == 200, capped.json
    refused = buy(client, token, make_article(price=39).slug)
    assert refused.status_code == 402 and refused.json["error"]["code"] == "spending_cap_reached"
    assert not quick(logs, refused)
    client.put("/api/v1/wallet/settings", headers=bearer(token), json={"daily_cap": None})
    # A frozen wallet (an open dispute).
    wallet = find_wallet(user.id, "usd")
    assert wallet is not None
    wallet.open_disputes = 1
    db.session.commit()
    frozen = buy(client, token, make_article(price=39).slug)
    assert frozen.status_code == 409 and frozen.json["error"]["code"] == "wallet_frozen"
    wallet.open_disputes = 0
    db.session.commit()
    # A token whose last use is due to be recorded: the view records it.
    # (The reader's own token: the agent's is the user's too, and rows come in no order.)
    stored = db.session.scalar(
        select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.kind == TokenKind.READER)
    )
    assert stored is not None
    stored.last_used_at = utcnow() - timedelta(days=1)
    db.session.commit()
    touched = buy(client, token, make_article(price=39).slug)
    assert touched.status_code == 201 and not quick(logs, touched)
    db.session.expire_all()
    assert utcnow() - stored.last_used_at < timedelta(minutes=1)
    assert balance(user) == 1000 - 3 * 39
