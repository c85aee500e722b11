"""Receipts of top-ups: a printable page and the same receipt as JSON (owner only)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, render_template
from flask_login import current_user, login_required
from marshmallow import Schema, fields

from dispatch_pay.accounts.auth import api_blueprint, require_user
from dispatch_pay.api.openapi import operation
from dispatch_pay.money import MoneySchema
from dispatch_pay.payments.receipts import receipt_for

bp = Blueprint("receipts", __name__)
api_bp = api_blueprint("receipts_api", __name__)


class SellerSchema(Schema):
    name = fields.String(required=True)
    address = fields.String(required=True)
    tax_id = fields.String(required=True)


class CardSchema(Schema):
    brand = fields.String(required=True, allow_none=True)
    last4 = fields.String(required=True, allow_none=True)


class ReceiptSchema(Schema):
    id = fields.String(required=True, metadata={"description": "The top-up's PaymentIntent id."})
    number = fields.String(required=True)
    seller = fields.Nested(SellerSchema, required=True)
    date = fields.DateTime(required=True)
    amount = fields.Nested(MoneySchema, required=True)
    card = fields.Nested(CardSchema, required=True)
    charge_id = fields.String(required=True, allow_none=True)


class ReceiptResponseSchema(Schema):
    receipt = fields.Nested(ReceiptSchema, required=True)


@bp.get("/wallet/receipts/<topup_id>")
@login_required
def receipt_page(topup_id: str) -> str:
    return render_template(
        "receipt.html", receipt=receipt_for(current_user._get_current_object(), topup_id)
    )


@api_bp.get("/wallet/receipts/<topup_id>")
@operation(
    "The receipt of a credited top-up (seller, date, amount, card, Stripe charge id)",
    response=ReceiptResponseSchema,
    errors={404: "`not_found`: no credited top-up of the caller's has this id."},
)
def get_receipt(topup_id: str) -> Response:
    receipt = receipt_for(require_user(), topup_id)
    return jsonify(ReceiptResponseSchema().dump({"receipt": receipt}))
