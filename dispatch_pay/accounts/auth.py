"""Who is calling the JSON API: a bearer token, or a browser session with a CSRF token."""

from __future__ import annotations

from flask import Blueprint, g, request
from flask_login import current_user
from flask_wtf.csrf import validate_csrf
from wtforms.validators import ValidationError as CSRFValidationError

from dispatch_pay.accounts.services import token_for_secret
from dispatch_pay.errors import DomainError
from dispatch_pay.extensions import csrf
from models import ApiToken, User

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# What an agent token may do for its reader: list, read and buy (CONTRACT.md, Readers).
# Every other API route answers 403 to it, and so does any route added later.
AGENT_ENDPOINTS = frozenset(
    {
        "catalog_api.list_articles",
        "catalog_api.get_article",
        "catalog_api.get_manifest",
        "catalog_api.library",
        "wallet_api.purchase_article",
    }
)


def _invalid_token() -> DomainError:
    return DomainError("invalid_token", "The API token is invalid or revoked.", status=401)


def authenticate_request() -> None:
    """Resolve the caller once per request; bearer tokens win over the session cookie."""
    header = request.headers.get("Authorization")
    user: User | None = None
    token: ApiToken | None = None
    if header is not None:
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise _invalid_token()
        token = token_for_secret(secret.strip())
        if token is None:
            raise _invalid_token()
        if token.is_agent and request.endpoint not in AGENT_ENDPOINTS:
            raise agent_not_allowed()
        user = token.user
    elif current_user.is_authenticated:
        user = current_user._get_current_object()
        if request.method not in SAFE_METHODS:
            _require_csrf_header()
    g.api_user = user
    g.api_token = token


def agent_not_allowed() -> DomainError:
    return DomainError(
        "agent_not_allowed",
        "Agent tokens may only list, read and buy articles.",
        status=403,
    )


def _require_csrf_header() -> None:
    token = request.headers.get("X-CSRFToken") or request.headers.get("X-CSRF-Token")
    try:
        validate_csrf(token)
    except CSRFValidationError as exc:
        raise DomainError(
            "csrf_failed",
            "Requests made with a login session need the X-CSRFToken header.",
            status=403,
        ) from exc


def api_user() -> User | None:
    user: User | None = g.get("api_user")
    return user


def agent_token() -> ApiToken | None:
    """The agent token the caller authenticated with, if it is one (budgets apply)."""
    token: ApiToken | None = g.get("api_token")
    return token if token is not None and token.is_agent else None


def require_reader() -> User:
    """A reader acting for themselves: not a publisher, not an agent."""
    user = require_user()
    if user.is_publisher:
        raise DomainError("forbidden", "Only readers may do this.", status=403)
    if agent_token() is not None:
        raise agent_not_allowed()
    return user


def require_user() -> User:
    user = api_user()
    if user is None:
        raise DomainError("not_authenticated", "Log in or send a valid API token.", status=401)
    return user


def require_publisher() -> User:
    user = require_user()
    if not user.is_publisher:
        raise DomainError("forbidden", "Only publishers may do this.", status=403)
    return user


def api_blueprint(name: str, import_name: str) -> Blueprint:
    """A blueprint under /api/v1 that authenticates every request the API way."""
    bp = Blueprint(name, import_name, url_prefix="/api/v1")
    bp.before_request(authenticate_request)
    csrf.exempt(bp)
    return bp
