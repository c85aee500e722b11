"""Device cookies (OWASP's answer to lockout abuse): a browser or client that logged in to
an account before carries a signed cookie naming it, and is not subject to that account's
lockout, so guessing its password from many addresses cannot lock the owner out."""

from __future__ import annotations

import hashlib

from flask import Response, current_app, request
from itsdangerous import BadSignature, URLSafeSerializer

COOKIE = "dispatch_device"
MAX_ACCOUNTS = 5  # accounts remembered per device
MAX_AGE = 365 * 24 * 3600


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="dispatch-device")


def _account_key(email: str) -> str:
    # surrogatepass: whatever a request carried (lone surrogates too) hashes, never raises.
    return hashlib.sha256(email.strip().lower().encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _remembered() -> list[str]:
    raw = request.cookies.get(COOKIE)
    if not raw:
        return []
    try:
        value = _serializer().loads(raw)
    except BadSignature:
        return []
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def trusted_for(email: str) -> bool:
    return _account_key(email) in _remembered()


def remember(response: Response, email: str) -> Response:
    """Add the account to this device's cookie (after a successful login)."""
    key = _account_key(email)
    keys = [key, *(k for k in _remembered() if k != key)][:MAX_ACCOUNTS]
    response.set_cookie(
        COOKIE,
        _serializer().dumps(keys),
        max_age=MAX_AGE,
        httponly=True,
        samesite="Lax",
        secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")),
    )
    return response
