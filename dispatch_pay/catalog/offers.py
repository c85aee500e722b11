"""What a 402 offers: the price, where to buy, and the same as an x402 `PAYMENT-REQUIRED` header.

Generic x402 clients read the header (x402 version 2 `PaymentRequired`, base64 JSON);
the scheme `dispatch-wallet` says the price is paid from a dispatch_pay wallet with an
agent or reader token at `extra.purchase_url`.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from dispatch_pay.catalog.schemas import LockedArticleSchema
from dispatch_pay.errors import DomainError
from dispatch_pay.urls import absolute_url
from models import Article

PAYMENT_REQUIRED_HEADER = "PAYMENT-REQUIRED"
X402_SCHEME = "dispatch-wallet"
# How long an agent may take between reading the offer and buying at that price.
OFFER_TIMEOUT_SECONDS = 300
LOCKED = LockedArticleSchema()


def site_origin() -> str:
    return absolute_url("catalog.front_page").rstrip("/")


def price_of(article: Article) -> dict[str, Any]:
    return {"amount": article.price_amount, "currency": article.price_currency}


def offer_for(article: Article) -> dict[str, Any]:
    return {
        "price": price_of(article),
        "purchase_url": absolute_url("wallet_api.purchase_article", slug=article.slug),
    }


def payment_required(article: Article) -> dict[str, Any]:
    """The x402 v2 PaymentRequired object for this article (CONTRACT.md, Articles)."""
    origin = site_origin()
    offer = offer_for(article)
    return {
        "x402Version": 2,
        "resource": {
            "url": absolute_url("catalog_api.get_article", slug=article.slug),
            "description": article.title,
            "mimeType": "application/json",
        },
        "accepts": [
            {
                "scheme": X402_SCHEME,
                "network": origin,
                "amount": str(article.price_amount),
                "asset": article.price_currency,
                "payTo": origin,
                "maxTimeoutSeconds": OFFER_TIMEOUT_SECONDS,
                "extra": {"purchase_url": offer["purchase_url"]},
            }
        ],
    }


def offer_headers(article: Article) -> dict[str, str]:
    """The same 402 whatever the client accepts (the public cache does not key on Accept)."""
    encoded = json.dumps(payment_required(article), separators=(",", ":"))
    return {PAYMENT_REQUIRED_HEADER: base64.b64encode(encoded.encode()).decode("ascii")}


def payment_required_error(article: Article) -> DomainError:
    """The 402 for an article the caller may not read: the offer and the teaser, no text."""
    return DomainError(
        "payment_required",
        "Buy this dispatch to read it in full.",
        status=402,
        extra={"offer": offer_for(article), "article": LOCKED.dump(article)},
        headers=offer_headers(article),
    )
