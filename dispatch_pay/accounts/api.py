"""Reader sign-up and API tokens."""

from __future__ import annotations

from flask import Response, jsonify

from dispatch_pay.accounts import devices, services
from dispatch_pay.accounts.auth import api_blueprint, require_user
from dispatch_pay.accounts.export import export_reader
from dispatch_pay.accounts.limits import login_email_limit, login_limit, signup_limit
from dispatch_pay.accounts.schemas import (
    CredentialsSchema,
    ExportSchema,
    MeSchema,
    SignupResponseSchema,
    TokenCreatedSchema,
    TokenListSchema,
    TokenRequestSchema,
    TokenRevokedSchema,
)
from dispatch_pay.api.openapi import operation
from dispatch_pay.errors import DomainError
from dispatch_pay.inputs import ROW_ID, load_json

bp = api_blueprint("accounts_api", __name__)


@bp.post("/readers")
@operation(
    "Sign up a reader and get an API token",
    auth="public",
    body=CredentialsSchema,
    response=SignupResponseSchema,
    status=201,
    errors={409: "`email_taken`.", 429: ""},
)
@signup_limit
def create_reader() -> tuple[Response, int]:
    data = load_json(CredentialsSchema())
    user = services.register_user(data["email"], data["password"])
    issued = services.issue_token(user, "Sign-up")
    return jsonify(SignupResponseSchema().dump({"reader": user, "token": issued.secret})), 201


@bp.post("/tokens")
@operation(
    "Exchange an email and password for a new API token",
    auth="public",
    body=TokenRequestSchema,
    response=TokenCreatedSchema,
    status=201,
    errors={401: "`invalid_credentials`: the email or password is wrong.", 429: ""},
)
@login_limit
@login_email_limit
def create_token() -> tuple[Response, int]:
    data = load_json(TokenRequestSchema())
    user = services.authenticate(data["email"], data["password"])
    if user is None:
        raise DomainError("invalid_credentials", "Email or password is wrong.", status=401)
    issued = services.issue_token(user, data["name"])
    response = jsonify(
        TokenCreatedSchema().dump({"token": issued.secret, "token_info": issued.token})
    )
    # A client that keeps cookies is then exempt from this account's lockout.
    return devices.remember(response, user.email), 201


@bp.get("/tokens")
@operation("The caller's API tokens (never their secrets)", response=TokenListSchema)
def list_tokens() -> Response:
    user = require_user()
    return jsonify(TokenListSchema().dump({"tokens": services.list_tokens(user)}))


@bp.delete(f"/tokens/<{ROW_ID}:token_id>")
@operation("Revoke one of the caller's API tokens", response=TokenRevokedSchema)
def revoke_token(token_id: int) -> Response:
    user = require_user()
    token = services.revoke_token(user, token_id)
    return jsonify(TokenRevokedSchema().dump({"token_details": token}))


@bp.get("/me")
@operation("Who the caller is", response=MeSchema)
def me() -> Response:
    user = require_user()
    return jsonify(MeSchema().dump({"user": user}))


@bp.get("/me/export")
@operation(
    "Everything stored about the caller (account, wallets, entries, purchases, top-ups, "
    "tokens and sessions without their secrets), as JSON",
    response=ExportSchema,
)
def export_me() -> Response:
    user = require_user()
    response = jsonify(ExportSchema().dump(export_reader(user)))
    response.headers["Content-Disposition"] = 'attachment; filename="dispatch-account.json"'
    response.headers["Cache-Control"] = "private, no-store"
    return response
