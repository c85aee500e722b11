"""Cached anonymous pages never show a stale price, a stale text or a full text.

In-process tests use the test client (the cache middleware is part of the app); the
cross-process test runs two gunicorn servers on one database, changes an article
through the publishing API of one and reads it at once from the other.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from models import CatalogState, db
from tests.support.cross_process import http_call as _http
from tests.support.cross_process import publisher_token as _publisher_token
from tests.support.cross_process import shared_database
from tests.support.factories import (
    PASSWORD,
    bearer,
    claims,
    grant,
    make_article,
    make_token,
    make_user,
)
from tests.support.servers import AppServer
from tests.support.web import csrf_token_from

__all__ = ["shared_database"]  # a fixture: pytest finds it as an attribute of this module

BODY = "Body words only a paying reader may see."


@pytest.fixture()
def editor(client: FlaskClient) -> dict[str, str]:
    return bearer(make_token(make_user(role="publisher")))


def anon(client: FlaskClient, path: str, **kwargs: Any) -> TestResponse:
    """A request from a browser that never logged in: no cookie, no token."""
    client._cookies.clear()
    return client.get(path, **kwargs)


def text_of(response: TestResponse) -> str:
    return response.get_data(as_text=True)


def warm(client: FlaskClient, path: str) -> TestResponse:
    """Render the page, then prove the next request is served from the cache."""
    first = anon(client, path)
    assert first.headers.get("X-Dispatch-Cache") is None
    second = anon(client, path)
    assert second.headers.get("X-Dispatch-Cache") == "hit", path
    assert second.get_data() == first.get_data()
    return second


def version() -> int:
    state = db.session.get(CatalogState, 1)
    assert state is not None
    db.session.refresh(state)
    return state.version


def test_anonymous_pages_are_public_cacheable_and_carry_nothing_personal(
    client: FlaskClient,
) -> None:
    article = make_article(body=BODY, price=39)
    for path in ("/", f"/articles/{article.slug}", "/feed.xml", "/api/v1/articles"):
        response = warm(client, path)
        assert response.status_code == 200
        assert "public" in response.headers["Cache-Control"]
        assert "max-age=" in response.headers["Cache-Control"]
        assert "Set-Cookie" not in response.headers
        assert "csrf-token" not in text_of(response)
        assert BODY not in text_of(response)
        etag = response.headers["ETag"]
        again = anon(client, path, headers={"If-None-Match": etag})
        assert again.status_code == 304
        assert again.get_data() == b""


def test_the_402_answer_is_cached_and_never_holds_the_body(client: FlaskClient) -> None:
    article = make_article(body=BODY)
    response = warm(client, f"/api/v1/articles/{article.slug}")
    assert response.status_code == 402
    assert response.json is not None
    assert response.json["article"]["price"] == {"amount": 39, "currency": "usd"}
    assert BODY not in text_of(response)
    assert "public" in response.headers["Cache-Control"]


def test_price_change_shows_at_once_everywhere(client: FlaskClient, editor: dict[str, str]) -> None:
    article = make_article(price=39)
    slug = article.slug
    pages = ["/", f"/articles/{slug}"]
    for path in pages:
        assert "$0.39" in text_of(warm(client, path))
    assert warm(client, f"/api/v1/articles/{slug}").json["offer"]["price"]["amount"] == 39
    assert warm(client, "/api/v1/articles").json["articles"][0]["price"]["amount"] == 39
    before = version()
    response = client.patch(
        f"/api/v1/articles/{slug}",
        json={"price": {"amount": 45, "currency": "usd"}},
        headers=editor,
    )
    assert response.status_code == 200
    assert version() > before
    for path in pages:
        page = text_of(anon(client, path))
        assert "$0.45" in page and "$0.39" not in page, path
    answer = anon(client, f"/api/v1/articles/{slug}").json
    assert answer["offer"]["price"]["amount"] == 45
    assert answer["article"]["price"]["amount"] == 45
    assert anon(client, "/api/v1/articles").json["articles"][0]["price"]["amount"] == 45


def test_edits_of_title_teaser_and_report_show_at_once(
    client: FlaskClient, editor: dict[str, str]
) -> None:
    article = make_article(title="Old headline", teaser="Old teaser text.")
    slug = article.slug
    for path in ("/", f"/articles/{slug}", "/feed.xml"):
        warm(client, path)
    client.patch(
        f"/api/v1/articles/{slug}",
        json={"title": "New headline", "teaser": "New teaser text."},
        headers=editor,
    )
    for path in ("/", f"/articles/{slug}", "/feed.xml"):
        page = text_of(anon(client, path))
        assert "New headline" in page and "Old headline" not in page, path
        assert "New teaser text." in page and "Old teaser text." not in page, path
    # A new report on the live text changes the summary anonymous readers see.
    summary_before = text_of(anon(client, f"/articles/{slug}"))
    response = client.put(
        f"/api/v1/articles/{slug}/verification",
        json={
            "verifier": "second-look",
            "checked_at": "2026-11-20T00:00:00Z",
            "claims": claims("supported"),
        },
        headers=editor,
    )
    assert response.status_code == 200
    assert text_of(anon(client, f"/articles/{slug}")) != summary_before


def test_unpublish_and_publish_show_at_once(client: FlaskClient, editor: dict[str, str]) -> None:
    article = make_article(title="Comes and goes")
    slug = article.slug
    warm(client, "/")
    warm(client, f"/articles/{slug}")
    assert client.post(f"/api/v1/articles/{slug}/unpublish", headers=editor).status_code == 200
    assert "Comes and goes" not in text_of(anon(client, "/"))
    assert anon(client, f"/articles/{slug}").status_code == 404
    assert anon(client, f"/api/v1/articles/{slug}").status_code == 404
    assert client.post(f"/api/v1/articles/{slug}/publish", headers=editor).status_code == 200
    assert "Comes and goes" in text_of(anon(client, "/"))
    assert anon(client, f"/articles/{slug}").status_code == 200


def test_a_new_body_goes_live_only_on_publish_and_never_to_anonymous(
    client: FlaskClient, editor: dict[str, str]
) -> None:
    article = make_article(body=BODY)
    slug = article.slug
    warm(client, f"/articles/{slug}")
    client.patch(f"/api/v1/articles/{slug}", json={"body": "A second text."}, headers=editor)
    page = text_of(anon(client, f"/articles/{slug}"))
    assert BODY not in page and "A second text." not in page


def test_entitled_and_logged_in_readers_never_get_or_fill_the_public_cache(
    client: FlaskClient,
) -> None:
    article = make_article(body=BODY)
    slug = article.slug
    reader = make_user()
    grant(reader, article)
    token = make_token(reader)
    warm(client, f"/articles/{slug}")
    # A bearer token bypasses the cache and gets the full text, privately.
    full = client.get(f"/api/v1/articles/{slug}", headers=bearer(token))
    assert full.status_code == 200 and BODY in text_of(full)
    assert "no-store" in full.headers["Cache-Control"]
    assert full.headers.get("X-Dispatch-Cache") is None
    # A logged-in browser gets its own full page, never the cached teaser.
    client._cookies.clear()
    csrf = csrf_token_from(client, "/login")
    login = client.post(
        "/login", data={"email": reader.email, "password": PASSWORD, "csrf_token": csrf}
    )
    assert login.status_code in (302, 303), text_of(login)[:300]
    page = client.get(f"/articles/{slug}")
    assert BODY in text_of(page)
    assert page.headers.get("X-Dispatch-Cache") is None
    assert "private" in page.headers["Cache-Control"]
    assert "no-store" in page.headers["Cache-Control"]
    front = client.get("/")
    assert "In your library" in text_of(front)
    assert "private" in front.headers["Cache-Control"]
    # ...and what it saw was not stored for anonymous readers.
    after = anon(client, f"/articles/{slug}")
    assert BODY not in text_of(after)
    assert after.headers.get("X-Dispatch-Cache") == "hit"


def test_wallet_and_library_are_private(client: FlaskClient) -> None:
    reader = make_user()
    token = make_token(reader)
    for path in ("/api/v1/wallet", "/api/v1/library"):
        response = client.get(path, headers=bearer(token))
        assert response.status_code == 200
        assert "no-store" in response.headers["Cache-Control"]
        assert "private" in response.headers["Cache-Control"]


# --- two app processes on one database (tests/support/cross_process.py) ------------------


def test_price_change_through_another_process_shows_at_once(
    shared_database: str, artifacts: Path
) -> None:
    env = {"DATABASE_URL": shared_database, "SECRET_KEY": "cross-process-test-secret"}
    token = _publisher_token(shared_database)
    writer = AppServer(artifacts, env, name="cache-writer")
    reader = AppServer(artifacts, env, name="cache-reader")
    writer.start()
    reader.start()
    try:
        api = f"{writer.base}/api/v1/articles"
        status, _, _ = _http(
            "POST",
            api,
            {
                "title": "Shared widely",
                "slug": "shared-widely",
                "teaser": "Teaser before.",
                "body": BODY,
                "price": {"amount": 39, "currency": "usd"},
            },
            token,
        )
        assert status == 201
        report = {
            "verifier": "x",
            "checked_at": "2026-11-20T00:00:00Z",
            "claims": claims("supported"),
        }
        assert _http("PUT", f"{api}/shared-widely/verification", report, token)[0] == 200
        assert _http("POST", f"{api}/shared-widely/publish", None, token)[0] == 200

        pages = [f"{reader.base}/", f"{reader.base}/articles/shared-widely"]
        hits = 0
        for _ in range(6):  # warm both workers of the reading server
            for page in pages:
                status, headers, html = _http("GET", page)
                assert status == 200 and "$0.39" in html and BODY not in html
                hits += headers.get("X-Dispatch-Cache") == "hit"
        assert hits > 0, "the reading server never served from its cache"

        patch = {"price": {"amount": 45, "currency": "usd"}, "teaser": "Teaser after."}
        assert _http("PATCH", f"{api}/shared-widely", patch, token)[0] == 200
        for _ in range(6):  # at once: no wait, no retry, every worker
            for page in pages:
                status, _, html = _http("GET", page)
                assert status == 200
                assert "$0.45" in html and "$0.39" not in html, page
                assert "Teaser after." in html and "Teaser before." not in html, page
                assert BODY not in html
            status, _, answer = _http("GET", f"{reader.base}/api/v1/articles/shared-widely")
            assert status == 402 and json.loads(answer)["offer"]["price"]["amount"] == 45

        assert _http("POST", f"{api}/shared-widely/unpublish", None, token)[0] == 200
        for _ in range(4):
            assert _http("GET", pages[1])[0] == 404
            assert "Shared widely" not in _http("GET", pages[0])[2]
    finally:
        writer.stop()
        reader.stop()
