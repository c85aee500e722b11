"""Buying articles from the wallet, and refunding purchases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value

from dispatch_pay.accounts.spending_cap import check_daily_cap
from dispatch_pay.catalog.gate import Access, read_access
from dispatch_pay.errors import DomainError, invalid_fields
from dispatch_pay.money import Money
from dispatch_pay.payments.limits import topup_offer
from dispatch_pay.payments.receipts import queue_purchase_refund_note
from dispatch_pay.wallet.budgets import check_agent_budget, lock_agent_token
from dispatch_pay.wallet.ledger import locked_wallet, post_entry
from models import (
    ENTRY_PURCHASE,
    ENTRY_REFUND,
    PURCHASE_ACTIVE,
    PURCHASE_REFUNDED,
    ApiToken,
    Article,
    Entitlement,
    Purchase,
    RefundedBy,
    User,
    Wallet,
    db,
    utcnow,
)
from models.base import conflict_insert

READER_REFUND_WINDOW = timedelta(hours=24)
READER_REFUNDS_PER_PERIOD = 3
READER_REFUND_PERIOD = timedelta(days=30)


@dataclass(frozen=True)
class PurchaseResult:
    purchase: Purchase
    wallet: Wallet
    created: bool


_ACTIVE_PURCHASE = select(Purchase).where(
    Purchase.user_id == bindparam("user_id"),
    Purchase.article_id == bindparam("article_id"),
    Purchase.status == PURCHASE_ACTIVE,
)


def active_purchase(user_id: int, article_id: int) -> Purchase | None:
    return db.session.scalar(_ACTIVE_PURCHASE, {"user_id": user_id, "article_id": article_id})


def purchase_article(
    user: User,
    article: Article,
    *,
    agent_token: ApiToken | None = None,
    expected_price: Money | None = None,
) -> PurchaseResult:
    """Debit the current price and entitle the reader, in one transaction, exactly once.

    Every way of buying (the API, MCP, the paywall's button, a top-up made to buy) comes
    here, so the rules hold for all of them. `expected_price` is the price the buyer was
    shown (409 `price_changed` if it moved); an `agent_token` buys within its budget
    (402 `budget_exceeded`).
    """
    if user.is_publisher:
        raise DomainError("forbidden", "Publishers read everything already.", status=403)
    if read_access(None, article) is Access.HIDDEN:
        # Off sale (withdrawn, unpublished): 404, except to a buyer, who keeps what they
        # bought and gets it back as from any purchase made again.
        bought = active_purchase(user.id, article.id)
        if bought is None:
            raise DomainError("not_found", "No such article.", status=404)
        return PurchaseResult(bought, locked_wallet(user.id, bought.currency), created=False)
    if article.is_free:
        raise DomainError("article_free", "This dispatch is free to read.", status=409)
    # Lock order: the agent token, then the wallet (nothing locks them the other way round).
    token = lock_agent_token(agent_token.id) if agent_token is not None else None
    wallet = locked_wallet(user.id, article.price_currency)
    existing = active_purchase(user.id, article.id)
    if existing is not None:
        return PurchaseResult(existing, wallet, created=False)
    check_price(article, expected_price)
    if wallet.is_frozen:
        raise wallet_frozen()
    if token is not None:
        check_agent_budget(token, article)
    price = article.price_amount
    check_daily_cap(user.id, wallet, price)
    if wallet.balance < price:
        shortfall = price - wallet.balance
        raise DomainError(
            "insufficient_funds",
            "Your wallet does not cover this dispatch; top it up first.",
            status=402,
            extra={
                "shortfall": {"amount": shortfall, "currency": wallet.currency},
                "wallet": {"balance": {"amount": wallet.balance, "currency": wallet.currency}},
                "topup": topup_offer(wallet.currency, shortfall),
            },
        )
    purchase = Purchase(
        user_id=user.id,
        article_id=article.id,
        wallet_id=wallet.id,
        amount=price,
        currency=wallet.currency,
        status=PURCHASE_ACTIVE,
        agent_token_id=token.id if token is not None else None,
    )
    db.session.add(purchase)
    db.session.flush()
    post_entry(wallet, ENTRY_PURCHASE, -price, f"purchase:{purchase.id}", purchase_id=purchase.id)
    _entitle(user.id, article.id, purchase.id)
    set_committed_value(purchase, "article", article)  # for the answer, without a query
    return PurchaseResult(purchase, wallet, created=True)


def check_price(article: Article, expected_price: Money | None) -> None:
    """The price the buyer was shown is still the price (if they said which they saw)."""
    if expected_price is not None and expected_price != Money(
        article.price_amount, article.price_currency
    ):
        raise price_changed(article)


def price_changed(article: Article) -> DomainError:
    return DomainError(
        "price_changed",
        "The price changed since you saw it; nothing was charged. Check the new offer.",
        status=409,
        extra={"price": {"amount": article.price_amount, "currency": article.price_currency}},
    )


def article_to_buy(slug: str | None, currency: str) -> Article | None:
    """The article a top-up is made to buy (`buy`), checked before anything is recorded."""
    if slug is None:
        return None
    article = db.session.scalar(select(Article).where(Article.slug == slug))
    if article is None or read_access(None, article) is Access.HIDDEN:
        raise invalid_fields({"buy": ["No such published article."]})
    if article.price_currency != currency:
        raise invalid_fields({"buy": [f"This article is priced in {article.price_currency}."]})
    return article


def _entitle(user_id: int, article_id: int, purchase_id: int) -> None:
    """Entitle the reader, or make their grant backed by this purchase: one upsert on the
    unique (user_id, article_id), PostgreSQL and SQLite alike."""
    insert = conflict_insert(Entitlement)
    statement = insert.values(
        user_id=user_id,
        article_id=article_id,
        source="purchase",
        purchase_id=purchase_id,
        created_at=utcnow(),
    )
    db.session.execute(
        statement.on_conflict_do_update(
            index_elements=[insert.table.c.user_id, insert.table.c.article_id],
            set_={"source": "purchase", "purchase_id": purchase_id},
        )
    )
    # A grant loaded earlier in this transaction must not keep its old values.
    for loaded in list(db.session.identity_map.values()):
        state = vars(loaded)  # what is loaded, without loading anything expired
        if isinstance(loaded, Entitlement) and (
            state.get("user_id"),
            state.get("article_id"),
        ) == (user_id, article_id):
            db.session.expire(loaded)


def wallet_frozen() -> DomainError:
    return DomainError(
        "wallet_frozen",
        "Your wallet is frozen while a payment dispute is open or its balance is negative.",
        status=409,
    )


def refund_purchase(actor: User, purchase_id: int) -> PurchaseResult:
    """Credit the wallet and revoke the entitlement. Buyers within limits; publishers always."""
    purchase = db.session.get(Purchase, purchase_id)
    if purchase is None or (not actor.is_publisher and purchase.user_id != actor.id):
        raise DomainError("not_found", "No such purchase.", status=404)
    # The refund limit counts the buyer's refunds in every currency, and each currency
    # has its own wallet: the buyer's row is the lock that serialises them (taken before
    # any wallet's, the order every path that takes both follows).
    lock_reader(purchase.user_id)
    wallet = locked_wallet(purchase.user_id, purchase.currency)
    db.session.refresh(purchase)
    if purchase.status == PURCHASE_REFUNDED:
        return PurchaseResult(purchase, wallet, created=False)
    by_publisher = actor.is_publisher and purchase.user_id != actor.id
    if not by_publisher:
        _check_reader_may_refund(purchase)
    reverse_purchase(purchase, wallet, RefundedBy.PUBLISHER if by_publisher else RefundedBy.READER)
    return PurchaseResult(purchase, wallet, created=True)


def reverse_purchase(purchase: Purchase, wallet: Wallet, refunded_by: RefundedBy) -> None:
    """Credit the price back and revoke the entitlement; the reader's row and the wallet
    are locked by the caller, and the purchase is active."""
    purchase.status = PURCHASE_REFUNDED
    purchase.refunded_at = utcnow()
    purchase.refunded_by = refunded_by
    post_entry(
        wallet, ENTRY_REFUND, purchase.amount, f"purchase:{purchase.id}", purchase_id=purchase.id
    )
    article = db.session.get(Article, purchase.article_id)
    queue_purchase_refund_note(
        purchase.user_id, article.title if article else "", purchase.amount, purchase.currency
    )
    db.session.execute(
        delete(Entitlement).where(
            Entitlement.user_id == purchase.user_id,
            Entitlement.article_id == purchase.article_id,
        )
    )
    db.session.flush()


def lock_reader(user_id: int) -> None:
    """Lock the reader's row for this transaction (for limits that span their wallets).

    FOR NO KEY UPDATE: it serialises the holders of this lock, but not the rows that only
    refer to the reader (a purchase's foreign key takes FOR KEY SHARE after locking the
    wallet; FOR UPDATE here would wait for it the other way round: a deadlock)."""
    db.session.execute(select(User.id).where(User.id == user_id).with_for_update(key_share=True))


def _check_reader_may_refund(purchase: Purchase) -> None:
    now = utcnow()
    if now - purchase.created_at > READER_REFUND_WINDOW:
        raise DomainError(
            "refund_window_closed",
            "Purchases can be refunded within 24 hours of buying.",
            status=409,
        )
    recent = db.session.scalar(
        select(func.count(Purchase.id)).where(
            Purchase.user_id == purchase.user_id,
            Purchase.refunded_by == RefundedBy.READER,
            Purchase.refunded_at >= now - READER_REFUND_PERIOD,
        )
    )
    if (recent or 0) >= READER_REFUNDS_PER_PERIOD:
        raise DomainError(
            "refund_limit_reached",
            "You can refund at most 3 purchases in 30 days.",
            status=409,
        )


def purchases_of(user: User, limit: int = 100) -> list[Purchase]:
    return list(
        db.session.scalars(
            select(Purchase)
            .options(joinedload(Purchase.article))
            .where(Purchase.user_id == user.id)
            .order_by(Purchase.id.desc())
            .limit(limit)
        )
    )
