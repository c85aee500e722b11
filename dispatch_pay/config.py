"""Configuration from the environment, with development defaults that need no setup."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dispatch_pay.money import DEFAULT_CURRENCY

# Every default lives here; the app and its modules read app.config, never a literal.
# The whole budget of one Stripe call, shared by its attempts: a reader waits about
# this long, never more, before a hung Stripe becomes a 503.
STRIPE_TIMEOUT_SECONDS = 10.0
# Retries reuse the Idempotency-Key, so Stripe never charges twice for them.
STRIPE_NETWORK_RETRIES = 1


class ConfigurationError(RuntimeError):
    pass


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _is_production() -> bool:
    env = os.environ.get("FLASK_ENV") or os.environ.get("DISPATCH_ENV") or ""
    return env.strip().lower() == "production"


def _development_secret(instance_path: Path) -> str:
    """A secret generated once into instance/, so sessions survive restarts."""
    instance_path.mkdir(parents=True, exist_ok=True)
    path = instance_path / "secret_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_text().strip()


def normalise_public_base_url(value: str | None) -> str | None:
    """`scheme://host[:port][/prefix]` without a trailing slash, or ConfigurationError."""
    if value is None or not value.strip():
        return None
    parts = urlsplit(value.strip())
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        parts = parts._replace(scheme="")  # refused below
    if (
        parts.scheme not in {"http", "https"}
        or not parts.hostname
        or parts.username is not None
        or parts.query
        or parts.fragment
        or any(c.isspace() or ord(c) < 0x20 for c in value.strip())
    ):
        raise ConfigurationError(
            "PUBLIC_BASE_URL must look like https://dispatch.example (optionally with a "
            f"path prefix), not {value!r}"
        )
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def load_config(instance_path: Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    overrides = dict(overrides or {})
    production = overrides.pop("PRODUCTION", _is_production())
    config: dict[str, Any] = {
        "PRODUCTION": production,
        "DATABASE_URL": os.environ.get("DATABASE_URL")
        or f"sqlite:///{instance_path / 'dispatch_pay.sqlite'}",
        "SECRET_KEY": os.environ.get("SECRET_KEY"),
        "STRIPE_SECRET_KEY": os.environ.get("STRIPE_SECRET_KEY") or None,
        "STRIPE_PUBLISHABLE_KEY": os.environ.get("STRIPE_PUBLISHABLE_KEY") or None,
        "STRIPE_WEBHOOK_SECRET": os.environ.get("STRIPE_WEBHOOK_SECRET") or None,
        "STRIPE_API_BASE": os.environ.get("STRIPE_API_BASE") or None,
        "STRIPE_TIMEOUT_SECONDS": float(
            os.environ.get("STRIPE_TIMEOUT_SECONDS") or STRIPE_TIMEOUT_SECONDS
        ),
        "STRIPE_NETWORK_RETRIES": int(
            os.environ.get("STRIPE_NETWORK_RETRIES") or STRIPE_NETWORK_RETRIES
        ),
        "REDIS_URL": os.environ.get("REDIS_URL") or None,
        "PASSWORD_HASH_METHOD": "scrypt",
        "MAX_CONTENT_LENGTH": 1024 * 1024,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": production or _env_flag("SESSION_COOKIE_SECURE"),
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": production or _env_flag("SESSION_COOKIE_SECURE"),
        # Number of reverse proxies in front of the app whose X-Forwarded-* to trust.
        "TRUSTED_PROXIES": int(os.environ.get("TRUSTED_PROXIES") or 0),
        "WTF_CSRF_TIME_LIMIT": None,
        "WTF_CSRF_HEADERS": ["X-CSRFToken", "X-CSRF-Token"],
        # Only a test that fuzzes the live app turns rate limits off (RATELIMIT_ENABLED=0).
        "RATELIMIT_ENABLED": os.environ.get("RATELIMIT_ENABLED", "1").strip().lower()
        not in {"0", "false", "no", "off"},
        "RATELIMIT_HEADERS_ENABLED": True,
        # If Redis goes away, each process keeps limiting in its own memory rather than
        # failing logins, sign-ups and top-ups; it returns to Redis when Redis is back.
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
        "API_PAGE_SIZE": 20,
        "SITE_NAME": "Dispatch",
        "PUBLIC_BASE_URL": os.environ.get("PUBLIC_BASE_URL") or None,
        # Unset: `send-mail` writes each message as an .eml file under instance/outbox/.
        "MAIL_URL": os.environ.get("MAIL_URL") or None,
        "MAIL_FROM": os.environ.get("MAIL_FROM") or "Dispatch <no-reply@localhost>",
        "MAIL_TIMEOUT_SECONDS": float(os.environ.get("MAIL_TIMEOUT_SECONDS") or 10),
        "SELLER_NAME": os.environ.get("SELLER_NAME") or None,
        "SELLER_ADDRESS": os.environ.get("SELLER_ADDRESS") or "",
        "SELLER_TAX_ID": os.environ.get("SELLER_TAX_ID") or "",
        "DEFAULT_ARTICLE_PRICE": {"amount": 39, "currency": DEFAULT_CURRENCY},
        "PUBLIC_CACHE_ENABLED": True,
        "PUBLIC_CACHE_MAX_AGE": 10,
        # Memory each process may spend on cached anonymous pages (keys, headers, bodies).
        "PUBLIC_CACHE_MAX_BYTES": int(os.environ.get("PUBLIC_CACHE_MAX_BYTES") or 64 * 1024 * 1024),
    }
    config.update(overrides)
    config["PUBLIC_BASE_URL"] = normalise_public_base_url(config["PUBLIC_BASE_URL"])
    if not config["SECRET_KEY"]:
        if production:
            raise ConfigurationError("SECRET_KEY must be set in production")
        config["SECRET_KEY"] = _development_secret(instance_path)
    config["SELLER_NAME"] = config["SELLER_NAME"] or config["SITE_NAME"]
    config.setdefault("RATELIMIT_STORAGE_URI", config["REDIS_URL"] or "memory://")
    return config
