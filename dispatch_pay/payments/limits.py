"""How much a top-up may be: Stripe's minimum, our maximum, and the amounts we suggest.

The one place to change when the limits or presets change; the API's 402 offer, the
paywall box, the wallet page and the top-up validation all read them from here.
"""

from __future__ import annotations

from typing import Any

from dispatch_pay.errors import invalid_fields
from dispatch_pay.money import CURRENCIES, format_money

TOPUP_PRESETS = (200, 500, 1000)
# The preset a page selects when the reader has not chosen one ($5 and the like).
TOPUP_SUGGESTED = 500
TOPUP_MAXIMUM = 100_00


def topup_minimum(currency: str) -> int:
    """Stripe's minimum card charge in this currency."""
    return int(CURRENCIES[currency]["stripe_minimum"])


def topup_offer(currency: str, shortfall: int = 0) -> dict[str, Any]:
    """What to top up: at least Stripe's minimum, and at least what is missing."""
    minimum = max(topup_minimum(currency), shortfall)
    presets = [p for p in TOPUP_PRESETS if p >= minimum] or [minimum]
    return {
        "minimum": {"amount": minimum, "currency": currency},
        "maximum": {"amount": TOPUP_MAXIMUM, "currency": currency},
        "presets": [{"amount": p, "currency": currency} for p in presets],
    }


def preset_amounts(offer: dict[str, Any]) -> list[int]:
    return [int(p["amount"]) for p in offer["presets"]]


def selected_preset(offer: dict[str, Any], requested: int | None = None) -> int:
    """The preset a page selects: the reader's choice if it is one, else the suggested one."""
    presets = preset_amounts(offer)
    if requested in presets:
        return int(requested)
    return TOPUP_SUGGESTED if TOPUP_SUGGESTED in presets else presets[0]


def topup_range_message(currency: str) -> str:
    """What a refused top-up amount is told, on the wallet page and in the API alike."""
    low = format_money(topup_minimum(currency), currency)
    return f"A top-up is between {low} and {format_money(TOPUP_MAXIMUM, currency)}."


def validate_topup_amount(amount: int, currency: str) -> None:
    """Stripe's minimum charge for the currency up to TOPUP_MAXIMUM, or a 422 on `amount`."""
    if amount < topup_minimum(currency) or amount > TOPUP_MAXIMUM:
        raise invalid_fields({"amount": [topup_range_message(currency)]})
