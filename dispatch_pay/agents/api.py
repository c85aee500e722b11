"""Agent tokens as JSON: a reader creates, lists and revokes the tokens their agents use."""

from __future__ import annotations

from flask import Response, jsonify

from dispatch_pay.accounts.auth import api_blueprint, require_reader
from dispatch_pay.agents import services
from dispatch_pay.agents.schemas import (
    AgentTokenCreatedSchema,
    AgentTokenListSchema,
    AgentTokenRequestSchema,
    AgentTokenRevokedSchema,
)
from dispatch_pay.api.openapi import operation
from dispatch_pay.inputs import ROW_ID, load_json

bp = api_blueprint("agents_api", __name__)


@bp.post("/agent-tokens")
@operation(
    "Create an agent token: it lists, reads and buys for the reader, within a budget",
    body=AgentTokenRequestSchema,
    response=AgentTokenCreatedSchema,
    status=201,
    description="`token` is the secret, shown once. A purchase through it over `max_price`, "
    "or one that would take today's (UTC) spending through it over `daily_limit`, is "
    "402 `budget_exceeded`. Budgets are in the site's currency.",
    errors={403: "Publishers and agent tokens may not create agent tokens."},
)
def create_agent_token() -> tuple[Response, int]:
    user = require_reader()
    data = load_json(AgentTokenRequestSchema())
    secret, token = services.create_agent_token(user, data)
    return jsonify(AgentTokenCreatedSchema().dump({"token": secret, "agent_token": token})), 201


@bp.get("/agent-tokens")
@operation(
    "The reader's agent tokens with what each spent today",
    response=AgentTokenListSchema,
    errors={403: "Publishers and agent tokens have no agent tokens to list."},
)
def list_agent_tokens() -> Response:
    user = require_reader()
    return jsonify(AgentTokenListSchema().dump({"agent_tokens": services.agent_tokens(user)}))


@bp.delete(f"/agent-tokens/<{ROW_ID}:token_id>")
@operation(
    "Revoke one of the reader's agent tokens",
    response=AgentTokenRevokedSchema,
    errors={403: "Publishers and agent tokens may not revoke agent tokens."},
)
def revoke_agent_token(token_id: int) -> Response:
    user = require_reader()
    token = services.revoke_agent_token(user, token_id)
    return jsonify(AgentTokenRevokedSchema().dump({"agent_token": token}))
