"""The site's Ed25519 signing keys and compact JWS signatures (RFC 7515, alg EdDSA).

Keys live in the database so that every app process signs with the same key and no
key file has to be copied between servers; the newest key signs, and the public
halves of all keys stay published so that old manifests keep verifying.

jwcrypto signs: it implements EdDSA (RFC 8037) without deprecation warnings (joserfc
warns on "EdDSA" since RFC 9864 renamed it "Ed25519", but the contract names EdDSA,
which is what every JOSE library verifies today).
"""

from __future__ import annotations

import json
from typing import Any

from jwcrypto import jwk, jws
from sqlalchemy import select

from models import SigningKey, db

ALGORITHM = "EdDSA"


def _new_key() -> SigningKey:
    key = jwk.JWK.generate(kty="OKP", crv="Ed25519")
    kid = key.thumbprint()  # RFC 7638: the same key always has the same id
    public = {**key.export_public(as_dict=True), "kid": kid, "alg": ALGORITHM, "use": "sig"}
    private = {**key.export_private(as_dict=True), "kid": kid}
    return SigningKey(kid=kid, private_jwk=json.dumps(private), public_jwk=public)


def rotate_key() -> SigningKey:
    """Make a new key that signs from now on; the old ones stay published."""
    key = _new_key()
    db.session.add(key)
    db.session.flush()
    return key


def current_key() -> SigningKey:
    """The newest key, made on first use.

    Two processes signing their first manifest at once may each make one; both are
    published, so either signature verifies and the next manifest uses the newest.
    """
    return _newest() or rotate_key()


def _newest() -> SigningKey | None:
    return db.session.scalar(select(SigningKey).order_by(SigningKey.id.desc()).limit(1))


def sign_compact(payload: bytes) -> tuple[str, str]:
    """Sign bytes with the current key; returns the compact JWS and the key's id."""
    key = current_key()
    private = jwk.JWK(**json.loads(key.private_jwk))
    token = jws.JWS(payload)
    token.add_signature(
        private, None, json.dumps({"alg": ALGORITHM, "kid": key.kid}, separators=(",", ":"))
    )
    return str(token.serialize(compact=True)), key.kid


def key_set() -> dict[str, Any]:
    """The JWKS of every public key, newest first (no private member ever)."""
    keys = db.session.scalars(select(SigningKey).order_by(SigningKey.id.desc()))
    public = ("kty", "crv", "x", "kid", "alg", "use")
    return {"keys": [{k: v for k, v in key.public_jwk.items() if k in public} for key in keys]}
