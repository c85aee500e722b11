"""The public cache stays within its memory budget whatever URLs it is sent (issue 11.6).

Keys hold only the query parameters a view reads (noise such as `?utm_source=…` neither
misses nor fills the cache), and the budget counts what an entry really holds: key,
headers and body. A flood of 20,000 distinct URLs is measured with tracemalloc, which
counts the bytes Python allocates in this process, whatever the machine's load.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine
from werkzeug.test import TestResponse

from dispatch_pay import create_app
from dispatch_pay.catalog import public_cache
from dispatch_pay.catalog.public_cache import PUBLIC_KEY, AnonymousPageCache
from tests.conftest import IsolatedClient
from tests.conftest import test_config as app_config
from tests.support.factories import make_article

BUDGET = 1024 * 1024
FLOOD = 20_000
NOISE = "x" * 3_900  # the attack's 3.9 KB query strings


def anon(client: FlaskClient, path: str) -> TestResponse:
    client._cookies.clear()
    return client.get(path)


def cache_of(app: Flask) -> AnonymousPageCache:
    cache = app.extensions["public_cache"]
    assert isinstance(cache, AnonymousPageCache)
    return cache


@pytest.fixture(scope="module")
def small_app(backend: tuple[str, Engine]) -> Flask:
    _kind, engine = backend
    app = create_app(
        app_config(engine.url.render_as_string(hide_password=False), PUBLIC_CACHE_MAX_BYTES=BUDGET)
    )
    app.test_client_class = IsolatedClient
    return app


@pytest.fixture()
def small(small_app: Flask, db_connection: Any) -> Iterator[FlaskClient]:
    with small_app.app_context():
        yield small_app.test_client()


@pytest.mark.parametrize(
    ("first", "same"),
    [
        ("/api/v1/articles", "/api/v1/articles?utm_source=news&fbclid=abc"),
        ("/api/v1/articles?page=1", "/api/v1/articles?page=01&x=" + NOISE),
        ("/api/v1/articles?per_page=5&page=2", "/api/v1/articles?page=2&per_page=5&page=9"),
        ("/?page=2", "/?page=0002&ref=twitter"),
        ("/?page=1", "/?page=%EF%BC%91"),  # a full-width digit one, as int() reads it
        ("/?page=3", "/?page=+3"),
        ("/feed.xml", "/feed.xml?" + NOISE),
        ("/sitemap.xml", "/sitemap.xml?a=1&b=2"),
        ("/verification", "/verification?q=" + NOISE),
        ("/articles/{slug}", "/articles/{slug}?from=newsletter"),
        ("/api/v1/articles/{slug}", "/api/v1/articles/{slug}?include=body&" + NOISE),
    ],
)
def test_unknown_query_parameters_neither_miss_nor_fill_the_cache(
    small: FlaskClient, small_app: Flask, first: str, same: str
) -> None:
    slug = make_article().slug
    first, same = first.format(slug=slug), same.format(slug=slug)
    rendered = anon(small, first)
    assert rendered.status_code in (200, 402)
    entries = len(cache_of(small_app).entries)
    again = anon(small, same)
    assert again.headers.get("X-Dispatch-Cache") == "hit", same
    assert again.get_data() == rendered.get_data()
    assert len(cache_of(small_app).entries) == entries


def test_the_view_sees_only_the_parameters_the_key_holds(small: FlaskClient) -> None:
    for _ in range(3):
        make_article()
    page = anon(small, "/api/v1/articles?per_page=2&page=2&per_page=50").get_json()
    assert (page["page"], page["per_page"]) == (2, 2)
    assert anon(small, "/api/v1/articles?page=abc").status_code == 422  # never stored
    assert anon(small, "/api/v1/articles?page=abc").headers.get("X-Dispatch-Cache") is None


class RecordedPage:
    """A WSGI app answering every request with a real page of this app, a body of its
    own per URL, and the mark a view sets on public answers: the cache alone, measured
    without Flask, the database or pytest's log capture allocating alongside it."""

    def __init__(self, response: TestResponse) -> None:
        self.status = response.status
        self.headers = [(k, v) for k, v in response.headers if k != "Content-Length"]
        self.body = response.get_data()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ[PUBLIC_KEY] = True
        body = self.body + environ["QUERY_STRING"].encode()
        start_response(self.status, [*self.headers, ("Content-Length", str(len(body)))])
        return [body]


def recorded_cache(small: FlaskClient, path: str, budget: int = BUDGET) -> AnonymousPageCache:
    recorded = RecordedPage(anon(small, path))
    assert recorded.status.startswith(("200", "402")) and "X-Request-ID" in dict(recorded.headers)
    return AnonymousPageCache(recorded, ("session",), budget, lambda: 1, fixed_origin=False)


@pytest.fixture()
def quiet_hits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hits log a line each; pytest keeps every log record in memory, production does not."""
    monkeypatch.setattr(public_cache, "log_request", lambda fields: None)


def request_to(cache: AnonymousPageCache, url: str) -> int:
    path, _, query = url.partition("?")
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SCRIPT_NAME": "",
        "SERVER_NAME": "dispatch.test",
        "SERVER_PORT": "80",
        "HTTP_HOST": "dispatch.test",
        "wsgi.url_scheme": "http",
        "REMOTE_ADDR": "127.0.0.1",
    }
    statuses: list[str] = []
    body = b"".join(cache(environ, lambda status, headers, exc=None: statuses.append(status)))
    assert body
    return int(statuses[0].split(" ", 1)[0])


def test_the_budget_counts_what_an_entry_really_holds(small: FlaskClient) -> None:
    """Counted bytes cover the real allocation of the stored key, headers and body."""
    make_article()
    cache = recorded_cache(small, "/api/v1/articles?page=1", budget=16 * BUDGET)
    request_to(cache, "/api/v1/articles?page=1")  # warm up
    cache.clear()
    gc.collect()
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        for page in range(2, 502):
            request_to(cache, f"/api/v1/articles?page={page}&{NOISE}={page}")
        gc.collect()
        end, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(cache.entries) == 500
    assert cache.size >= end - start, (cache.size, end - start)


@pytest.mark.parametrize(
    "page",
    [
        "/?page=1",  # every URL a page of its own: 20,000 entries through the budget
        "/api/v1/articles/{slug}",  # every URL the same page: one entry, 19,999 hits
    ],
)
@pytest.mark.usefixtures("quiet_hits")
def test_a_flood_of_distinct_urls_stays_within_the_budget(
    small: FlaskClient, page: str, backend_kind: str
) -> None:
    """20,000 distinct URLs (3.9 KB of noise each) grow the process by at most the budget."""
    if backend_kind != "sqlite":
        pytest.skip("the cache does not depend on the database; one backend is enough")
    slug = make_article().slug
    cache = recorded_cache(small, page.format(slug=slug))
    path = page.format(slug=slug).partition("?")[0]
    for n in range(300):  # warm up
        request_to(cache, f"{path}?page={n}")
    cache.clear()
    gc.collect()
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        peak_size = 0
        for n in range(FLOOD):
            # A distinct page where the view reads `page`, a distinct URL everywhere.
            assert request_to(cache, f"{path}?page={n + 1}&n{n}={NOISE}") in (200, 402)
            peak_size = max(peak_size, cache.size)
        gc.collect()
        end, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    grown = end - start
    assert peak_size <= BUDGET
    # Everything the flood left behind is what the cache holds: within the budget plus
    # a little slack for the dict's spare slots (the unfixed cache grew ~100 MB here).
    assert grown <= BUDGET + 128 * 1024, f"grew {grown} bytes for a {BUDGET} byte budget"
