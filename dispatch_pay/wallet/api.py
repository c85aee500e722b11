"""Wallet, purchases and refunds as JSON."""

from __future__ import annotations

from flask import Response, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from dispatch_pay.accounts import spending_cap
from dispatch_pay.accounts.auth import agent_token, api_blueprint, api_user, require_user
from dispatch_pay.api.openapi import operation
from dispatch_pay.catalog.full_text import full_dump
from dispatch_pay.catalog.offers import offer_for
from dispatch_pay.catalog.services import article_to_sell, readable_article
from dispatch_pay.errors import DomainError
from dispatch_pay.extensions import limiter
from dispatch_pay.inputs import ROW_ID, load, load_json, load_query
from dispatch_pay.money import Money, money
from dispatch_pay.payments import cards
from dispatch_pay.payments import services as payments
from dispatch_pay.payments.gateway import (
    PaymentProviderUnavailable,
    PaymentRequestRejected,
    current_gateway,
)
from dispatch_pay.wallet import auto_topup, checkout, crediting, ledger
from dispatch_pay.wallet import services as wallet_services
from dispatch_pay.wallet.quick_purchase import mark_made
from dispatch_pay.wallet.schemas import (
    IdempotencyHeaderSchema,
    InsufficientFundsSchema,
    PriceChangedSchema,
    PurchaseListSchema,
    PurchaseQuerySchema,
    PurchaseRequestSchema,
    PurchaseResultSchema,
    SaveCardSchema,
    SavedCardSchema,
    TopUpCreatedSchema,
    TopUpRequestSchema,
    TopUpStatusSchema,
    WalletQuerySchema,
    WalletSchema,
    WalletSettingsInputSchema,
    WalletSettingsSchema,
    wallet_view,
)
from models import Article, TopUp, TopUpStatus, db

bp = api_blueprint("wallet_api", __name__)
# The purchase path's schemas, built once (their construction does not depend on the
# request; loading and dumping through a shared instance is thread-safe).
PURCHASE_REQUEST = PurchaseRequestSchema()
PURCHASE_QUERY = PurchaseQuerySchema()
PURCHASE_RESULT = PurchaseResultSchema()
# A page polls a pending top-up about once a second; this is far above any page.
TOPUP_POLLS_PER_READER = "60 per minute"


@bp.get("/wallet")
@operation(
    "The reader's wallet in one currency: balance, status and ledger entries",
    query=WalletQuerySchema,
    response=WalletSchema,
)
def get_wallet() -> Response:
    user = require_user()
    currency = load_query(WalletQuerySchema())["currency"]
    wallet = ledger.find_wallet(user.id, currency)
    entries = ledger.entries(wallet) if wallet else []
    return jsonify(wallet_view(wallet, currency, entries, ledger.purchased_articles(entries)))


@bp.post("/articles/<slug>/purchase")
@operation(
    "Buy an article from the wallet (201), or get the existing purchase (200)",
    body=PurchaseRequestSchema,
    query=PurchaseQuerySchema,
    response=PurchaseResultSchema,
    status=(200, 201),
    description="The wallet is debited the current price once; buying again debits nothing. "
    "With `?include=article` the answer also holds `article`, the full article as GET "
    "answers it (buy and read in one request). Agent tokens buy within their budget.",
    error_bodies={402: InsufficientFundsSchema, 409: PriceChangedSchema},
    errors={
        402: "`insufficient_funds`: `shortfall` and a `topup` offer; `budget_exceeded` "
        "(agent tokens: over `max_price` or today's `daily_limit`).",
        403: "Publishers read everything already.",
        409: "`price_changed` (`expected_price` is not the price now; the current `offer`), "
        "`wallet_frozen` (a dispute is open or the balance is negative), `article_free`.",
    },
)
def purchase_article(slug: str) -> ResponseReturnValue:
    user = require_user()
    data = load_json(PURCHASE_REQUEST)
    include = load_query(PURCHASE_QUERY)["include"]
    expected = data["expected_price"]
    result = checkout.buy(
        user,
        article_to_sell(slug),
        agent_token=agent_token(),
        expected_price=Money(expected["amount"], expected["currency"]) if expected else None,
    )
    body = purchase_result(result)
    if result.created and include != "article":
        mark_made(request.environ)  # its headers are what the quick path answers with
    if include == "article":
        # Through the read gate, as GET answers it (the rendering shared with GET's).
        body["article"] = full_dump(readable_article(user, slug))
    return jsonify(body), 201 if result.created else 200


def with_offer(exc: DomainError, article: Article) -> None:
    """A `price_changed` refusal carries the current offer, as a 402 does."""
    if exc.code == "price_changed":
        exc.extra.setdefault("offer", offer_for(article))


def purchase_result(result: wallet_services.PurchaseResult) -> dict[str, object]:
    return PURCHASE_RESULT.dump(
        {
            "purchase": result.purchase,
            "wallet": {"balance": money(result.wallet.balance, result.wallet.currency)},
        }
    )


