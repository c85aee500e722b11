"""Who is calling the JSON API: a bearer token, or a browser session with a CSRF token."""

from __future__ import annotations

from flask import Blueprint, g, request
from flask_login import current_user
from flask_wtf.csrf import validate_csrf
from wtforms.validators import ValidationError as CSRFValidationError

from dispatch_pay.accounts.services import user_for_token
from dispatch_pay.errors import DomainError
from dispatch_pay.extensions import csrf
from models import User

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _invalid_token() -> DomainError:
    return DomainError("invalid_token", "The API token is invalid or revoked.", status=401)


def authenticate_request() -> None:
    """Resolve the caller once per request; bearer tokens win over the session cookie."""
    header = request.headers.get("Authorization")
    user: User | None = None
    if header is not None:
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise _invalid_token()
        user = user_for_token(secret.strip())
        if user is None:
            raise _invalid_token()
    elif current_user.is_authenticated:
        user = current_user._get_current_object()
        if request.method not in SAFE_METHODS:
            _require_csrf_header()
    g.api_user = user


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
