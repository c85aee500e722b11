"""A buyer checks what they bought against the signed manifest, on the live site.

gunicorn (2 workers), localstripe, the demo data: a reader tops up with a card, buys a
dispatch through the API, recomputes both hashes from what the API returned and checks
the manifest's signature against the published keys with PyJWT (the app signs with
jwcrypto). Then the program printed on /verification is run exactly as the page shows it.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
import rfc8785

from tests.support import live as live_support
from tests.support.live import LiveSite
from tests.support.stripe_helpers import card_top_up

pytestmark = pytest.mark.e2e
live_site = live_support.live_site

SLUG = "harbour-cranes-go-electric"  # a $0.39 demo dispatch with quotes


@dataclass
class Answer:
    status_code: int
    json: Any
    text: str


class LiveClient:
    """Just enough of an HTTP client for JSON calls to the live site."""

    def __init__(self, base: str) -> None:
        self.base = base

    def request(
        self, method: str, path: str, json_body: Any = None, headers: dict[str, str] | None = None
    ) -> Answer:
        data = json.dumps(json_body).encode() if json_body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        for name, value in {**(headers or {}), "Content-Type": "application/json"}.items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                status, raw = response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read().decode()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        return Answer(status, parsed, raw)

    def get(self, path: str, headers: dict[str, str] | None = None) -> Answer:
        return self.request("GET", path, headers=headers)

    def post(self, path: str, json: Any = None, headers: dict[str, str] | None = None) -> Answer:
        return self.request("POST", path, json, headers)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def new_reader(api: LiveClient, email: str) -> str:
    answer = api.post("/api/v1/readers", json={"email": email, "password": "a long password 1"})
    assert answer.status_code == 201, answer.text
    return str(answer.json["token"])


def test_a_buyer_checks_text_report_and_signature(live_site: LiveSite) -> None:
    api = LiveClient(live_site.base)
    token = new_reader(api, "checker@example.com")
    auth = {"Authorization": f"Bearer {token}"}
    card_top_up(api, live_site.stripe.base, token, 500)
    bought = api.post(f"/api/v1/articles/{SLUG}/purchase", headers=auth)
    assert bought.status_code == 201, bought.text

    article = api.get(f"/api/v1/articles/{SLUG}", headers=auth).json
    signed = api.get(f"/api/v1/articles/{SLUG}/manifest").json
    jwks = api.get("/.well-known/dispatch-keys.json").json
    header = jwt.get_unverified_header(signed["jws"])
    assert header["alg"] == "EdDSA"
    key = jwt.PyJWKSet.from_dict(jwks)[header["kid"]]
    manifest = json.loads(jwt.api_jws.decode(signed["jws"], key.key, algorithms=["EdDSA"]))

    assert manifest == signed["manifest"]
    assert manifest["article"] == SLUG
    assert sha256(article["body"].encode("utf-8")) == manifest["text_sha256"]
    assert sha256(rfc8785.dumps(article["verification"])) == manifest["report_sha256"]
    counts = article["verification"]["counts"]
    assert manifest["verdicts"] == {k: counts[k] for k in manifest["verdicts"]}
    # The demo's claims carry quotes, and the owner's page marks them.
    assert all(c.get("quote") for c in article["verification"]["claims"])


def snippet_from_page(site: LiveSite) -> str:
    page = LiveClient(site.base).get("/verification").text
    match = re.search(r'<code id="check-snippet">(.*?)</code>', page, re.S)
    assert match, "no program on /verification"
    return html.unescape(match.group(1))


def test_the_program_on_the_verification_page_checks_a_manifest(
    live_site: LiveSite, tmp_path: Path
) -> None:
    program = tmp_path / "check.py"
    program.write_text(snippet_from_page(live_site))
    api = LiveClient(live_site.base)
    token = new_reader(api, "snippet@example.com")
    card_top_up(api, live_site.stripe.base, token, 500)
    assert api.post(
        f"/api/v1/articles/{SLUG}/purchase", headers={"Authorization": f"Bearer {token}"}
    ).status_code in (200, 201)

    env = {k: v for k, v in os.environ.items() if k != "DISPATCH_TOKEN"}
    anonymous = subprocess.run(
        [sys.executable, str(program), SLUG], env=env, capture_output=True, text=True, timeout=60
    )
    assert anonymous.returncode == 0, anonymous.stderr
    assert "signature valid" in anonymous.stdout
    assert "text and report match" not in anonymous.stdout

    buyer = subprocess.run(
        [sys.executable, str(program), SLUG],
        env={**env, "DISPATCH_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert buyer.returncode == 0, buyer.stderr
    assert "text and report match the manifest" in buyer.stdout

    # The same program fails on a manifest it was not given: point it at another slug's
    # text while checking this one's manifest (what a tampered copy would look like).
    tampered = program.read_text().replace(
        'article = get(f"/api/v1/articles/{slug}", token)',
        'article = get(f"/api/v1/articles/{slug}", token); article["body"] += " "',
    )
    assert tampered != program.read_text()
    program.write_text(tampered)
    caught = subprocess.run(
        [sys.executable, str(program), SLUG],
        env={**env, "DISPATCH_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert caught.returncode != 0 and "the text is not the signed one" in caught.stderr