@bp.get("/purchases")
@operation("The reader's purchases, newest first", response=PurchaseListSchema)
def list_purchases() -> Response:
    user = require_user()
    return jsonify(PurchaseListSchema().dump({"purchases": wallet_services.purchases_of(user)}))


@bp.post(f"/purchases/<{ROW_ID}:purchase_id>/refund")
@operation(
    "Refund a purchase: the wallet is credited and the entitlement revoked",
    response=PurchaseResultSchema,
    description="Publishers refund any purchase; a buyer their own within the refund window.",
    errors={409: "`refund_window_closed`, `refund_limit_reached`."},
)
def refund_purchase(purchase_id: int) -> Response:
    user = require_user()
    result = wallet_services.refund_purchase(user, purchase_id)
    return jsonify(purchase_result(result))


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    loaded = load(IdempotencyHeaderSchema(), {"Idempotency-Key": key.strip()})
    return str(loaded["idempotency_key"])


@bp.post("/wallet/topups")
@operation(
    "Top up the wallet through Stripe",
    body=TopUpRequestSchema,
    headers=IdempotencyHeaderSchema,
    response=TopUpCreatedSchema,
    status=201,
    description="With `payment_method` the server confirms the PaymentIntent; without, "
    "Stripe.js finishes it with `client_secret`. The same Idempotency-Key gives the same "
    "top-up and never a second charge.",
    errors={
        402: "`card_declined`, `payment_rejected`.",
        409: "`idempotency_key_reused` (another request), `idempotency_key_in_use`, "
        "`price_changed` (`buy` is priced otherwise than `expected_price`; nothing charged).",
        422: "Also below Stripe's minimum or above the per-top-up maximum.",
        429: "",
        503: "Also `payments_disabled`, `payment_provider_unavailable`.",
    },
)
@limiter.limit("30 per hour; 10 per minute")
def create_topup() -> ResponseReturnValue:
    user = require_user()
    data = load_json(TopUpRequestSchema())
    buy = wallet_services.article_to_buy(data["buy"], data["currency"])
    shown = data["expected_price"] if buy is not None else None
    if buy is not None and shown is not None:
        try:  # before Stripe charges anything for a purchase that would not be made
            wallet_services.check_price(buy, Money(shown["amount"], shown["currency"]))
        except DomainError as exc:
            with_offer(exc, buy)
            raise
    topup, must_submit = payments.prepare_topup(
        user,
        amount=data["amount"],
        currency=data["currency"],
        payment_method=data["payment_method"],
        buy=buy,
        idempotency_key=_idempotency_key(),
        buy_price=shown["amount"] if shown is not None else None,
    )
    if must_submit:
        # The reader's Customer when they have one (made when they saved a card): Stripe
        # then refuses a card attached to anybody else. Made here it would cost a Stripe
        # call before every first top-up; without it Stripe still refuses a card that is
        # attached to another Customer (issue 11, item 13a).
        customer = cards.customer_of(user.id)
        request_ = payments.intent_request(
            topup.id,
            data["payment_method"],
            customer=customer.customer_id if customer is not None else None,
        )
        # Two transactions around the Stripe call: the top-up row is committed first, so
        # that a payment Stripe takes is always traceable to it, and no lock is held
        # while Stripe answers.
        db.session.commit()
        try:
            intent = payments.create_intent(request_)
        except payments.TopUpFailure as failure:
            payments.record_failure(failure)
            db.session.commit()  # a decline is a fact worth keeping though the request fails
            raise failure.error from failure
        topup = crediting.apply_intent(intent) or topup
    return jsonify(TopUpCreatedSchema().dump({"topup": topup})), 201


def _reader_key() -> str:
    """Polls are limited per reader (a page polls one top-up; nobody needs more)."""
    user = api_user()
    return f"reader:{user.id}" if user is not None else f"address:{request.remote_addr}"


@bp.get("/wallet/topups/<topup_id>")
@operation(
    "A top-up by its PaymentIntent id (pages poll it while 3-D Secure finishes)",
    response=TopUpStatusSchema,
    description="Stripe is asked about a pending top-up at most once every few seconds, "
    "however often it is polled; otherwise the stored state is the answer.",
    errors={429: "Polled too often."},
)
@limiter.limit(TOPUP_POLLS_PER_READER, key_func=_reader_key)
def get_topup(topup_id: str) -> Response:
    """A top-up by its PaymentIntent id (for pages that wait for 3-D Secure to finish)."""
    user = require_user()
    topup = payments.find_topup(topup_id)
    if topup is None or topup.user_id != user.id:
        raise DomainError("not_found", "No such top-up.", status=404)
    if not TopUpStatus(topup.status).settled and _may_ask_stripe(topup.id):
        topup = _ask_stripe(topup_id) or topup
    purchased = None
    if topup.buy_article_id is not None:
        purchased = wallet_services.active_purchase(user.id, topup.buy_article_id) is not None
    return jsonify(TopUpStatusSchema().dump({"topup": topup, "purchased": purchased}))


