"""Build test data through the same services the app uses."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from dispatch_pay.accounts.services import issue_agent_token, issue_token, register_user
from dispatch_pay.catalog.services import grant_entitlement
from dispatch_pay.money import Money
from dispatch_pay.publisher.services import create_article, publish
from dispatch_pay.verification.services import attach_report
from models import ROLE_PUBLISHER, Article, User, db

_seq = itertools.count(1)
PASSWORD = "correct horse battery"


def make_user(email: str | None = None, *, role: str = "reader", password: str = PASSWORD) -> User:
    user = register_user(email or f"reader{next(_seq)}@example.com", password)
    if role == ROLE_PUBLISHER:
        user.role = ROLE_PUBLISHER
    db.session.commit()
    return user


def reader_with_own_id(ids: Iterator[int]) -> User:
    """A committed reader whose id comes from `ids`, a range no other test uses: the
    localstripe of a run keeps every test's PaymentIntents (whose metadata name reader ids),
    and SQLite reuses the ids of rolled-back rows."""
    user = make_user()
    user.id = next(ids)
    db.session.commit()
    return user


def make_token(user: User) -> str:
    secret = issue_token(user, "test").secret
    db.session.commit()
    return secret


def make_agent_token(
    user: User, *, max_price: int = 1000, daily_limit: int = 5000, currency: str = "usd"
) -> str:
    """An agent token of `user` with a budget (minor units)."""
    secret = issue_agent_token(
        user, "agent", Money(max_price, currency), Money(daily_limit, currency)
    ).secret
    db.session.commit()
    return secret


def claims(*verdicts: str) -> list[dict[str, Any]]:
    return [
        {
            "claim": f"Claim number {i} is {verdict}.",
            "verdict": verdict,
            "sources": [{"url": f"https://source.example.org/{i}", "title": f"Source {i}"}],
            "note": f"note {i}",
        }
        for i, verdict in enumerate(verdicts, 1)
    ]


def make_article(
    *,
    title: str | None = None,
    teaser: str = "A teaser anyone may read.",
    body: str = "The full text, for paying readers only.",
    price: int = 39,
    currency: str = "usd",
    verdicts: tuple[str, ...] = ("supported", "weak", "unverified"),
    published: bool = True,
    author: User | None = None,
) -> Article:
    n = next(_seq)
    article = create_article(
        author,
        {
            "title": title or f"Dispatch number {n}",
            "teaser": teaser,
            "body": body,
            "price": {"amount": price, "currency": currency},
        },
    )
    if verdicts:
        attach_report(
            article,
            {
                "verifier": "test-verifier",
                "checked_at": datetime(2026, 11, 1, tzinfo=UTC),
                "claims": claims(*verdicts),
            },
        )
    if published:
        publish(article)
    db.session.commit()
    return article


def grant(user: User, article: Article) -> None:
    grant_entitlement(user, article)
    db.session.commit()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
