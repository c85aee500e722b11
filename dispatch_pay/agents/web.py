"""Agent tokens on the wallet page: create one (its secret shown once), revoke one.

The wallet page shows the reader's agents, their limits, what each spent today and
what each bought (templates/_agents.html, fed by the context function below).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate
from werkzeug.wrappers import Response as BaseResponse

from dispatch_pay.agents import services
from dispatch_pay.errors import DomainError
from dispatch_pay.inputs import ROW_ID, form_errors, not_blank
from dispatch_pay.publisher.schemas import MajorUnits
from dispatch_pay.wallet.budgets import agent_purchases

bp = Blueprint("agents", __name__)
LIMIT = validate.Range(min=0, max=1_000_000_00, error="Enter an amount of at least 0.")


class AgentTokenFormSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    name = fields.String(required=True, validate=[validate.Length(min=1, max=100), not_blank])
    max_price = MajorUnits(required=True, validate=LIMIT)
    daily_limit = MajorUnits(required=True, validate=LIMIT)


@bp.app_context_processor
def _agents_in_templates() -> dict[str, Any]:
    def agents_of_reader() -> dict[str, Any]:
        user = current_user._get_current_object()
        return {
            "tokens": services.agent_tokens(user),
            "purchases": agent_purchases(user.id),
            "currency": services.site_currency(),
        }

    return {"agents_of_reader": agents_of_reader}


@bp.post("/wallet/agent-tokens")
@login_required
def create_agent_token() -> BaseResponse:
    user = current_user._get_current_object()
    if user.is_publisher:
        raise DomainError("forbidden", "Agent tokens are for readers.", status=403)
    try:
        data = AgentTokenFormSchema().load(request.form.to_dict())
    except ValidationError as exc:
        return _created_page(None, errors=form_errors(exc), status=422)
    currency = services.site_currency()
    secret, _token = services.create_agent_token(
        user,
        {
            "name": data["name"],
            "max_price": {"amount": data["max_price"], "currency": currency},
            "daily_limit": {"amount": data["daily_limit"], "currency": currency},
        },
    )
    return _created_page(secret, status=201)


def _created_page(
    secret: str | None, *, errors: dict[str, list[str]] | None = None, status: int
) -> BaseResponse:
    html = render_template(
        "agent_token_created.html",
        secret=secret,
        errors=errors or {},
        mcp_url=url_for("catalog.front_page", _external=True) + "mcp",
    )
    response = Response(html, status=status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"  # the secret is shown once
    return response


@bp.post(f"/wallet/agent-tokens/<{ROW_ID}:token_id>/revoke")
@login_required
def revoke_agent_token(token_id: int) -> BaseResponse:
    token = services.revoke_agent_token(current_user._get_current_object(), token_id)
    flash(f"Agent token “{token.name}” revoked: it can no longer read or buy.")
    return redirect(url_for("wallet.wallet_page") + "#agents")