def _may_ask_stripe(topup_id: int) -> bool:
    """At most one Stripe call per top-up every TOPUP_POLL_SECONDS, across processes:
    the claim is a conditional UPDATE, committed before Stripe is asked."""
    claimed = payments.claim_stripe_check(topup_id, current_app.config["TOPUP_POLL_SECONDS"])
    db.session.commit()  # the claim holds for other polls; nothing is locked meanwhile
    return claimed


def _ask_stripe(topup_id: str) -> TopUp | None:
    """What Stripe says of the top-up, applied in a transaction of its own; None when
    Stripe cannot say (the stored state is then the answer)."""
    gateway = current_gateway()
    try:
        intent = gateway.retrieve_intent(topup_id) if gateway else None
    except (PaymentProviderUnavailable, PaymentRequestRejected):
        return None
    if intent is None:
        return None
    try:
        return crediting.apply_intent(intent)
    except payments.NotCreditable:
        db.session.rollback()
        return payments.find_topup(topup_id)


def _settings_view(user_id: int) -> dict[str, object]:
    settings = spending_cap.settings_of(user_id)
    view: dict[str, object] = {"daily_cap": None, "spent_today": None}
    if settings is not None and settings.daily_cap_currency is not None:
        currency = settings.daily_cap_currency
        view = {
            "daily_cap": money(settings.daily_cap_amount or 0, currency),
            "spent_today": money(spending_cap.spent_today(user_id, currency), currency),
        }
    view["auto_topup"] = auto_topup.settings_view(user_id)
    return WalletSettingsSchema().dump(view)


@bp.get("/wallet/settings")
@operation("The reader's own spending limits and auto top-up", response=WalletSettingsSchema)
def get_wallet_settings() -> Response:
    return jsonify(_settings_view(require_user().id))


@bp.put("/wallet/settings")
@operation(
    "Set the reader's daily spending cap and auto top-up (null removes either)",
    body=WalletSettingsInputSchema,
    response=WalletSettingsSchema,
    description="A purchase that would take the day's (UTC) purchases in the cap's currency "
    "over it answers 402 `spending_cap_reached` and debits nothing. With `auto_topup`, a "
    "purchase that lacks funds in its currency charges the saved card (PUT /wallet/card) "
    "off-session: `amount`, or more so that `below` is left after the purchase, within "
    "`monthly_limit` per calendar month (UTC); a card that needs the reader (3-D Secure) "
    "is not charged and the purchase answers 402 as before; a decline switches auto "
    "top-up off and mails the reader. Setting it again switches it back on.",
    errors={
        422: "`auto_topup`: `amount` under Stripe's minimum or above the per-top-up "
        "maximum, `below` above `monthly_limit`, `monthly_limit` under `amount`, or "
        "the three in different currencies."
    },
)
def put_wallet_settings() -> Response:
    user = require_user()
    data = load_json(WalletSettingsInputSchema())
    if "daily_cap" in data:
        spending_cap.set_daily_cap(user, data["daily_cap"])
    if "auto_topup" in data:
        auto_topup.set_auto_topup(user, data["auto_topup"])
    return jsonify(_settings_view(user.id))


def _card_view(user_id: int) -> dict[str, object]:
    card = cards.saved_card(user_id)
    return SavedCardSchema().dump(
        {"card": {"brand": card.brand, "last4": card.last4} if card else None}
    )


@bp.get("/wallet/card")
@operation(
    "The card saved for auto top-up (brand and last four), or null", response=SavedCardSchema
)
def get_card() -> Response:
    return jsonify(_card_view(require_user().id))


@bp.put("/wallet/card")
@operation(
    "Save a card for off-session auto top-ups",
    body=SaveCardSchema,
    response=SavedCardSchema,
    description="A Stripe Customer for the reader and a confirmed SetupIntent. When the "
    "bank asks for 3-D Secure the answer is 402 `requires_action` with the SetupIntent's "
    "`client_secret` (`setup_intent`); Stripe.js finishes it and the same request again "
    "saves the card. A new card replaces the saved one.",
    errors={
        402: "`card_declined`, `requires_action`, `payment_rejected` (the payment method "
        "belongs to another account).",
        503: "Also `payments_disabled`, `payment_provider_unavailable`.",
    },
)
@limiter.limit("20 per hour")
def put_card() -> Response:
    user = require_user()
    data = load_json(SaveCardSchema())
    cards.save_card(user, data["payment_method"])
    return jsonify(_card_view(user.id))


@bp.delete("/wallet/card")
@operation(
    "Remove the saved card: it is detached from the reader's Stripe Customer",
    response=SavedCardSchema,
    errors={503: "Stripe could not be reached; the card is still saved."},
)
def delete_card() -> Response:
    user = require_user()
    cards.remove_card(user)
    return jsonify(_card_view(user.id))
