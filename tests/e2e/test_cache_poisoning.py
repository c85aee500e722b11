"""Live: no request header puts another origin into a page someone else receives (issue 11.1).

gunicorn with two workers behind one trusted proxy (TRUSTED_PROXIES=1), PostgreSQL when
TEST_DATABASE_URL is set, localstripe. An attacker sends `X-Forwarded-Host`,
`X-Forwarded-Proto` and `X-Request-ID` often enough to prime both workers' caches; a
plain visitor then must get the site's own origin and an id of their own.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.support.live import LiveSite, running_site
from tests.support.web import links_outside, public_page_paths

pytestmark = pytest.mark.e2e

PUBLIC = "https://news.example"
EVIL = "evil.example"
FORGED = {"X-Forwarded-Host": EVIL, "X-Request-ID": "attacker-request-1"}
# gunicorn itself takes X-Forwarded-Proto from loopback peers (forwarded_allow_ips), so
# the scheme is forged separately: a page keyed on the forged scheme is another entry.
FORGED_ORIGIN = {**FORGED, "X-Forwarded-Proto": "https", "X-Forwarded-Port": "8443"}
ROUNDS = 8  # the attack's count: enough for both workers to render and store the page


@dataclass
class Answer:
    status: int
    body: str
    headers: dict[str, str]


def fetch(site: LiveSite, path: str, headers: dict[str, str] | None = None) -> Answer:
    request = urllib.request.Request(site.url(path), headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return Answer(response.status, response.read().decode(), dict(response.headers))
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, exc.read().decode(), dict(exc.headers))


def paid_slug(site: LiveSite) -> str:
    listing = json.loads(fetch(site, "/api/v1/articles").body)["articles"]
    return next(a["slug"] for a in listing if a["price"]["amount"] > 0)


@pytest.fixture(scope="module")
def proxied_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSite]:
    env = {"TRUSTED_PROXIES": "1"}
    with running_site(tmp_path_factory.mktemp("proxied"), env=env) as site:
        yield site


@pytest.fixture(scope="module")
def based_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSite]:
    env = {"TRUSTED_PROXIES": "1", "PUBLIC_BASE_URL": PUBLIC}
    with running_site(tmp_path_factory.mktemp("based"), env=env) as site:
        yield site


def prime_then_visit(site: LiveSite, path: str) -> list[Answer]:
    for _ in range(ROUNDS):
        assert fetch(site, path, FORGED).status in (200, 402), path
        assert fetch(site, path, FORGED_ORIGIN).status in (200, 402), path
    return [fetch(site, path) for _ in range(ROUNDS)]


def test_forged_forwarded_headers_reach_only_their_sender(proxied_site: LiveSite) -> None:
    slug = paid_slug(proxied_site)
    for path in public_page_paths(slug):
        visits = prime_then_visit(proxied_site, path)
        for visit in visits:
            assert visit.status in (200, 402), path
            assert EVIL not in visit.body, path
            assert visit.headers["X-Request-ID"] != FORGED["X-Request-ID"], path
        assert any(v.headers.get("X-Dispatch-Cache") == "hit" for v in visits), path


def test_with_public_base_url_every_visitor_gets_the_public_origin(based_site: LiveSite) -> None:
    slug = paid_slug(based_site)
    for path in public_page_paths(slug):
        visits = prime_then_visit(based_site, path)
        # One entry for everybody: the forged requests filled it, visitors hit it.
        assert any(v.headers.get("X-Dispatch-Cache") == "hit" for v in visits), path
        for visit in visits:
            assert EVIL not in visit.body, path
            assert visit.headers["X-Request-ID"] != FORGED["X-Request-ID"], path
            assert links_outside(visit.body, PUBLIC) == [], path
    offer = fetch(based_site, f"/api/v1/articles/{slug}", FORGED_ORIGIN).body
    assert f'"purchase_url":"{PUBLIC}/api/v1/articles/{slug}/purchase"' in offer.replace(" ", "")
