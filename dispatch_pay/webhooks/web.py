"""POST /webhooks/stripe: verify, ask Stripe what the event needs, then `ingest` it."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from dispatch_pay.errors import DomainError
from dispatch_pay.extensions import csrf
from dispatch_pay.payments.gateway import InvalidSignature, current_gateway, webhook_events
from dispatch_pay.webhooks.quick_credit import OUTCOME as CREDITED
from dispatch_pay.webhooks.quick_credit import mark_credited
from dispatch_pay.webhooks.services import ask_behind, ingest

bp = Blueprint("webhooks", __name__)
csrf.exempt(bp)


@bp.post("/webhooks/stripe")
def stripe_webhook() -> Response:
    events = webhook_events()
    if not events.configured():
        raise DomainError("webhook_not_configured", "STRIPE_WEBHOOK_SECRET is not set.", status=503)
    try:
        event = events.verify(
            request.get_data(cache=False), request.headers.get("Stripe-Signature")
        )
    except InvalidSignature as exc:
        raise DomainError(
            "invalid_signature",
            "The Stripe-Signature header is missing, wrong or stale.",
            status=400,
        ) from exc
    # Stripe first, with no transaction open; then the event's one transaction.
    behind = ask_behind(event, current_gateway())
    outcome = ingest(event, behind)
    if outcome == CREDITED:
        mark_credited(request.environ)  # the answer the quick path learns its headers from
    return jsonify({"received": True, "outcome": outcome})
