"""Reader sign-up and API tokens."""

from __future__ import annotations

from flask import Response, jsonify

from dispatch_pay.accounts import services
from dispatch_pay.accounts.limits import login_email_limit, login_limit, signup_limit
from dispatch_pay.accounts.schemas import (
    CredentialsSchema,
    ReaderSchema,
    TokenRequestSchema,
    TokenSchema,
)
from dispatch_pay.api.auth import api_blueprint, require_user
from dispatch_pay.errors import DomainError
from dispatch_pay.inputs import load_json

bp = api_blueprint("accounts_api", __name__)


@bp.post("/readers")
@signup_limit
def create_reader() -> tuple[Response, int]:
    data = load_json(CredentialsSchema())
    user = services.register_user(data["email"], data["password"])
    issued = services.issue_token(user, "Sign-up")
    return jsonify({"reader": ReaderSchema().dump(user), "token": issued.secret}), 201


@bp.post("/tokens")
@login_limit
@login_email_limit
def create_token() -> tuple[Response, int]:
    data = load_json(TokenRequestSchema())
    user = services.authenticate(data["email"], data["password"])
    if user is None:
        raise DomainError("invalid_credentials", "Email or password is wrong.", status=401)
    issued = services.issue_token(user, data["name"])
    return (
        jsonify({"token": issued.secret, "token_details": TokenSchema().dump(issued.token)}),
        201,
    )


@bp.get("/tokens")
def list_tokens() -> Response:
    user = require_user()
    return jsonify({"tokens": TokenSchema(many=True).dump(services.list_tokens(user))})


@bp.delete("/tokens/<int:token_id>")
def revoke_token(token_id: int) -> Response:
    user = require_user()
    token = services.revoke_token(user, token_id)
    return jsonify({"token_details": TokenSchema().dump(token)})


@bp.get("/me")
def me() -> Response:
    user = require_user()
    return jsonify({"user": {"id": user.id, "email": user.email, "role": user.role}})
