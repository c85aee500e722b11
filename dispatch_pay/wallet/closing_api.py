"""`DELETE /api/v1/me`: a reader deletes their account and gets their balance back."""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, Response, flash, jsonify, redirect, request, url_for
from flask_login import current_user, login_required
from marshmallow import Schema, fields, validate
from werkzeug.wrappers import Response as WerkzeugResponse

from dispatch_pay.accounts.auth import api_blueprint, require_user
from dispatch_pay.accounts.schemas import PASSWORD_MAX_LENGTH
from dispatch_pay.accounts.sessions import end_current_session
from dispatch_pay.api.openapi import operation
from dispatch_pay.errors import DomainError
from dispatch_pay.inputs import load, load_json
from dispatch_pay.money import MoneySchema
from dispatch_pay.payments import cards
from dispatch_pay.payments.gateway import PaymentGateway, require_gateway
from dispatch_pay.wallet import closing
from models import User, db

bp = api_blueprint("closing_api", __name__)
web_bp = Blueprint("closing", __name__)


class CloseAccountSchema(Schema):
    password = fields.String(
        load_default=None,
        validate=validate.Length(min=1, max=PASSWORD_MAX_LENGTH),
        metadata={"description": "Required unless the browser session logged in minutes ago."},
    )


class CardRefundSchema(Schema):
    topup = fields.String(required=True, metadata={"description": "The top-up's PaymentIntent id."})
    amount = fields.Nested(MoneySchema, required=True)


class AccountDeletedSchema(Schema):
    deleted = fields.Boolean(required=True)
    refunds = fields.List(fields.Nested(CardRefundSchema), required=True)


@bp.delete("/me")
@operation(
    "Delete the caller's account: tokens and sessions revoked, email erased, the wallet "
    "balance refunded to the cards that paid it (newest top-up first); ledger entries stay, "
    "anonymised",
    body=CloseAccountSchema,
    response=AccountDeletedSchema,
    errors={
        403: "`forbidden`: publisher accounts are closed by an operator.",
        409: "`dispute_open` while a payment is disputed; `wallet_frozen` below zero.",
        422: "`invalid_credentials` or `reauthentication_required`.",
        503: "`payment_provider_unavailable`: not every refund could be made; the "
        "account is not deleted (refunds made are kept), try again.",
    },
)
def delete_me() -> Response:
    user = require_user()
    data = load_json(CloseAccountSchema())
    made = close_account(user, data["password"])
    refunds = [
        {"topup": r.payment_intent_id, "amount": {"amount": r.amount, "currency": r.currency}}
        for r in made
    ]
    return jsonify(AccountDeletedSchema().dump({"deleted": True, "refunds": refunds}))


@web_bp.post("/account/delete")
@login_required
def delete_account_form() -> WerkzeugResponse:
    try:
        password = load(CloseAccountSchema(), {"password": request.form.get("password") or None})
        close_account(current_user._get_current_object(), password["password"])
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message)
        return redirect(url_for("accounts.account_page"))
    flash("Your account is deleted. Any balance is on its way back to your cards.")
    return redirect(url_for("catalog.front_page"))


def close_account(user: User, password: str | None) -> list[closing.PlannedRefund]:
    """The whole deletion, with its two transactions around Stripe; the refunds made."""
    if user.is_publisher:
        raise DomainError("forbidden", "Publisher accounts are closed by an operator.", status=403)
    closing.check_may_close(user, password)
    # The saved card first: once detached at Stripe nothing (no auto top-up racing the
    # deletion) can charge it; when Stripe cannot be reached nothing else has changed (503).
    cards.remove_card(user)
    user = db.session.get(User, user.id) or user
    user, planned, made = _refund_balance(user, require_gateway)
    if len(made) < len(planned):
        db.session.commit()  # keep the refunds Stripe made; the rest is retried next time
        raise DomainError(
            "payment_provider_unavailable",
            "Not all of your balance could be refunded to your cards yet, so your account "
            "is not deleted. Try again shortly; refunds already made are kept.",
            status=503,
        )
    closing.shut_account(user)
    end_current_session()
    return made


def _refund_balance(
    user: User, gateway: Callable[[], PaymentGateway]
) -> tuple[User, list[closing.PlannedRefund], list[closing.PlannedRefund]]:
    """The wallet's balance back to the cards: (the user again, refunds planned, made).
    Stripe (`gateway()`) is needed only when there is something to refund."""
    planned = closing.plan_refunds(user)
    planned_after_purchase = closing.last_purchase_id(user)
    # Two transactions around Stripe: the wallet locks taken for the plan are released
    # before Stripe is asked (no network call under locks); what Stripe refunded is
    # recorded in the second (together with shutting the account, when closing it).
    db.session.commit()
    made = closing.refund_to_cards(gateway(), planned) if planned else []
    user = db.session.get(User, user.id) or user
    closing.record_refunds(user, made, planned_after_purchase)
    return user, planned, made


def refund_closed_accounts(gateway: PaymentGateway) -> list[str]:
    """Money that reached an account after it was closed (a top-up whose 3-D Secure
    finished later) goes back to the card it came from; for `reconcile`. Commits."""
    report = []
    for user_id in closing.closed_accounts_with_money():
        user = db.session.get(User, user_id)
        if user is None:
            continue
        try:
            user, planned, made = _refund_balance(user, lambda: gateway)
        except DomainError as exc:  # a dispute is open: the refund waits for its end
            db.session.rollback()
            report.append(f"closed account {user_id} not refunded: {exc.code}")
            continue
        db.session.commit()
        for refund in made:
            report.append(
                f"refunded {refund.payment_intent_id}: {refund.amount} {refund.currency} "
                f"to the card of closed account {user_id}"
            )
        if len(made) < len(planned):
            report.append(f"closed account {user_id}: Stripe refused or is away; next run")
    return report
