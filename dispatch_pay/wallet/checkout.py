"""Buying as the HTTP API, MCP and the paywall's button all do it: the purchase, auto
top-up when the wallet lacks funds, and the offer on refusal."""

from __future__ import annotations

from functools import partial

from dispatch_pay.catalog.offers import offer_for, offer_headers
from dispatch_pay.errors import DomainError
from dispatch_pay.money import Money
from dispatch_pay.payments.gateway import current_gateway
from dispatch_pay.wallet import auto_topup
from dispatch_pay.wallet import services as wallet_services
from models import ApiToken, Article, User


def buy(
    user: User,
    article: Article,
    *,
    agent_token: ApiToken | None = None,
    expected_price: Money | None = None,
) -> wallet_services.PurchaseResult:
    """A purchase as every boundary makes it; a 402 or 409 carries the offer.

    When the wallet lacks funds and the reader set up auto top-up, the saved card is
    charged and the purchase made in the same request; this commits the transaction in
    progress on the way (see wallet/auto_topup.py).
    """
    purchase = partial(
        wallet_services.purchase_article,
        user,
        article,
        agent_token=agent_token,
        expected_price=expected_price,
    )
    try:
        try:
            return purchase()
        except DomainError as exc:
            if exc.code != "insufficient_funds":
                raise
            return auto_topup.top_up_and_buy(user.id, article.price_currency, exc, purchase)
    except DomainError as exc:
        if exc.code == "insufficient_funds" and current_gateway() is None:
            # Without Stripe keys buying is disabled "with a clear message" (CONTRACT.md,
            # Configuration): the 402 keeps its contract shape, but must not send the reader
            # to a top-up that can only answer 503.
            exc.message = (
                "Your wallet does not cover this dispatch, and top-ups are not available: "
                "Stripe is not configured on this server."
            )
        if exc.status == 402:
            exc.headers.update(offer_headers(article))
        if exc.status in (402, 409) and exc.code != "article_free":
            exc.extra.setdefault("offer", offer_for(article))
        raise
