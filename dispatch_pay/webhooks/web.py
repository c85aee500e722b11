"""POST /webhooks/stripe: verify, then hand the event to `ingest`."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from dispatch_pay.errors import DomainError
from dispatch_pay.extensions import csrf
from dispatch_pay.payments.stripe_gateway import InvalidSignature, verify_webhook
from dispatch_pay.webhooks.services import ingest

bp = Blueprint("webhooks", __name__)
csrf.exempt(bp)


@bp.post("/webhooks/stripe")
def stripe_webhook() -> Response:
    secret = current_app.config.get("STRIPE_WEBHOOK_SECRET")
    if not secret:
        raise DomainError("webhook_not_configured", "STRIPE_WEBHOOK_SECRET is not set.", status=503)
    try:
        event = verify_webhook(
            request.get_data(cache=False), request.headers.get("Stripe-Signature"), secret
        )
    except InvalidSignature as exc:
        raise DomainError(
            "invalid_signature",
            "The Stripe-Signature header is missing, wrong or stale.",
            status=400,
        ) from exc
    outcome = ingest(event)
    return jsonify({"received": True, "outcome": outcome})
