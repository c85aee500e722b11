"""Wallet, purchases and refunds as JSON."""

from __future__ import annotations

from flask import Response, jsonify, request
from flask.typing import ResponseReturnValue

from dispatch_pay.api.auth import api_blueprint, require_user
from dispatch_pay.catalog.services import find_article
from dispatch_pay.errors import DomainError
from dispatch_pay.extensions import limiter
from dispatch_pay.inputs import load_json, load_query
from dispatch_pay.payments import services as payments
from dispatch_pay.payments.gateway import PaymentProviderUnavailable, PaymentRequestRejected
from dispatch_pay.wallet import ledger
from dispatch_pay.wallet import services as wallet_services
from dispatch_pay.wallet.schemas import (
    PurchaseSchema,
    TopUpRequestSchema,
    TopUpSchema,
    WalletQuerySchema,
    money,
    wallet_view,
)
from models import TopUp, db

bp = api_blueprint("wallet_api", __name__)


@bp.get("/wallet")
def get_wallet() -> Response:
    user = require_user()
    currency = load_query(WalletQuerySchema())["currency"]
    wallet = ledger.find_wallet(user.id, currency)
    entries = ledger.entries(wallet) if wallet else []
    return jsonify(wallet_view(wallet, currency, entries, ledger.purchased_articles(entries)))


@bp.post("/articles/<slug>/purchase")
def purchase_article(slug: str) -> ResponseReturnValue:
    user = require_user()
    if user.is_publisher:
        raise DomainError("forbidden", "Publishers read everything already.", status=403)
    result = wallet_services.purchase_article(user, find_article(slug))
    body = {
        "purchase": PurchaseSchema().dump(result.purchase),
        "wallet": {"balance": money(result.wallet.balance, result.wallet.currency)},
    }
    return jsonify(body), 201 if result.created else 200


@bp.get("/purchases")
def list_purchases() -> Response:
    user = require_user()
    return jsonify(
        {"purchases": PurchaseSchema(many=True).dump(wallet_services.purchases_of(user))}
    )


@bp.post("/purchases/<int:purchase_id>/refund")
def refund_purchase(purchase_id: int) -> Response:
    user = require_user()
    result = wallet_services.refund_purchase(user, purchase_id)
    return jsonify(
        {
            "purchase": PurchaseSchema().dump(result.purchase),
            "wallet": {"balance": money(result.wallet.balance, result.wallet.currency)},
        }
    )


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > 255:
        raise DomainError(
            "invalid_fields",
            "Idempotency-Key must be 1 to 255 characters.",
            status=422,
            fields={"Idempotency-Key": ["Must be 1 to 255 characters."]},
        )
    return key


@bp.post("/wallet/topups")
@limiter.limit("30 per hour; 10 per minute")
def create_topup() -> ResponseReturnValue:
    user = require_user()
    data = load_json(TopUpRequestSchema())
    topup, must_submit = payments.prepare_topup(
        user,
        amount=data["amount"],
        currency=data["currency"],
        payment_method=data["payment_method"],
        buy=data["buy"],
        idempotency_key=_idempotency_key(),
    )
    if must_submit:
        topup = payments.submit_topup(topup.id, data["payment_method"])
    return jsonify({"topup": TopUpSchema().dump(topup)}), 201


@bp.get("/wallet/topups/<topup_id>")
def get_topup(topup_id: str) -> Response:
    """A top-up by its PaymentIntent id (for pages that wait for 3-D Secure to finish)."""
    user = require_user()
    topup = db.session.query(TopUp).filter_by(payment_intent_id=topup_id).one_or_none()
    if topup is None or topup.user_id != user.id:
        raise DomainError("not_found", "No such top-up.", status=404)
    if topup.status not in ("succeeded", "failed", "canceled"):
        try:
            payments.apply_intent(payments.gateway().retrieve_intent(topup_id))
        except (DomainError, PaymentProviderUnavailable, PaymentRequestRejected):
            db.session.rollback()  # the stored state is still a valid answer
            topup = db.session.query(TopUp).filter_by(payment_intent_id=topup_id).one()
    purchased = None
    if topup.buy_article_id is not None:
        purchased = wallet_services.active_purchase(user.id, topup.buy_article_id) is not None
    return jsonify({"topup": TopUpSchema().dump(topup), "purchased": purchased})
