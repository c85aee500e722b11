"""Secrets in URLs (gift links, private feeds): 256 bits, kept hashed, compared in constant time.

A secret is HMAC-SHA256(SECRET_KEY, purpose + nonce): the owner can be shown it again,
and a copy of the database alone neither holds nor yields it. Rows are found by the
secret's SHA-256, then compared with `hmac.compare_digest`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from flask import current_app

SECRET_LENGTH = 43  # url-safe base64 of 32 bytes, unpadded


def new_nonce() -> str:
    return secrets.token_hex(32)


def derive_secret(purpose: str, nonce: str) -> str:
    key = str(current_app.config["SECRET_KEY"]).encode()
    digest = hmac.new(key, f"{purpose}:{nonce}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def well_formed(secret: str) -> bool:
    """Cheap refusal of what cannot be a secret, before any query."""
    return len(secret) == SECRET_LENGTH and all(
        c.isascii() and (c.isalnum() or c in "-_") for c in secret
    )


def matches(stored_hash: str, secret: str) -> bool:
    return hmac.compare_digest(stored_hash, secret_hash(secret))
