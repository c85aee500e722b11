from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from dispatch_pay.money import CURRENCIES, MoneySchema
from models import Article, LedgerEntry, Purchase, Wallet


class TopUpRequestSchema(Schema):
    amount = fields.Integer(required=True, strict=True)
    currency = fields.String(
        load_default="usd",
        validate=validate.OneOf(sorted(CURRENCIES), error="Supported currencies: {choices}."),
    )
    payment_method = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(min=3, max=255)
    )
    buy = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=120))


class WalletQuerySchema(Schema):
    currency = fields.String(
        load_default="usd",
        validate=validate.OneOf(sorted(CURRENCIES), error="Supported currencies: {choices}."),
    )


def money(amount: int, currency: str) -> dict[str, Any]:
    return {"amount": amount, "currency": currency}


class EntryArticleSchema(Schema):
    slug = fields.String()
    title = fields.String()


class EntrySchema(Schema):
    id = fields.Integer()
    kind = fields.String()
    amount = fields.Nested(MoneySchema)
    created_at = fields.String()
    # The dispatch a purchase or its refund was for; absent for other entries.
    article = fields.Nested(EntryArticleSchema)


class WalletSchema(Schema):
    balance = fields.Nested(MoneySchema)
    status = fields.String()
    entries = fields.List(fields.Nested(EntrySchema))


def wallet_view(
    wallet: Wallet | None,
    currency: str,
    entries: list[LedgerEntry],
    articles: dict[int, Article] | None = None,
) -> dict[str, Any]:
    """The wallet; `articles` maps purchase ids to what they bought (see purchased_articles)."""
    balance = wallet.balance if wallet else 0
    return WalletSchema().dump(
        {
            "balance": money(balance, currency),
            "status": wallet.status if wallet else "active",
            "entries": [_entry(e, currency, articles or {}) for e in entries],
        }
    )


def _entry(entry: LedgerEntry, currency: str, articles: dict[int, Article]) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": entry.id,
        "kind": entry.kind,
        "amount": money(entry.amount, currency),
        "created_at": entry.created_at.isoformat(),
    }
    article = articles.get(entry.purchase_id) if entry.purchase_id else None
    if article is not None:
        view["article"] = {"slug": article.slug, "title": article.title}
    return view


class PurchaseSchema(Schema):
    id = fields.Integer()
    article = fields.Method("get_article")
    price = fields.Method("get_price")
    status = fields.String()
    created_at = fields.DateTime()
    refunded_at = fields.DateTime(allow_none=True)

    def get_article(self, purchase: Purchase) -> str:
        from models import Article, db

        article = db.session.get(Article, purchase.article_id)
        return article.slug if article else ""

    def get_price(self, purchase: Purchase) -> dict[str, Any]:
        return money(purchase.amount, purchase.currency)


class TopUpSchema(Schema):
    id = fields.String(attribute="payment_intent_id")
    status = fields.String()
    amount = fields.Method("get_amount")
    client_secret = fields.String(allow_none=True)
    buy = fields.Method("get_buy")

    def get_amount(self, topup: Any) -> dict[str, Any]:
        return money(topup.amount, topup.currency)

    def get_buy(self, topup: Any) -> str | None:
        from models import Article, db

        if topup.buy_article_id is None:
            return None
        article = db.session.get(Article, topup.buy_article_id)
        return article.slug if article else None
