"""Money as integer minor units plus a lowercase ISO 4217 currency."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from marshmallow import Schema, fields, validate

# Stripe's minimum card charge per currency, in minor units.
CURRENCIES: dict[str, dict[str, Any]] = {
    "usd": {"symbol": "$", "stripe_minimum": 50},
    "eur": {"symbol": "€", "stripe_minimum": 50},
    "gbp": {"symbol": "£", "stripe_minimum": 30},
}
# The currency of pages and API calls that do not name one.
DEFAULT_CURRENCY = "usd"
# A single dispatch costs at most this much (in minor units): $100.
MAX_ARTICLE_PRICE = 100_00


@dataclass(frozen=True)
class Money:
    """An amount to compare (an expected price, a budget); equal only in the same currency."""

    amount: int
    currency: str


def format_money(amount: int, currency: str) -> str:
    """ "$0.39" for 39 usd; a minus sign before the symbol for negative amounts."""
    symbol = CURRENCIES.get(currency, {}).get("symbol") or f"{currency.upper()} "
    sign = "-" if amount < 0 else ""
    major, minor = divmod(abs(amount), 100)
    return f"{sign}{symbol}{major:,}.{minor:02d}"


class MoneySchema(Schema):
    amount = fields.Integer(required=True, strict=True)
    currency = fields.String(
        required=True,
        validate=validate.OneOf(sorted(CURRENCIES), error="Supported currencies: {choices}."),
    )


class PriceSchema(MoneySchema):
    """An article price: 0 (free) up to MAX_ARTICLE_PRICE."""

    amount = fields.Integer(
        required=True,
        strict=True,
        validate=validate.Range(
            min=0,
            max=MAX_ARTICLE_PRICE,
            error="Must be between {min} and {max} minor units.",
        ),
    )


def money(amount: int, currency: str) -> dict[str, Any]:
    """Money as the API and the templates show it."""
    return {"amount": amount, "currency": currency}


# Forms (HTML) take amounts in major units, as people type them: "0.39", "7.50".
class MajorUnits(fields.Field):
    """ "0.39" → 39 minor units, exactly (Decimal, never a float)."""

    default_error_messages = {  # noqa: RUF012 - marshmallow's own convention
        "invalid": "Enter an amount like 0.39.",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        text = str(value).strip().lstrip("$€£").strip()
        if not re.fullmatch(r"[0-9]{1,7}(\.[0-9]{1,2})?", text):  # ASCII digits only
            raise self.make_error("invalid")
        return int(Decimal(text) * 100)
