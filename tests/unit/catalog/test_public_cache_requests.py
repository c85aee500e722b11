"""Nothing of one request is stored into another's answer (issue 11.12).

A cached page is served with the request id of the request that receives it, never the
one that rendered it; each hit is logged as a JSON request line; only headers that
describe the page are stored with it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, Response
from flask.testing import FlaskClient
from sqlalchemy import Engine
from werkzeug.test import TestResponse

from dispatch_pay import create_app
from tests.conftest import IsolatedClient
from tests.conftest import test_config as app_config
from tests.support.factories import make_article

# Date is the server's (gunicorn adds it to every answer); a stored one would be stale.
PER_REQUEST = ("X-Request-ID", "X-Dispatch-Cache", "Date")


def anon(client: FlaskClient, path: str, **headers: str) -> TestResponse:
    client._cookies.clear()
    return client.get(path, headers={k.replace("_", "-"): v for k, v in headers.items()})


def request_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]
    return [entry for entry in lines if entry.get("logger") == "dispatch_pay.request"]


def paths(slug: str) -> list[str]:
    return [f"/articles/{slug}", f"/api/v1/articles/{slug}", "/api/v1/articles", "/", "/feed.xml"]


def test_a_cached_page_never_repeats_the_request_id_that_rendered_it(client: FlaskClient) -> None:
    article = make_article()
    for path in paths(article.slug):
        first = anon(client, path, X_Request_ID="attacker-chosen-id-1")
        assert first.headers["X-Request-ID"] == "attacker-chosen-id-1"
        plain = anon(client, path)
        assert plain.headers.get("X-Dispatch-Cache") == "hit", path
        assert plain.headers["X-Request-ID"] != "attacker-chosen-id-1", path
        assert len(plain.headers.getlist("X-Request-ID")) == 1
        mine = anon(client, path, X_Request_ID="lb-42:7")
        assert mine.headers.get("X-Dispatch-Cache") == "hit"
        assert mine.headers["X-Request-ID"] == "lb-42:7"
        odd = anon(client, path, X_Request_ID="<script>")
        assert odd.headers["X-Request-ID"] not in (
            "<script>",
            "lb-42:7",
            plain.headers["X-Request-ID"],
        )


def test_a_not_modified_answer_from_the_cache_has_its_own_request_id(client: FlaskClient) -> None:
    article = make_article()
    path = f"/articles/{article.slug}"
    etag = anon(client, path, X_Request_ID="first-1").headers["ETag"]
    response = anon(client, path, If_None_Match=etag, X_Request_ID="second-2")
    assert response.status_code == 304
    assert response.headers["X-Request-ID"] == "second-2"


def test_cache_hits_are_logged_as_request_lines(
    client: FlaskClient, capsys: pytest.CaptureFixture[str]
) -> None:
    article = make_article()
    path = f"/api/v1/articles/{article.slug}"
    anon(client, path)
    capsys.readouterr()
    anon(client, path, X_Request_ID="hit-id-3")
    etag_page = f"/articles/{article.slug}"
    etag = anon(client, etag_page).headers["ETag"]
    anon(client, etag_page, If_None_Match=etag)
    lines = request_lines(capsys)
    assert [(e["path"], e["status"], e["cache"]) for e in lines] == [
        (path, 402, "hit"),
        (etag_page, 200, "miss"),
        (etag_page, 304, "hit"),
    ]
    hit = lines[0]
    assert hit["request_id"] == "hit-id-3" and hit["method"] == "GET"
    assert hit["level"] == "info" and hit["user_id"] is None
    assert isinstance(hit["duration_ms"], float | int) and hit["duration_ms"] >= 0
    assert "?" not in hit["path"]


def test_a_hit_carries_the_pages_headers_and_nothing_of_the_rendering_request(
    client: FlaskClient,
) -> None:
    article = make_article()
    for path in paths(article.slug):
        miss = anon(client, path)
        hit = anon(client, path)
        assert hit.headers.get("X-Dispatch-Cache") == "hit"
        assert sorted((k, v) for k, v in hit.headers if k not in PER_REQUEST) == sorted(
            (k, v) for k, v in miss.headers if k not in PER_REQUEST
        ), path


@pytest.fixture(scope="module")
def leaky_app(backend: tuple[str, Engine]) -> Flask:
    """An app whose every answer also carries per-request headers (as rate limits do)."""
    _kind, engine = backend
    app = create_app(app_config(engine.url.render_as_string(hide_password=False)))
    app.test_client_class = IsolatedClient
    seen = iter(range(1, 1_000_000))

    @app.after_request
    def _per_request(response: Response) -> Response:
        response.headers["X-RateLimit-Remaining"] = str(next(seen))
        response.headers["X-Session-Hint"] = "for-this-request-only"
        return response

    return app


@pytest.fixture()
def leaky(leaky_app: Flask, db_connection: Any) -> Iterator[FlaskClient]:
    with leaky_app.app_context():
        yield leaky_app.test_client()


def test_headers_outside_the_pages_own_are_never_stored(leaky: FlaskClient) -> None:
    article = make_article()
    path = f"/articles/{article.slug}"
    assert anon(leaky, path).headers["X-RateLimit-Remaining"]
    hit = anon(leaky, path)
    assert hit.headers.get("X-Dispatch-Cache") == "hit"
    assert "X-RateLimit-Remaining" not in hit.headers
    assert "X-Session-Hint" not in hit.headers


@pytest.fixture(scope="module")
def varying_app(backend: tuple[str, Engine]) -> Flask:
    """An app whose public pages say they vary on a header the cache does not key on."""
    _kind, engine = backend
    app = create_app(app_config(engine.url.render_as_string(hide_password=False)))
    app.test_client_class = IsolatedClient

    @app.after_request
    def _vary(response: Response) -> Response:
        response.vary.add("Accept-Language")
        return response

    return app


def test_a_page_that_varies_on_other_request_headers_is_not_stored(
    varying_app: Flask, db_connection: Any
) -> None:
    article = make_article()
    with varying_app.app_context():
        client = varying_app.test_client()
        anon(client, f"/articles/{article.slug}")
        again = anon(client, f"/articles/{article.slug}")
    assert again.headers.get("X-Dispatch-Cache") is None
