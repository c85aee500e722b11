"""Agent tokens as their reader manages them: create within the site's currency, list, revoke."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dispatch_pay.accounts import services as accounts
from dispatch_pay.errors import invalid_fields
from dispatch_pay.money import Money
from dispatch_pay.publisher.services import default_price
from dispatch_pay.wallet.budgets import spent_today
from models import ApiToken, TokenKind, User


def site_currency() -> str:
    """Budgets are kept in the currency the publication sells in (its default price's)."""
    return str(default_price()["currency"])


@dataclass(frozen=True)
class AgentTokenView:
    id: int
    name: str
    prefix: str
    max_price: dict[str, Any]
    daily_limit: dict[str, Any]
    spent_today: dict[str, Any]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def create_agent_token(user: User, data: dict[str, Any]) -> tuple[str, AgentTokenView]:
    """A new agent token (the secret is returned once) with the reader's limits."""
    currency = site_currency()
    wrong = {
        field: {"currency": [f"Budgets are in {currency}, the site's currency."]}
        for field in ("max_price", "daily_limit")
        if data[field]["currency"] != currency
    }
    if wrong:
        raise invalid_fields(wrong)
    issued = accounts.issue_agent_token(
        user,
        data["name"].strip(),
        Money(data["max_price"]["amount"], currency),
        Money(data["daily_limit"]["amount"], currency),
    )
    return issued.secret, views([issued.token])[0]


def agent_tokens(user: User) -> list[AgentTokenView]:
    return views(accounts.list_tokens(user, TokenKind.AGENT))


def revoke_agent_token(user: User, token_id: int) -> AgentTokenView:
    return views([accounts.revoke_token(user, token_id, TokenKind.AGENT)])[0]


def views(tokens: list[ApiToken]) -> list[AgentTokenView]:
    spent = spent_today([t.id for t in tokens])
    return [view(token, spent[token.id]) for token in tokens]


def view(token: ApiToken, spent: int) -> AgentTokenView:
    currency = str(token.budget_currency)
    return AgentTokenView(
        id=token.id,
        name=token.name,
        prefix=token.prefix,
        max_price={"amount": token.max_price_amount, "currency": currency},
        daily_limit={"amount": token.daily_limit_amount, "currency": currency},
        spent_today={"amount": spent, "currency": currency},
        created_at=token.created_at,
        last_used_at=token.last_used_at,
        revoked_at=token.revoked_at,
    )
