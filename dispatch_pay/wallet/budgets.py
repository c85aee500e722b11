"""Agent budgets: the most one article may cost, and the most a token spends per UTC day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select

from dispatch_pay.errors import DomainError
from dispatch_pay.money import format_money
from models import PURCHASE_ACTIVE, ApiToken, Article, Purchase, db, utcnow


def start_of_utc_day(now: datetime | None = None) -> datetime:
    now = (now or utcnow()).astimezone(UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def spent_today(token_ids: list[int]) -> dict[int, int]:
    """What each token spent since midnight UTC (refunded purchases gave the money back)."""
    if not token_ids:
        return {}
    rows = db.session.execute(
        select(Purchase.agent_token_id, func.coalesce(func.sum(Purchase.amount), 0))
        .where(
            Purchase.agent_token_id.in_(token_ids),
            Purchase.created_at >= start_of_utc_day(),
            Purchase.status == PURCHASE_ACTIVE,
        )
        .group_by(Purchase.agent_token_id)
    ).all()
    found = {int(token_id or 0): int(total) for token_id, total in rows}
    return {token_id: found.get(token_id, 0) for token_id in token_ids}


def lock_agent_token(token_id: int) -> ApiToken:
    """The token row, locked until the transaction ends: its purchases run one at a time.

    Two parallel purchases through one token would otherwise both read the same
    `spent_today` and together pass the daily limit.
    """
    token = db.session.scalar(
        select(ApiToken)
        .where(ApiToken.id == token_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if token is None or token.revoked_at is not None:
        raise DomainError("invalid_token", "The API token is invalid or revoked.", status=401)
    return token


def check_agent_budget(token: ApiToken, article: Article) -> None:
    """402 `budget_exceeded` unless the token's budget covers this article now.

    The caller holds the token's row lock (lock_agent_token), so the sum read here
    cannot move before the purchase is written.
    """
    assert token.max_price_amount is not None and token.daily_limit_amount is not None
    currency = token.budget_currency
    spent = spent_today([token.id])[token.id]
    price = article.price_amount
    if article.price_currency != currency:
        reason = (
            f"This article is priced in {article.price_currency.upper()}; "
            f"the token's budget is in {str(currency).upper()}."
        )
    elif price > token.max_price_amount:
        reason = (
            f"This article costs {format_money(price, article.price_currency)}, more than the "
            f"token's maximum of {format_money(token.max_price_amount, str(currency))} per article."
        )
    elif spent + price > token.daily_limit_amount:
        reason = (
            f"Buying it would take today's spending through this token to "
            f"{format_money(spent + price, str(currency))}, over its daily limit of "
            f"{format_money(token.daily_limit_amount, str(currency))}."
        )
    else:
        return
    raise DomainError(
        "budget_exceeded",
        reason,
        status=402,
        extra={"budget": budget_view(token, spent)},
    )


def budget_view(token: ApiToken, spent: int) -> dict[str, object]:
    currency = str(token.budget_currency)
    return {
        "max_price": {"amount": token.max_price_amount, "currency": currency},
        "daily_limit": {"amount": token.daily_limit_amount, "currency": currency},
        "spent_today": {"amount": spent, "currency": currency},
    }


@dataclass(frozen=True)
class AgentPurchase:
    purchase: Purchase
    article: Article
    agent_name: str


def agent_purchases(user_id: int, limit: int = 50) -> list[AgentPurchase]:
    """What the reader's agents bought, newest first (for the wallet page)."""
    rows = db.session.execute(
        select(Purchase, Article, ApiToken.name)
        .join(Article, Article.id == Purchase.article_id)
        .join(ApiToken, ApiToken.id == Purchase.agent_token_id)
        .where(Purchase.user_id == user_id)
        .order_by(Purchase.id.desc())
        .limit(limit)
    ).all()
    return [AgentPurchase(purchase, article, name) for purchase, article, name in rows]
