"""No request header can put another origin into a page someone else receives (issue 11.1).

Behind one trusted proxy (TRUSTED_PROXIES=1), `X-Forwarded-Host` and `X-Forwarded-Proto`
decide the request's effective origin. With PUBLIC_BASE_URL set, every absolute URL the
app writes comes from it and never from a header; without it, the cache keys pages on the
effective origin they were built from, so a forged header only ever reaches its sender.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine
from werkzeug.test import TestResponse

from dispatch_pay import create_app
from dispatch_pay.config import ConfigurationError
from tests.conftest import IsolatedClient
from tests.conftest import test_config as app_config
from tests.support.factories import make_article
from tests.support.web import links_outside, public_page_paths

PUBLIC = "https://news.example"
EVIL = "evil.example"
FORGED = {"X-Forwarded-Host": EVIL, "X-Forwarded-Proto": "https", "X-Forwarded-Port": "8443"}


def build_app(backend: tuple[str, Engine], **extra: Any) -> Flask:
    _kind, engine = backend
    # No SERVER_NAME, as in production: Flask then writes external URLs with the
    # request's (forwarded) host.
    config = app_config(engine.url.render_as_string(hide_password=False), TRUSTED_PROXIES=1)
    config.pop("SERVER_NAME")
    app = create_app({**config, **extra})
    app.test_client_class = IsolatedClient
    return app


@pytest.fixture(scope="module")
def based_app(backend: tuple[str, Engine]) -> Flask:
    return build_app(backend, PUBLIC_BASE_URL=PUBLIC)


@pytest.fixture(scope="module")
def proxied_app(backend: tuple[str, Engine]) -> Flask:
    return build_app(backend)


def _client(app: Flask) -> Iterator[FlaskClient]:
    with app.app_context():
        yield app.test_client()


@pytest.fixture()
def based(based_app: Flask, db_connection: Any) -> Iterator[FlaskClient]:
    yield from _client(based_app)


@pytest.fixture()
def proxied(proxied_app: Flask, db_connection: Any) -> Iterator[FlaskClient]:
    yield from _client(proxied_app)


def anon(client: FlaskClient, path: str, headers: dict[str, str] | None = None) -> TestResponse:
    client._cookies.clear()
    return client.get(path, headers=headers or {})


def test_with_public_base_url_no_header_changes_any_absolute_url(based: FlaskClient) -> None:
    article = make_article()
    for path in public_page_paths(article.slug):
        for _ in range(3):  # render, then (for the later rounds) served from the cache
            response = anon(based, path, FORGED)
            assert response.status_code in (200, 402), path
            assert EVIL not in response.get_data(as_text=True), path
        plain = anon(based, path)
        assert plain.headers.get("X-Dispatch-Cache") == "hit", path  # one entry for all
        assert EVIL not in plain.get_data(as_text=True), path
        assert links_outside(plain.get_data(as_text=True), PUBLIC) == [], path


def test_every_absolute_url_of_an_article_comes_from_public_base_url(based: FlaskClient) -> None:
    article = make_article()
    page = anon(based, f"/articles/{article.slug}", FORGED).get_data(as_text=True)
    canonical = f"{PUBLIC}/articles/{article.slug}"
    assert f'<link rel="canonical" href="{canonical}">' in page
    assert f'<meta property="og:url" content="{canonical}">' in page
    [ld] = re.findall(r'<script type="application/ld\+json">(.*?)</script>', page, re.S)
    assert json.loads(ld)["url"] == canonical
    offer = anon(based, f"/api/v1/articles/{article.slug}", FORGED).get_json()["offer"]
    assert offer["purchase_url"] == f"{PUBLIC}/api/v1/articles/{article.slug}/purchase"
    feed = anon(based, "/feed.xml", FORGED).get_data(as_text=True)
    assert f"<link>{PUBLIC}/</link>" in feed
    assert f'href="{PUBLIC}/feed.xml"' in feed
    assert f"<link>{canonical}</link>" in feed
    sitemap = anon(based, "/sitemap.xml", FORGED).get_data(as_text=True)
    assert f"<loc>{canonical}</loc>" in sitemap and f"<loc>{PUBLIC}/</loc>" in sitemap


def test_without_public_base_url_a_forged_host_reaches_only_its_sender(
    proxied: FlaskClient,
) -> None:
    article = make_article()
    for path in public_page_paths(article.slug):
        for _ in range(8):  # the attacker primes the cache
            forged = anon(proxied, path, FORGED)
            assert forged.status_code in (200, 402), path
        plain = anon(proxied, path)
        assert EVIL not in plain.get_data(as_text=True), path
        assert plain.headers.get("X-Dispatch-Cache") is None, path  # its own entry
        again = anon(proxied, path)
        assert again.headers.get("X-Dispatch-Cache") == "hit", path
        assert EVIL not in again.get_data(as_text=True), path


def test_without_public_base_url_the_forwarded_origin_is_used_consistently(
    proxied: FlaskClient,
) -> None:
    """A trusted proxy's origin is the page's origin, and the cache keeps it apart."""
    article = make_article()
    path = f"/api/v1/articles/{article.slug}"
    via_proxy = anon(
        proxied, path, {"X-Forwarded-Host": "dispatch.example", "X-Forwarded-Proto": "https"}
    )
    assert via_proxy.get_json()["offer"]["purchase_url"].startswith("https://dispatch.example/")
    other_scheme = anon(proxied, path, {"X-Forwarded-Host": "dispatch.example"})
    assert other_scheme.get_json()["offer"]["purchase_url"].startswith("http://dispatch.example/")


@pytest.mark.parametrize(
    "value",
    ["news.example", "ftp://news.example", "https://", "https://news.example/?q=1", "https://a b"],
)
def test_a_malformed_public_base_url_is_refused_at_start(
    backend: tuple[str, Engine], value: str
) -> None:
    with pytest.raises(ConfigurationError):
        build_app(backend, PUBLIC_BASE_URL=value)


def test_public_base_url_with_a_path_prefix_and_trailing_slash(backend: tuple[str, Engine]) -> None:
    from dispatch_pay.urls import absolute_url

    app = build_app(backend, PUBLIC_BASE_URL="https://news.example/dispatch/")
    with app.test_request_context("/", headers=FORGED):
        assert absolute_url("catalog.front_page") == "https://news.example/dispatch/"
        assert absolute_url("catalog.article_page", slug="a-b") == (
            "https://news.example/dispatch/articles/a-b"
        )
    with app.app_context():  # no request at all (mail, CLI)
        assert absolute_url("catalog.feed") == "https://news.example/dispatch/feed.xml"
