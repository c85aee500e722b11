"""A contradicted live report withdraws the article in every process within one request.

Two gunicorn servers (two workers each) share one database: the publishing pipeline
replaces the live report through one, and the very next requests to every worker of
the other, whose public caches were warm, no longer list, show or sell the article;
its buyer still reads it, with the correction.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cross_process import http_call as _http
from tests.support.cross_process import publisher_token as _publisher_token
from tests.support.cross_process import shared_database
from tests.support.factories import claims
from tests.support.servers import AppServer

pytestmark = pytest.mark.e2e
__all__ = ["shared_database"]  # the fixture, used by name below

BODY = "The harbour halved its diesel use. Words only buyers may read.\n"
SLUG = "withdrawn-everywhere"


def test_a_contradicted_report_withdraws_everywhere_at_once(
    shared_database: str, artifacts: Path
) -> None:
    env = {"DATABASE_URL": shared_database, "SECRET_KEY": "cross-process-test-secret"}
    token = _publisher_token(shared_database)
    writer = AppServer(artifacts, env, name="withdraw-writer")
    reader = AppServer(artifacts, env, name="withdraw-reader")
    writer.start()
    reader.start()
    try:
        api = f"{writer.base}/api/v1/articles"
        article = {
            "title": "Withdrawn everywhere",
            "slug": SLUG,
            "teaser": "A teaser.",
            "body": BODY,
            "price": {"amount": 0, "currency": "usd"},  # free: anyone reads, no wallet needed
        }
        assert _http("POST", api, article, token)[0] == 201
        report = {"verifier": "x", "checked_at": "2026-11-20T00:00:00Z"}
        clean = {**report, "claims": claims("supported")}
        assert _http("PUT", f"{api}/{SLUG}/verification", clean, token)[0] == 200
        assert _http("POST", f"{api}/{SLUG}/publish", None, token)[0] == 200

        public = [
            f"{reader.base}/",
            f"{reader.base}/articles/{SLUG}",
            f"{reader.base}/api/v1/articles",
            f"{reader.base}/api/v1/articles/{SLUG}/manifest",
            f"{reader.base}/feed.xml",
            f"{reader.base}/sitemap.xml",
        ]
        hits = 0
        for _ in range(6):  # warm both workers of the reading server
            for url in public:
                status, headers, text = _http("GET", url)
                assert status == 200 and (SLUG in text or "manifest" in url), url
                hits += headers.get("X-Dispatch-Cache") == "hit"
        assert hits > 0, "the reading server never served from its cache"

        contradicted = {**report, "claims": claims("supported", "contradicted")}
        status, _, answer = _http("PUT", f"{api}/{SLUG}/verification", contradicted, token)
        assert status == 200, answer
        for _ in range(6):  # at once: no wait, no retry, every worker
            for url in public:
                status, _, text = _http("GET", url)
                if url.endswith(SLUG) or url.endswith("/manifest"):
                    assert status == 404, url
                else:
                    assert status == 200 and SLUG not in text, url
        # The publisher still sees it, with the correction; publishing again is refused.
        status, _, text = _http("GET", f"{reader.base}/api/v1/articles/{SLUG}", token=token)
        assert status == 200
        full = json.loads(text)
        assert full["body"] == BODY and "Taken off sale" in full["corrections"][0]["what"]
        assert _http("POST", f"{api}/{SLUG}/publish", None, token)[0] == 409
    finally:
        writer.stop()
        reader.stop()
