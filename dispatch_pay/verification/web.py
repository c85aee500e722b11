"""The site's public signing keys, for anyone checking a manifest."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from dispatch_pay.verification.schemas import KeySetSchema
from dispatch_pay.verification.signing import key_set

bp = Blueprint("verification", __name__)
KEY_SET = KeySetSchema()
JWKS_PATH = "/.well-known/dispatch-keys.json"


@bp.get(JWKS_PATH)
def signing_keys() -> Response:
    """Every public key that ever signed a manifest (RFC 7517 JWK Set), newest first."""
    response = jsonify(KEY_SET.dump(key_set()))
    response.mimetype = "application/jwk-set+json"
    # Short: a verifier that fetched the set just before a rotation sees the new key soon.
    response.headers["Cache-Control"] = "public, max-age=60"
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response
