"""The wallet page and the one-click buy button of the paywall."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from marshmallow import ValidationError
from werkzeug.wrappers import Response

from dispatch_pay.accounts import spending_cap
from dispatch_pay.catalog.services import find_article
from dispatch_pay.errors import DomainError
from dispatch_pay.inputs import load
from dispatch_pay.money import CURRENCIES, DEFAULT_CURRENCY, Money, format_money
from dispatch_pay.payments import cards
from dispatch_pay.payments.gateway import card_payments_enabled, current_gateway
from dispatch_pay.payments.limits import (
    TOPUP_MAXIMUM,
    preset_amounts,
    selected_preset,
    topup_minimum,
    topup_offer,
    topup_range_message,
    validate_topup_amount,
)
from dispatch_pay.payments.services import find_topup
from dispatch_pay.wallet import auto_topup, checkout, ledger
from dispatch_pay.wallet import services as wallet_services
from dispatch_pay.wallet.schemas import (
    AutoTopUpFormSchema,
    BuyFormSchema,
    DailyCapFormSchema,
    TopUpAmountFormSchema,
    wallet_view,
)
from models import Article, db

bp = Blueprint("wallet", __name__)


@bp.app_context_processor
def _payments_in_templates() -> dict[str, bool]:
    # Every page that offers a top-up (the paywall, the wallet) asks the same question.
    return {"card_payments": card_payments_enabled()}


@bp.get("/wallet")
@login_required
def wallet_page() -> tuple[str, int]:
    currency = request.args.get("currency", DEFAULT_CURRENCY)
    if currency not in CURRENCIES:
        currency = DEFAULT_CURRENCY
    wallet = ledger.find_wallet(current_user.id, currency)
    entries = ledger.entries(wallet) if wallet else []
    view = wallet_view(wallet, currency, entries, ledger.purchased_articles(entries))
    buy_slug = request.args.get("buy")
    buy = None
    if buy_slug:
        try:
            article = find_article(buy_slug)
            owned = wallet_services.active_purchase(current_user.id, article.id) is not None
            if article.is_published and not article.is_free and not owned:
                buy = {
                    "slug": article.slug,
                    "title": article.title,
                    "price": {"amount": article.price_amount, "currency": article.price_currency},
                }
        except DomainError:
            buy = None
    offer = topup_offer(currency)
    other, amount_error = _other_amount(request.args.get("other", ""), currency)
    gateway = current_gateway()
    cap = spending_cap.settings_of(current_user.id)
    html = render_template(
        "wallet.html",
        saved_card=cards.saved_card(current_user.id),
        auto_topup=auto_topup.settings_view(current_user.id),
        daily_cap=(
            {"amount": cap.daily_cap_amount, "currency": cap.daily_cap_currency}
            if cap is not None and cap.daily_cap_currency
            else None
        ),
        wallet=view,
        currency=currency,
        presets=preset_amounts(offer),
        selected=other or selected_preset(offer, request.args.get("amount", type=int)),
        other=request.args.get("other", "") if other or amount_error else "",
        amount_error=amount_error,
        range_message=topup_range_message(currency),
        minimum=topup_minimum(currency),
        maximum=TOPUP_MAXIMUM,
        buy=buy,
        payments_enabled=card_payments_enabled(),
        publishable_key=gateway.publishable_key() if gateway else None,
        stripe_js_url=gateway.js_url() if gateway else None,
    )
    return (html, 422) if amount_error else (html, 200)


def _other_amount(text: str, currency: str) -> tuple[int | None, str | None]:
    """The "Other amount" field, checked as the top-up API checks it: (amount, error)."""
    if not text.strip():
        return None, None
    try:
        amount: int = TopUpAmountFormSchema().load({"other": text})["amount"]
        validate_topup_amount(amount, currency)
    except ValidationError as exc:
        return None, " ".join(str(m) for m in exc.messages_dict.get("other", []))
    except DomainError as exc:
        return None, " ".join(exc.fields.get("amount", [exc.message]))
    return amount, None


@bp.post("/articles/<slug>/buy")
@login_required
def buy(slug: str) -> Response:
    article = find_article(slug)
    target = url_for("catalog.article_page", slug=article.slug)
    try:
        shown = BuyFormSchema().load(
            {k: request.form.get(k) for k in ("expected_amount", "expected_currency")}
        )
    except ValidationError:
        flash("We could not tell which price you saw; nothing was bought. Check it and buy again.")
        return redirect(target)
    expected = Money(shown["expected_amount"], shown["expected_currency"])
    try:
        result = checkout.buy(current_user._get_current_object(), article, expected_price=expected)
    except DomainError as exc:
        if exc.code == "insufficient_funds":
            if "auto_topup" in exc.extra:  # auto top-up charged nothing: it says why
                flash(exc.message)
            else:
                flash("Your wallet does not cover this dispatch yet. Top up and it is yours.")
            return redirect(
                url_for("wallet.wallet_page", buy=article.slug, currency=article.price_currency)
            )
        if exc.status == 404:
            raise
        flash(exc.message)
        return redirect(target)
    if result.created:
        balance = format_money(result.wallet.balance, result.wallet.currency)
        flash(f"It's yours. {balance} left in your wallet.")
    return redirect(target)


@bp.get("/wallet/topups/<payment_intent_id>/done")
@login_required
def topup_done(payment_intent_id: str) -> Response:
    """Where the card form goes once a top-up is through: say what happened, show the article.

    Only reads: the crediting itself happened in the API (or the webhook, or reconcile).
    """
    topup = find_topup(payment_intent_id)
    if topup is None or topup.user_id != current_user.id:
        flash("We could not find that payment. Your wallet shows every top-up that went through.")
        return redirect(url_for("wallet.wallet_page"))
    amount = format_money(topup.amount, topup.currency)
    wallet_url = url_for("wallet.wallet_page", currency=topup.currency)
    if topup.credited_at is None:
        flash(f"Your payment of {amount} is still processing; your wallet updates when it is done.")
        return redirect(wallet_url)
    article = db.session.get(Article, topup.buy_article_id) if topup.buy_article_id else None
    if article is None:
        flash(f"{amount} added to your wallet.")
        return redirect(wallet_url)
    wallet = ledger.find_wallet(current_user.id, topup.currency)
    balance = format_money(wallet.balance if wallet else 0, topup.currency)
    if wallet_services.active_purchase(current_user.id, article.id) is not None:
        flash(f"{amount} added to your wallet, and this dispatch is yours. {balance} left.")
    else:
        flash(f"{amount} added to your wallet ({balance} now), but the dispatch was not bought.")
    return redirect(url_for("catalog.article_page", slug=article.slug))


@bp.post("/wallet/settings")
@login_required
def wallet_settings() -> Response:
    try:
        data = load(DailyCapFormSchema(), request.form.to_dict())
    except DomainError:
        flash("The daily cap must be an amount like 5.00, or empty for no cap. Nothing changed.")
        return redirect(url_for("wallet.wallet_page", _anchor="spending-cap"))
    cap = data["daily_cap"]
    spending_cap.set_daily_cap(
        current_user._get_current_object(),
        None if cap is None else {"amount": cap, "currency": data["currency"]},
    )
    flash("Daily spending cap saved." if cap is not None else "Daily spending cap removed.")
    return redirect(url_for("wallet.wallet_page", _anchor="spending-cap"))


AUTO_TOPUP_ANCHOR = "auto-topup"


@bp.post("/wallet/auto-topup")
@login_required
def auto_topup_settings() -> Response:
    """The wallet page's auto top-up form: switch it on (or again), or off."""
    target = url_for("wallet.wallet_page", _anchor=AUTO_TOPUP_ANCHOR)
    if request.form.get("action") == "off":
        auto_topup.set_auto_topup(current_user._get_current_object(), None)
        flash("Auto top-up is off.")
        return redirect(target)
    schema = AutoTopUpFormSchema()
    try:
        data = load(schema, request.form.to_dict())
        auto_topup.set_auto_topup(current_user._get_current_object(), schema.as_setting(data))
    except DomainError as exc:
        flash(f"Auto top-up was not changed: {_field_messages(exc)}")
        return redirect(target)
    flash("Auto top-up is on.")
    return redirect(target)


def _field_messages(exc: DomainError) -> str:
    """The 422's field messages in one line ("amount: ...")."""
    found = exc.fields.get("auto_topup", exc.fields)
    parts = []
    for name, messages in found.items():
        text = (
            " ".join(m for m in messages if isinstance(m, str))
            if isinstance(messages, list)
            else ""
        )
        parts.append(f"{name.replace('_', ' ')}: {text or 'invalid'}")
    return "; ".join(parts) or exc.message


@bp.post("/wallet/card/remove")
@login_required
def remove_card() -> Response:
    removed = cards.remove_card(current_user._get_current_object())
    flash("Your saved card was removed." if removed else "No card was saved.")
    return redirect(url_for("wallet.wallet_page", _anchor=AUTO_TOPUP_ANCHOR))
