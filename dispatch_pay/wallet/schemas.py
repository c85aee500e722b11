from __future__ import annotations

from typing import Any

from marshmallow import (
    EXCLUDE,
    Schema,
    ValidationError,
    fields,
    pre_load,
    validate,
    validates_schema,
)

from dispatch_pay.api.openapi import ErrorSchema
from dispatch_pay.catalog.schemas import FullArticleSchema, OfferSchema
from dispatch_pay.money import CURRENCIES, DEFAULT_CURRENCY, MajorUnits, MoneySchema, money
from dispatch_pay.payments.limits import TOPUP_MAXIMUM
from models import Article, LedgerEntry, Purchase, TopUp, Wallet


class ExpectedPriceSchema(MoneySchema):
    amount = fields.Integer(
        required=True,
        strict=True,
        validate=validate.Range(min=0, max=2**31 - 1, error="Must be at least {min}."),
    )


class TopUpRequestSchema(Schema):
    # The range is for the OpenAPI document: the service checks the exact minimum of the
    # currency and says it in money ("between $0.50 and $100.00").
    amount = fields.Integer(
        required=True,
        strict=True,
        metadata={
            "minimum": min(int(c["stripe_minimum"]) for c in CURRENCIES.values()),
            "maximum": TOPUP_MAXIMUM,
            "description": "minor units; at least Stripe's minimum for the currency",
        },
    )
    currency = fields.String(
        load_default=DEFAULT_CURRENCY,
        validate=validate.OneOf(sorted(CURRENCIES), error="Supported currencies: {choices}."),
    )
    payment_method = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(min=3, max=255)
    )
    buy = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=120))
    expected_price = fields.Nested(
        ExpectedPriceSchema,
        load_default=None,
        metadata={"description": "with `buy`: the price the reader was shown (409 if it moved)"},
    )


class PurchaseRequestSchema(Schema):
    expected_price = fields.Nested(
        ExpectedPriceSchema,
        load_default=None,
        metadata={"description": "the price the buyer was shown; 409 `price_changed` if moved"},
    )


class BuyFormSchema(Schema):
    """The paywall's buy button: the price it showed (a form without one buys nothing)."""

    expected_amount = fields.Integer(required=True, strict=False)
    expected_currency = fields.String(required=True, validate=validate.OneOf(sorted(CURRENCIES)))


class PriceChangedSchema(ErrorSchema):
    """A 409 of a purchase; `price_changed` carries the article's current offer."""

    offer = fields.Nested(OfferSchema)
    price = fields.Nested(MoneySchema)


class PurchaseQuerySchema(Schema):
    include = fields.String(
        load_default=None,
        validate=validate.OneOf(["article"]),
        metadata={"description": "`article`: answer the full article too (buy and read)"},
    )


class IdempotencyHeaderSchema(Schema):
    """The optional Idempotency-Key header of a top-up (surrounding spaces ignored)."""

    idempotency_key = fields.String(
        data_key="Idempotency-Key",
        validate=validate.Length(min=1, max=255, error="Must be 1 to 255 characters."),
    )


class WalletQuerySchema(Schema):
    currency = fields.String(
        load_default=DEFAULT_CURRENCY,
        validate=validate.OneOf(sorted(CURRENCIES), error="Supported currencies: {choices}."),
    )


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
    article = fields.Method("get_article", metadata={"type": "string"})
    price = fields.Method("get_price", metadata={"schema": MoneySchema})
    status = fields.String()
    created_at = fields.DateTime()
    refunded_at = fields.DateTime(allow_none=True)

    def get_article(self, purchase: Purchase) -> str:
        # Loaded with the purchases (see purchases_of): a schema never queries.
        return purchase.article.slug

    def get_price(self, purchase: Purchase) -> dict[str, Any]:
        return money(purchase.amount, purchase.currency)


class TopUpSchema(Schema):
    id = fields.String(attribute="payment_intent_id")
    status = fields.String()
    amount = fields.Method("get_amount", metadata={"schema": MoneySchema})
    client_secret = fields.String(allow_none=True)
    buy = fields.Method("get_buy", metadata={"type": ["string", "null"]})

    def get_amount(self, topup: TopUp) -> dict[str, Any]:
        return money(topup.amount, topup.currency)

    def get_buy(self, topup: TopUp) -> str | None:
        return topup.buy_article.slug if topup.buy_article else None


class BalanceSchema(Schema):
    balance = fields.Nested(MoneySchema, required=True)


class TopUpOfferSchema(Schema):
    minimum = fields.Nested(MoneySchema, required=True)
    maximum = fields.Nested(MoneySchema, required=True)
    presets = fields.List(fields.Nested(MoneySchema), required=True)


class InsufficientFundsSchema(ErrorSchema):
    """402 for a purchase the wallet does not cover: what is missing, what to top up."""

    shortfall = fields.Nested(MoneySchema, required=True)
    wallet = fields.Nested(BalanceSchema, required=True)
    topup = fields.Nested(TopUpOfferSchema, required=True)


class PurchaseResultSchema(Schema):
    purchase = fields.Nested(PurchaseSchema, required=True)
    wallet = fields.Nested(BalanceSchema, required=True)
    article = fields.Nested(
        FullArticleSchema,
        metadata={"description": "with `?include=article`: the full article as GET answers it"},
    )


