"""The wallet page and the one-click buy button of the paywall."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from dispatch_pay.catalog.services import find_article
from dispatch_pay.errors import DomainError
from dispatch_pay.money import CURRENCIES, format_money
from dispatch_pay.wallet import ledger
from dispatch_pay.wallet import services as wallet_services
from dispatch_pay.wallet.schemas import wallet_view

bp = Blueprint("wallet", __name__)


@bp.get("/wallet")
@login_required
def wallet_page() -> str:
    currency = request.args.get("currency", "usd")
    if currency not in CURRENCIES:
        currency = "usd"
    wallet = ledger.find_wallet(current_user.id, currency)
    view = wallet_view(wallet, currency, ledger.entries(wallet) if wallet else [])
    buy_slug = request.args.get("buy")
    buy = None
    if buy_slug:
        try:
            article = find_article(buy_slug)
            if article.is_published and not article.is_free:
                buy = {
                    "slug": article.slug,
                    "title": article.title,
                    "price": {"amount": article.price_amount, "currency": article.price_currency},
                }
        except DomainError:
            buy = None
    offer = wallet_services.topup_offer(currency)
    amount = request.args.get("amount", type=int)
    presets = [p["amount"] for p in offer["presets"]]
    selected = amount if amount in presets else (500 if 500 in presets else presets[0])
    gateway = current_app.extensions.get("payment_gateway")
    return render_template(
        "wallet.html",
        wallet=view,
        currency=currency,
        presets=presets,
        selected=selected,
        buy=buy,
        payments_enabled=gateway is not None and bool(gateway.publishable_key()),
        publishable_key=gateway.publishable_key() if gateway else None,
        stripe_js_url=gateway.js_url() if gateway else None,
    )


@bp.post("/articles/<slug>/buy")
@login_required
def buy(slug: str) -> Response:
    article = find_article(slug)
    target = url_for("catalog.article_page", slug=article.slug)
    try:
        result = wallet_services.purchase_article(current_user._get_current_object(), article)
    except DomainError as exc:
        if exc.code == "insufficient_funds":
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
