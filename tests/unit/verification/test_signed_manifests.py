"""Signed manifests: anyone checks them with a standard JOSE library the app does not use.

The app signs with jwcrypto; these tests verify with PyJWT, from the published JWKS only.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
from typing import Any

import jwt
import pytest
import rfc8785
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete, select

from dispatch_pay.verification.manifests import canonical_json
from models import Manifest, SigningKey, db
from tests.support.factories import bearer, claims, grant, make_article, make_token, make_user
from tests.support.web import assert_error, log_in

MANIFEST_FIELDS = {
    "article",
    "revision",
    "text_sha256",
    "report_sha256",
    "verdicts",
    "verifier",
    "checked_at",
    "published_at",
    "previous",
}


@pytest.fixture()
def editor() -> dict[str, str]:
    return bearer(make_token(make_user(role="publisher")))


def report(*verdicts: str, **extra: Any) -> dict[str, Any]:
    return {
        "verifier": "v2",
        "checked_at": "2026-11-25T10:00:00+02:00",
        "claims": claims(*verdicts),
        **extra,
    }


def verify(compact: str, jwks: dict[str, Any]) -> dict[str, Any]:
    """Check a compact JWS against a JWKS with PyJWT, as any outsider would."""
    header = jwt.get_unverified_header(compact)
    assert header["alg"] == "EdDSA"
    key = jwt.PyJWKSet.from_dict(jwks)[header["kid"]]
    payload: dict[str, Any] = json.loads(jwt.api_jws.decode(compact, key.key, algorithms=["EdDSA"]))
    return payload


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_sign_rotate_sign_and_both_verify_from_the_published_keys(
    app: Flask, client: FlaskClient, editor: dict[str, str]
) -> None:
    article = make_article(verdicts=("supported", "weak"))
    first = client.get(f"/api/v1/articles/{article.slug}/manifest").get_json()

    result = app.test_cli_runner().invoke(args=["signing-key", "rotate"])
    assert result.exit_code == 0, result.output
    put = client.put(
        f"/api/v1/articles/{article.slug}/verification",
        json=report("supported", "unverified"),
        headers=editor,
    )
    assert put.status_code == 200, put.get_json()
    second = client.get(f"/api/v1/articles/{article.slug}/manifest").get_json()

    response = client.get("/.well-known/dispatch-keys.json")
    assert response.status_code == 200
    jwks = response.get_json()
    assert len(jwks["keys"]) == 2
    for key in jwks["keys"]:
        assert set(key) == {"kty", "crv", "x", "kid", "alg", "use"}  # never "d"
        assert (key["kty"], key["crv"], key["alg"]) == ("OKP", "Ed25519", "EdDSA")
    first_kid = jwt.get_unverified_header(first["jws"])["kid"]
    second_kid = jwt.get_unverified_header(second["jws"])["kid"]
    assert first_kid != second_kid
    assert {first_kid, second_kid} == {k["kid"] for k in jwks["keys"]}

    assert verify(first["jws"], jwks) == first["manifest"]
    assert verify(second["jws"], jwks) == second["manifest"]
    assert set(first["manifest"]) == MANIFEST_FIELDS
    assert first["manifest"]["previous"] is None
    assert second["manifest"]["previous"] == sha256(first["jws"].encode())
    assert second["manifest"]["verdicts"] == {
        "supported": 1,
        "weak": 0,
        "unverified": 1,
        "contradicted": 0,
    }
    # The payload is the manifest's RFC 8785 form, byte for byte.
    payload = first["jws"].split(".")[1]
    assert base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)) == rfc8785.dumps(
        first["manifest"]
    )
    # A signature by the old key does not pass as the new key's.
    old_key = jwt.PyJWKSet.from_dict(jwks)[first_kid]
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.api_jws.decode(second["jws"], old_key.key, algorithms=["EdDSA"])


def flip_one_byte(text: str, at: int) -> str:
    return text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1 :]


def test_the_buyer_recomputes_both_hashes_and_one_changed_byte_fails(
    client: FlaskClient,
) -> None:
    article = make_article(body="Ünïcode text — and a second sentence.\n", verdicts=("weak",))
    reader = make_user()
    grant(reader, article)
    full = client.get(f"/api/v1/articles/{article.slug}", headers=bearer(make_token(reader)))
    data = full.get_json()
    signed = client.get(f"/api/v1/articles/{article.slug}/manifest").get_json()
    jwks = client.get("/.well-known/dispatch-keys.json").get_json()
    manifest = verify(signed["jws"], jwks)

    assert sha256(data["body"].encode("utf-8")) == manifest["text_sha256"]
    assert sha256(rfc8785.dumps(data["verification"])) == manifest["report_sha256"]
    assert manifest["checked_at"] == data["verification"]["checked_at"]

    # One byte of the text, of the report, or of the signed manifest: no longer checks out.
    assert sha256(flip_one_byte(data["body"], 3).encode()) != manifest["text_sha256"]
    tampered_report = json.loads(json.dumps(data["verification"]))
    tampered_report["claims"][0]["note"] = flip_one_byte(tampered_report["claims"][0]["note"], 0)
    assert sha256(rfc8785.dumps(tampered_report)) != manifest["report_sha256"]
    head, payload, signature = signed["jws"].split(".")
    raw = bytearray(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    raw[raw.index(b"1")] = ord("2")  # e.g. a verdict count or a hash digit
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(jwt.InvalidSignatureError):
        verify(f"{head}.{forged}.{signature}", jwks)
    with pytest.raises(jwt.InvalidSignatureError):
        verify(f"{head}.{payload}.{flip_one_byte(signature, 5)}", jwks)


def test_full_get_answers_the_markdown_body_and_the_teaser_never_does(
    client: FlaskClient,
) -> None:
    article = make_article(body="A *paid* sentence.\n")
    reader = make_user()
    grant(reader, article)
    full = client.get(f"/api/v1/articles/{article.slug}", headers=bearer(make_token(reader)))
    assert full.get_json()["body"] == "A *paid* sentence.\n"
    locked = client.get(f"/api/v1/articles/{article.slug}")
    assert locked.status_code == 402 and "paid" not in locked.get_data(as_text=True)


def test_manifest_404_for_drafts_unknown_and_withdrawn_except_to_buyers(
    client: FlaskClient, editor: dict[str, str]
) -> None:
    draft = make_article(published=False)
    assert_error(client.get(f"/api/v1/articles/{draft.slug}/manifest"), 404, "not_found")
    # Even its publisher: a draft has no published state to sign.
    assert client.get(f"/api/v1/articles/{draft.slug}/manifest", headers=editor).status_code == 404
    assert_error(client.get("/api/v1/articles/no-such-thing/manifest"), 404, "not_found")

    article = make_article()
    buyer = make_user()
    grant(buyer, article)
    assert client.get(f"/api/v1/articles/{article.slug}/manifest").status_code == 200
    assert (
        client.put(
            f"/api/v1/articles/{article.slug}/verification",
            json=report("supported", "contradicted"),
            headers=editor,
        ).status_code
        == 200
    )
    assert_error(client.get(f"/api/v1/articles/{article.slug}/manifest"), 404, "not_found")
    stranger = bearer(make_token(make_user()))
    assert (
        client.get(f"/api/v1/articles/{article.slug}/manifest", headers=stranger).status_code == 404
    )
    mine = client.get(
        f"/api/v1/articles/{article.slug}/manifest", headers=bearer(make_token(buyer))
    )
    assert mine.status_code == 200
    assert mine.get_json()["manifest"]["verdicts"]["contradicted"] == 1


def test_the_chain_is_append_only_and_every_change_is_a_correction(
    client: FlaskClient, editor: dict[str, str]
) -> None:
    article = make_article(body="First text.\n", verdicts=("supported",))
    slug = article.slug
    api = f"/api/v1/articles/{slug}"
    # The same report again changes nothing: no new manifest, no correction.
    same = {
        "verifier": "test-verifier",
        "checked_at": "2026-11-01T00:00:00Z",
        "claims": claims("supported"),
    }
    assert client.put(f"{api}/verification", json=same, headers=editor).status_code == 200
    assert client.put(f"{api}/verification", json=report("weak"), headers=editor).status_code == 200
    assert client.patch(api, json={"body": "Second text.\n"}, headers=editor).status_code == 200
    assert (
        client.put(f"{api}/verification", json=report("supported"), headers=editor).status_code
        == 200
    )
    assert client.post(f"{api}/publish", headers=editor).status_code == 200
    assert client.post(f"{api}/publish", headers=editor).status_code == 200  # no change
    assert client.post(f"{api}/unpublish", headers=editor).status_code == 200
    assert client.post(f"{api}/publish", headers=editor).status_code == 200

    chain = list(
        db.session.scalars(
            select(Manifest).where(Manifest.article_id == article.id).order_by(Manifest.sequence)
        )
    )
    assert [m.sequence for m in chain] == [1, 2, 3, 4, 5]
    for before, after in itertools.pairwise(chain):
        assert after.payload["previous"] == sha256(before.jws.encode())
    assert [m.payload["revision"] for m in chain] == [1, 1, 2, 2, 2]

    data = client.get(api, headers=editor).get_json()
    whats = [c["what"] for c in data["corrections"]]
    assert whats == [
        "Back on sale (revision 2).",
        "Taken off sale by the publisher.",
        "Revision 2 published: the text changed.",
        "Verifier report replaced: 1 weak.",
    ]
    ats = [c["at"] for c in data["corrections"]]
    assert ats == sorted(ats, reverse=True)
    # The page lists them too, newest first.
    page = client.get(f"/articles/{slug}", headers=editor).get_data(as_text=True)
    assert page.index("Back on sale") < page.index("Verifier report replaced")


def test_keys_are_made_on_first_use_and_the_private_half_is_never_served(
    client: FlaskClient,
) -> None:
    db.session.execute(delete(Manifest))
    db.session.execute(delete(SigningKey))
    db.session.commit()
    assert client.get("/.well-known/dispatch-keys.json").get_json() == {"keys": []}
    article = make_article()
    keys = client.get("/.well-known/dispatch-keys.json")
    assert len(keys.get_json()["keys"]) == 1
    assert keys.mimetype == "application/jwk-set+json"
    key = db.session.scalar(select(SigningKey))
    assert key is not None
    private_d = json.loads(key.private_jwk)["d"]
    for path in (
        "/.well-known/dispatch-keys.json",
        f"/api/v1/articles/{article.slug}/manifest",
        "/verification",
    ):
        assert private_d not in client.get(path).get_data(as_text=True)


def test_report_hash_is_over_the_canonical_json_of_the_full_get() -> None:
    # RFC 8785: sorted keys, no whitespace, UTF-8 as is (no \\u escapes), integers plain.
    assert canonical_json({"b": 1, "a": ["é", {"d": None, "c": True}]}) == (
        '{"a":["é",{"c":true,"d":null}],"b":1}'.encode()
    )


def test_the_dashboard_shows_the_chain_and_downloads_a_manifest(
    client: FlaskClient, editor: dict[str, str]
) -> None:
    article = make_article(verdicts=("supported",))
    client.put(f"/api/v1/articles/{article.slug}/verification", json=report("weak"), headers=editor)
    publisher = make_user(role="publisher")
    log_in(client, publisher)
    page = client.get(f"/publisher/articles/{article.slug}").get_data(as_text=True)
    assert 'id="manifests"' in page and 'id="manifest-1"' in page and 'id="manifest-2"' in page
    assert "Verifier report replaced: 1 weak." in page
    download = client.get(f"/publisher/articles/{article.slug}/manifests/2.json")
    assert download.status_code == 200
    assert "attachment" in download.headers["Content-Disposition"]
    document = download.get_json()
    jwks = client.get("/.well-known/dispatch-keys.json").get_json()
    assert verify(document["jws"], jwks) == document["manifest"]
    assert client.get(f"/publisher/articles/{article.slug}/manifests/3.json").status_code == 404
    # Readers get no dashboard download.
    client.get("/logout")
    reader = make_user()
    log_in(client, reader)
    assert client.get(f"/publisher/articles/{article.slug}/manifests/1.json").status_code == 403


def test_an_article_published_before_manifests_gets_its_first_on_request(
    client: FlaskClient,
) -> None:
    article = make_article()
    db.session.execute(delete(Manifest).where(Manifest.article_id == article.id))
    db.session.commit()
    signed = client.get(f"/api/v1/articles/{article.slug}/manifest")
    assert signed.status_code == 200
    jwks = client.get("/.well-known/dispatch-keys.json").get_json()
    manifest = verify(signed.get_json()["jws"], jwks)
    assert manifest["previous"] is None and manifest["revision"] == 1
    again = client.get(f"/api/v1/articles/{article.slug}/manifest").get_json()
    assert again["jws"] == signed.get_json()["jws"]  # made once, then served