class PurchaseListSchema(Schema):
    purchases = fields.List(fields.Nested(PurchaseSchema), required=True)


class TopUpCreatedSchema(Schema):
    topup = fields.Nested(TopUpSchema, required=True)


class TopUpStatusSchema(TopUpCreatedSchema):
    purchased = fields.Boolean(
        required=True,
        allow_none=True,
        metadata={
            "description": "whether the article named by `buy` is now owned; "
            "null when the top-up buys nothing"
        },
    )


# The most a reader may cap a day's spending at (a guard against typos, not a rule): $10,000.
DAILY_CAP_MAXIMUM = 1_000_000


class SettingAmountSchema(MoneySchema):
    """An amount of a spending setting: not negative (the service checks the rest)."""

    amount = fields.Integer(
        required=True,
        strict=True,
        validate=validate.Range(
            min=0, max=DAILY_CAP_MAXIMUM, error="Must be between {min} and {max} minor units."
        ),
    )


class DailyCapSchema(SettingAmountSchema):
    """The daily spending cap: an amount of a spending setting, in the wallet's currency."""


class AutoTopUpInputSchema(Schema):
    below = fields.Nested(
        SettingAmountSchema,
        required=True,
        metadata={"description": "at least this much is left in the wallet after the purchase"},
    )
    amount = fields.Nested(
        SettingAmountSchema,
        required=True,
        metadata={"description": "charged to the saved card (at least Stripe's minimum)"},
    )
    monthly_limit = fields.Nested(
        SettingAmountSchema,
        required=True,
        metadata={"description": "auto top-ups per calendar month (UTC) stay within this"},
    )


class WalletSettingsInputSchema(Schema):
    """Only the fields sent change; `daily_cap: null` removes the cap, `auto_topup: null`
    switches auto top-up off."""

    daily_cap = fields.Nested(
        DailyCapSchema,
        allow_none=True,
        metadata={"description": "spending on purchases per UTC day in this currency"},
    )
    auto_topup = fields.Nested(
        AutoTopUpInputSchema,
        allow_none=True,
        metadata={"description": "when a purchase lacks funds, charge the saved card off-session"},
    )

    @validates_schema
    def something_to_set(self, data: dict[str, Any], **_: object) -> None:
        if not data:
            raise ValidationError("Send at least one setting, e.g. daily_cap.", "daily_cap")


class AutoTopUpSchema(Schema):
    below = fields.Nested(MoneySchema)
    amount = fields.Nested(MoneySchema)
    monthly_limit = fields.Nested(MoneySchema)
    topped_up_this_month = fields.Nested(
        MoneySchema, metadata={"description": "auto top-ups this month that charged the card"}
    )
    active = fields.Boolean(metadata={"description": "false once a decline switched it off"})
    disabled_reason = fields.String(allow_none=True)


class WalletSettingsSchema(Schema):
    daily_cap = fields.Nested(MoneySchema, allow_none=True)
    spent_today = fields.Nested(
        MoneySchema,
        allow_none=True,
        metadata={"description": "purchases since midnight UTC, in the cap's currency"},
    )
    auto_topup = fields.Nested(AutoTopUpSchema, allow_none=True)


class SaveCardSchema(Schema):
    payment_method = fields.String(
        required=True,
        validate=validate.Length(min=3, max=255),
        metadata={"description": "a PaymentMethod id made by Stripe.js (`pm_…`)"},
    )


class SavedCardDetailsSchema(Schema):
    brand = fields.String(allow_none=True)
    last4 = fields.String(allow_none=True)


class SavedCardSchema(Schema):
    card = fields.Nested(SavedCardDetailsSchema, allow_none=True)


class DailyCapFormSchema(Schema):
    """The wallet page's cap form: an amount like "2.00" in major units; empty removes it."""

    class Meta:
        unknown = EXCLUDE  # the CSRF token

    daily_cap = MajorUnits(allow_none=True, validate=validate.Range(min=0, max=DAILY_CAP_MAXIMUM))
    currency = fields.String(
        load_default="usd",
        validate=validate.OneOf(sorted(CURRENCIES), error="Supported currencies: {choices}."),
    )

    @pre_load
    def empty_is_none(self, data: dict[str, Any], **_: object) -> dict[str, Any]:
        data = dict(data)
        if not str(data.get("daily_cap", "")).strip():
            data["daily_cap"] = None
        return data


class TopUpAmountFormSchema(Schema):
    """The wallet page's "Other amount" field, typed in major units ("7.50")."""

    amount = MajorUnits(
        required=True,
        data_key="other",
        error_messages={"invalid": "Enter an amount like 7.50."},
    )


class AutoTopUpFormSchema(Schema):
    """The wallet page's auto top-up form, amounts typed in major units ("5.00")."""

    class Meta:
        unknown = EXCLUDE  # the CSRF token

    below = MajorUnits(required=True)
    amount = MajorUnits(required=True)
    monthly_limit = MajorUnits(required=True)
    currency = fields.String(
        load_default="usd",
        validate=validate.OneOf(sorted(CURRENCIES), error="Supported currencies: {choices}."),
    )

    def as_setting(self, data: dict[str, Any]) -> dict[str, Any]:
        """The form as the API's `auto_topup` value."""
        currency = data["currency"]
        return {name: money(data[name], currency) for name in ("below", "amount", "monthly_limit")}
