"""Issue 2's contract routes answer with the documented codes and shapes.

Readers, tokens, library, articles (listing and reading), and the publishing API:
400 malformed body, 401, 403, 404, 409 and 422 cases, and never a 500 for anything a
client sends (a hypothesis test throws arbitrary JSON at every write route).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import TestResponse

from dispatch_pay.extensions import limiter
from dispatch_pay.money import MAX_ARTICLE_PRICE
from models import Article, ArticleRevision, User, VerificationReport, db
from tests.support.factories import (
    PASSWORD,
    bearer,
    claims,
    grant,
    make_article,
    make_token,
    make_user,
)
from tests.support.web import assert_error, csrf_token_from, log_in

NOW = "2026-11-20T10:00:00+00:00"


def post(client: FlaskClient, url: str, body: Any, token: str | None = None) -> TestResponse:
    headers = bearer(token) if token else {}
    return client.post(url, json=body, headers=headers)


def send(
    client: FlaskClient, method: str, url: str, raw: str | bytes, token: str | None = None
) -> TestResponse:
    headers = {"Content-Type": "application/json", **(bearer(token) if token else {})}
    return client.open(url, method=method, data=raw, headers=headers)


@pytest.fixture()
def publisher_token(client: FlaskClient) -> str:
    return make_token(make_user(role="publisher"))


@pytest.fixture()
def reader_token(client: FlaskClient) -> str:
    return make_token(make_user())


def new_article_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "Tide tables and the new sea wall",
        "teaser": "What the harbour learned from a year of high water.",
        "body": "The full text.\n\nWith a second paragraph.",
        "price": {"amount": 49, "currency": "eur"},
    }
    body.update(overrides)
    return body


def report_body(*verdicts: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "verifier": "contract-test",
        "checked_at": NOW,
        "claims": claims(*verdicts),
    }
    body.update(overrides)
    return body


def row_counts() -> tuple[int, ...]:
    return tuple(
        db.session.query(model).count()
        for model in (User, Article, ArticleRevision, VerificationReport)
    )


# ---- readers -------------------------------------------------------------------------


def test_create_reader(client: FlaskClient) -> None:
    response = post(client, "/api/v1/readers", {"email": "New@Example.COM", "password": PASSWORD})
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"reader", "token"}
    assert set(body["reader"]) == {"id", "email"}
    assert body["reader"]["email"] == "new@example.com"
    me = client.get("/api/v1/me", headers=bearer(body["token"])).get_json()
    assert me["user"] == {"id": body["reader"]["id"], "email": "new@example.com", "role": "reader"}


def test_create_reader_email_taken_in_any_case(client: FlaskClient) -> None:
    make_user("taken@example.com")
    before = row_counts()
    response = post(client, "/api/v1/readers", {"email": "TAKEN@example.com", "password": PASSWORD})
    body = assert_error(response, 409, "email_taken")
    assert "email" in body["error"]["fields"]
    assert row_counts() == before


@pytest.mark.parametrize(
    ("payload", "bad"),
    [
        ({"email": "not-an-email", "password": PASSWORD}, {"email"}),
        ({"email": "short@example.com", "password": "short"}, {"password"}),
        ({"email": 7, "password": ["x"]}, {"email", "password"}),
        ({}, {"email", "password"}),
        ({"email": "a@example.com", "password": PASSWORD, "role": "publisher"}, {"role"}),
    ],
)
def test_create_reader_invalid_fields(
    client: FlaskClient, payload: dict[str, Any], bad: set[str]
) -> None:
    body = assert_error(post(client, "/api/v1/readers", payload), 422, "invalid_fields")
    assert set(body["error"]["fields"]) == bad


@pytest.mark.parametrize(
    "raw", ["not json", "[1, 2]", '"a string"', "42", "null", "{", b"\xff\xfe{}"]
)
@pytest.mark.parametrize("url", ["/api/v1/readers", "/api/v1/tokens"])
def test_malformed_bodies_are_400(client: FlaskClient, url: str, raw: str | bytes) -> None:
    before = row_counts()
    assert_error(send(client, "POST", url, raw), 400, "malformed_body")
    assert row_counts() == before


# ---- tokens --------------------------------------------------------------------------


def test_create_token(client: FlaskClient) -> None:
    user = make_user("tok@example.com")
    response = post(client, "/api/v1/tokens", {"email": "TOK@example.com", "password": PASSWORD})
    assert response.status_code == 201
    token = response.get_json()["token"]
    assert isinstance(token, str) and len(token) >= 32
    me = client.get("/api/v1/me", headers=bearer(token)).get_json()
    assert me["user"]["id"] == user.id


@pytest.mark.parametrize(
    "payload",
    [
        {"email": "tok@example.com", "password": "wrong password"},
        {"email": "nobody@example.com", "password": PASSWORD},
    ],
)
def test_create_token_invalid_credentials(client: FlaskClient, payload: dict[str, str]) -> None:
    make_user("tok@example.com")
    body = assert_error(post(client, "/api/v1/tokens", payload), 401, "invalid_credentials")
    assert "token" not in body


def test_create_token_rate_limited(client: FlaskClient) -> None:
    make_user("guess@example.com")
    statuses = [
        post(client, "/api/v1/tokens", {"email": "guess@example.com", "password": f"guess {i}"})
        for i in range(7)
    ]
    # Five wrong passwords for one account from one address (accounts/limits.py).
    assert {r.status_code for r in statuses[:5]} == {401}
    assert_error(statuses[-1], 429)
    # Even the right password waits now, from this address and a client without the
    # account's device cookie: the limit is per account and address, not per guess.
    right = post(client, "/api/v1/tokens", {"email": "guess@example.com", "password": PASSWORD})
    assert_error(right, 429)


def test_create_token_invalid_fields(client: FlaskClient) -> None:
    body = assert_error(post(client, "/api/v1/tokens", {"email": ""}), 422, "invalid_fields")
    assert set(body["error"]["fields"]) == {"email", "password"}


# ---- authentication ------------------------------------------------------------------


@pytest.mark.parametrize(
    "header", ["Bearer nope", "Bearer ", "Basic dXNlcjpwYXNz", "bearer dp_notatoken"]
)
def test_bad_credentials_are_401(client: FlaskClient, header: str) -> None:
    response = client.get("/api/v1/library", headers={"Authorization": header})
    assert_error(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_anonymous_is_401(client: FlaskClient) -> None:
    assert_error(client.get("/api/v1/library"), 401, "not_authenticated")
    assert_error(post(client, "/api/v1/articles", new_article_body()), 401, "not_authenticated")


def test_session_write_needs_csrf_header(client: FlaskClient) -> None:
    make_user("editor@example.com", role="publisher")
    log_in(client, "editor@example.com")
    without = client.post("/api/v1/articles", json=new_article_body())
    assert_error(without, 403, "csrf_failed")
    token = csrf_token_from(client)
    with_header = client.post(
        "/api/v1/articles", json=new_article_body(), headers={"X-CSRFToken": token}
    )
    assert with_header.status_code == 201


# ---- library -------------------------------------------------------------------------


def test_library(client: FlaskClient) -> None:
    reader = make_user()
    token = make_token(reader)
    assert client.get("/api/v1/library", headers=bearer(token)).get_json() == {"articles": []}
    owned = make_article(title="Owned dispatch")
    make_article(title="Not owned")
    grant(reader, owned)
    body = client.get("/api/v1/library", headers=bearer(token)).get_json()
    (item,) = body["articles"]
    assert item["article"]["slug"] == owned.slug
    assert "body_html" not in item["article"]
    assert {"acquired_at", "source"} <= set(item)


# ---- articles ------------------------------------------------------------------------


def test_list_articles_paginated_published_only(client: FlaskClient) -> None:
    slugs = [make_article(title=f"Listed {i}").slug for i in range(5)]
    draft = make_article(title="Unlisted draft", published=False)
    seen: list[str] = []
    page: int | None = 1
    while page is not None:
        response = client.get(f"/api/v1/articles?per_page=2&page={page}")
        assert response.status_code == 200
        body = response.get_json()
        assert len(body["articles"]) <= 2
        for item in body["articles"]:
            assert {"slug", "title", "teaser", "price", "published_at", "verification"} <= set(item)
            assert "body_html" not in item and "body" not in item
            assert isinstance(item["verification"]["summary"], str)
            assert set(item["price"]) == {"amount", "currency"}
            seen.append(item["slug"])
        page = body["next_page"]
    assert sorted(seen) == sorted(slugs)  # newest first, each once, no draft
    assert seen == list(reversed(slugs))
    assert draft.slug not in seen


@pytest.mark.parametrize("query", ["page=0", "page=abc", "per_page=0", "per_page=101"])
def test_list_articles_bad_query_is_422(client: FlaskClient, query: str) -> None:
    body = assert_error(client.get(f"/api/v1/articles?{query}"), 422, "invalid_fields")
    assert set(body["error"]["fields"]) == {query.split("=")[0]}


def test_get_article(client: FlaskClient, publisher_token: str, reader_token: str) -> None:
    article = make_article(price=129, currency="gbp")
    assert_error(client.get("/api/v1/articles/no-such-slug"), 404, "not_found")
    locked = assert_error(client.get(f"/api/v1/articles/{article.slug}"), 402, "payment_required")
    assert locked["offer"]["price"] == {"amount": 129, "currency": "gbp"}
    assert locked["article"]["price"] == {"amount": 129, "currency": "gbp"}
    full = client.get(f"/api/v1/articles/{article.slug}", headers=bearer(publisher_token))
    assert full.status_code == 200
    assert {"slug", "title", "teaser", "body_html", "price", "published_at", "verification"} <= set(
        full.get_json()
    )
    free = make_article(price=0)
    response = client.get(f"/api/v1/articles/{free.slug}")
    assert response.status_code == 200 and "body_html" in response.get_json()


# ---- publishing ----------------------------------------------------------------------


def test_create_article(client: FlaskClient, publisher_token: str) -> None:
    response = post(client, "/api/v1/articles", new_article_body(), publisher_token)
    assert response.status_code == 201
    body = response.get_json()
    assert body["status"] == "draft"
    assert body["slug"] == "tide-tables-and-the-new-sea-wall"
    assert body["price"] == {"amount": 49, "currency": "eur"}
    assert body["published_at"] is None
    assert body["verification"]["state"] == "missing"
    again = post(client, "/api/v1/articles", new_article_body(), publisher_token)
    assert again.get_json()["slug"] == "tide-tables-and-the-new-sea-wall-2"


def test_create_article_slug_taken(client: FlaskClient, publisher_token: str) -> None:
    post(client, "/api/v1/articles", new_article_body(slug="sea-wall"), publisher_token)
    before = row_counts()
    response = post(client, "/api/v1/articles", new_article_body(slug="sea-wall"), publisher_token)
    body = assert_error(response, 409, "slug_taken")
    assert "slug" in body["error"]["fields"]
    assert row_counts() == before


def test_reader_cannot_publish(client: FlaskClient, reader_token: str) -> None:
    article = make_article(published=False)
    before = row_counts()
    for method, url, body in [
        ("POST", "/api/v1/articles", new_article_body()),
        ("PATCH", f"/api/v1/articles/{article.slug}", {"title": "Mine now"}),
        ("PUT", f"/api/v1/articles/{article.slug}/verification", report_body("supported")),
        ("POST", f"/api/v1/articles/{article.slug}/publish", None),
        ("POST", f"/api/v1/articles/{article.slug}/unpublish", None),
    ]:
        response = client.open(url, method=method, json=body, headers=bearer(reader_token))
        assert_error(response, 403, "forbidden")
    assert row_counts() == before
    assert db.session.get(Article, article.id).status == "draft"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("price", "why"),
    [
        ({"amount": 39.0, "currency": "usd"}, "float"),
        ({"amount": 0.39, "currency": "usd"}, "float"),
        ({"amount": "39", "currency": "usd"}, "string"),
        ({"amount": True, "currency": "usd"}, "boolean"),
        ({"amount": -1, "currency": "usd"}, "negative"),
        ({"amount": MAX_ARTICLE_PRICE + 1, "currency": "usd"}, "too large"),
        ({"amount": 39, "currency": "jpy"}, "unsupported currency"),
        ({"amount": 39, "currency": "USD"}, "upper case currency"),
        ({"amount": 39}, "no currency"),
        ("0.39", "not an object"),
        (39, "not an object"),
    ],
)
def test_bad_prices_are_422(
    client: FlaskClient, publisher_token: str, price: Any, why: str
) -> None:
    before = row_counts()
    response = post(client, "/api/v1/articles", new_article_body(price=price), publisher_token)
    body = assert_error(response, 422, "invalid_fields")
    assert set(body["error"]["fields"]) == {"price"}, why
    article = make_article(published=False)
    response = client.patch(
        f"/api/v1/articles/{article.slug}", json={"price": price}, headers=bearer(publisher_token)
    )
    assert set(assert_error(response, 422)["error"]["fields"]) == {"price"}
    assert row_counts()[1] == before[1] + 1


@pytest.mark.parametrize(
    ("amount", "currency"), [(0, "usd"), (1, "eur"), (39, "gbp"), (MAX_ARTICLE_PRICE, "usd")]
)
def test_good_prices(client: FlaskClient, publisher_token: str, amount: int, currency: str) -> None:
    price = {"amount": amount, "currency": currency}
    response = post(client, "/api/v1/articles", new_article_body(price=price), publisher_token)
    assert response.status_code == 201
    assert response.get_json()["price"] == price


def test_create_article_names_each_bad_field(client: FlaskClient, publisher_token: str) -> None:
    payload = {"title": "", "teaser": 5, "body": "   ", "slug": "Not A Slug", "price": {}}
    body = assert_error(post(client, "/api/v1/articles", payload, publisher_token), 422)
    assert set(body["error"]["fields"]) == {"title", "teaser", "body", "slug", "price"}
    missing = assert_error(post(client, "/api/v1/articles", {}, publisher_token), 422)
    # `price` is required: the contract marks only `slug?` optional.
    assert set(missing["error"]["fields"]) == {"title", "teaser", "body", "price"}


def test_patch_article(client: FlaskClient, publisher_token: str) -> None:
    article = make_article(published=False, price=39)
    response = client.patch(
        f"/api/v1/articles/{article.slug}",
        json={"title": "A better title", "price": {"amount": 129, "currency": "usd"}},
        headers=bearer(publisher_token),
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["title"] == "A better title"
    assert body["price"] == {"amount": 129, "currency": "usd"}
    assert_error(
        client.patch("/api/v1/articles/nope", json={"title": "x"}, headers=bearer(publisher_token)),
        404,
        "not_found",
    )
    other = make_article(published=False)
    taken = client.patch(
        f"/api/v1/articles/{article.slug}",
        json={"slug": other.slug},
        headers=bearer(publisher_token),
    )
    assert_error(taken, 409, "slug_taken")


@pytest.mark.parametrize("raw", ["not json", "[]", "null", '"x"'])
@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("POST", "/api/v1/articles"),
        ("PATCH", "/api/v1/articles/{slug}"),
        ("PUT", "/api/v1/articles/{slug}/verification"),
    ],
)
def test_publishing_malformed_bodies_are_400(
    client: FlaskClient, publisher_token: str, method: str, url: str, raw: str
) -> None:
    article = make_article(published=False)
    before = row_counts()
    response = send(client, method, url.format(slug=article.slug), raw, publisher_token)
    assert_error(response, 400, "malformed_body")
    assert row_counts() == before


def test_put_verification(client: FlaskClient, publisher_token: str) -> None:
    article = make_article(published=False, verdicts=())
    response = client.put(
        f"/api/v1/articles/{article.slug}/verification",
        json=report_body("supported", "weak"),
        headers=bearer(publisher_token),
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["verifier"] == "contract-test"
    assert body["counts"]["total"] == 2
    assert body["body_sha256"] == article.latest_revision.body_sha256  # type: ignore[union-attr]
    assert [c["verdict"] for c in body["claims"]] == ["supported", "weak"]
    assert_error(
        client.put(
            "/api/v1/articles/nope/verification",
            json=report_body("supported"),
            headers=bearer(publisher_token),
        ),
        404,
    )


@pytest.mark.parametrize(
    ("change", "bad"),
    [
        ({"claims": [{"claim": "x", "verdict": "maybe"}]}, "claims"),
        ({"claims": []}, "claims"),
        ({"checked_at": "yesterday"}, "checked_at"),
        ({"checked_at": "2026-11-20T10:00:00"}, "checked_at"),  # no timezone
        ({"checked_at": "9999-12-31T23:59:59-23:59"}, "checked_at"),
        ({"verifier": ""}, "verifier"),
        (
            {"claims": [{"claim": "x", "verdict": "weak", "sources": [{"url": "javascript:x"}]}]},
            "claims",
        ),
        ({"body_sha256": "0" * 64}, None),  # a hash of other text: 409 stale, below
    ],
)
def test_put_verification_invalid(
    client: FlaskClient, publisher_token: str, change: dict[str, Any], bad: str | None
) -> None:
    article = make_article(published=False, verdicts=())
    response = client.put(
        f"/api/v1/articles/{article.slug}/verification",
        json=report_body("supported", **change),
        headers=bearer(publisher_token),
    )
    if bad is None:
        assert_error(response, 409, "verification_stale")
    else:
        assert set(assert_error(response, 422, "invalid_fields")["error"]["fields"]) == {bad}
    assert db.session.query(VerificationReport).count() == 0


def test_publish_codes(client: FlaskClient, publisher_token: str) -> None:
    headers = bearer(publisher_token)
    assert_error(client.post("/api/v1/articles/nope/publish", headers=headers), 404)
    assert_error(client.post("/api/v1/articles/nope/unpublish", headers=headers), 404)

    unchecked = make_article(published=False, verdicts=())
    assert_error(
        client.post(f"/api/v1/articles/{unchecked.slug}/publish", headers=headers),
        409,
        "verification_missing",
    )

    blocked = make_article(published=False, verdicts=("supported", "contradicted", "contradicted"))
    body = assert_error(
        client.post(f"/api/v1/articles/{blocked.slug}/publish", headers=headers),
        409,
        "contradicted_claims",
    )
    assert [c["claim"] for c in body["claims"]] == [
        "Claim number 2 is contradicted.",
        "Claim number 3 is contradicted.",
    ]
    assert all(c["verdict"] == "contradicted" for c in body["claims"])

    edited = make_article(published=False)
    client.patch(f"/api/v1/articles/{edited.slug}", json={"body": "New text."}, headers=headers)
    assert_error(
        client.post(f"/api/v1/articles/{edited.slug}/publish", headers=headers),
        409,
        "verification_stale",
    )

    ready = make_article(published=False, verdicts=("weak", "unverified"))
    published = client.post(f"/api/v1/articles/{ready.slug}/publish", headers=headers)
    assert published.status_code == 200
    assert published.get_json()["status"] == "published"
    assert published.get_json()["published_at"]
    unpublished = client.post(f"/api/v1/articles/{ready.slug}/unpublish", headers=headers)
    assert unpublished.status_code == 200
    assert unpublished.get_json()["status"] == "draft"


def test_wrong_method_is_405_in_shape(client: FlaskClient) -> None:
    response = client.delete("/api/v1/articles")
    assert_error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


# ---- never a 500 ---------------------------------------------------------------------

# Text with what breaks databases and encoders: NUL, lone surrogates, odd scripts.
TEXT = st.text(st.characters(exclude_categories=()), max_size=30) | st.sampled_from(
    ["", " ", "\x00", "\ud800", "a@b.c", "x" * 300, "2026-11-20T10:00:00+00:00", "usd"]
)
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
VALID_BODIES: dict[str, dict[str, Any]] = {
    "/api/v1/readers": {"email": "fuzz@example.com", "password": PASSWORD},
    "/api/v1/tokens": {"email": "fuzz@example.com", "password": PASSWORD, "name": "fuzz"},
    "/api/v1/articles": new_article_body(),
    "/api/v1/articles/{slug}": new_article_body(),
    "/api/v1/articles/{slug}/verification": report_body("supported", "weak"),
    "/api/v1/articles/{slug}/publish": {},
    "/api/v1/articles/{slug}/unpublish": {},
}
WRITE_ROUTES = [
    ("POST", "/api/v1/readers"),
    ("POST", "/api/v1/tokens"),
    ("POST", "/api/v1/articles"),
    ("PATCH", "/api/v1/articles/{slug}"),
    ("PUT", "/api/v1/articles/{slug}/verification"),
    ("POST", "/api/v1/articles/{slug}/publish"),
    ("POST", "/api/v1/articles/{slug}/unpublish"),
]


def mutated(template: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    """A valid body with some fields (top level or nested) changed: arbitrary JSON in
    place of a value, or odd text spliced into a string (which keeps its type, so it
    gets past validation to the services and the database)."""
    body = json.loads(json.dumps(template))
    for _ in range(data.draw(st.integers(0, 3))):
        node: Any = body
        while True:
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            if not keys:
                break
            key = data.draw(st.sampled_from(keys))
            if isinstance(node[key], dict | list) and data.draw(st.booleans()):
                node = node[key]
                continue
            if isinstance(node[key], str) and data.draw(st.booleans()):
                cut = data.draw(st.integers(0, len(node[key])))
                node[key] = node[key][:cut] + data.draw(TEXT) + node[key][cut:]
            else:
                node[key] = data.draw(JSON_VALUES)
            break
    return body


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(route=st.sampled_from(WRITE_ROUTES), data=st.data(), ascii_only=st.booleans())
def test_arbitrary_json_never_500(
    client: FlaskClient,
    publisher_token: str,
    route: tuple[str, str],
    data: st.DataObject,
    ascii_only: bool,
) -> None:
    limiter.reset()  # a 429 would hide what the route does with the body
    method, url = route
    slug = "fuzzed-dispatch"
    if db.session.query(Article).filter_by(slug=slug).count() == 0:
        post(client, "/api/v1/articles", new_article_body(slug=slug), publisher_token)
        make_user("fuzz@example.com")
    if data.draw(st.booleans()):
        payload: Any = mutated(VALID_BODIES[url], data)
    else:
        payload = data.draw(JSON_VALUES)
    raw = json.dumps(payload, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    response = send(client, method, url.format(slug=slug), raw, publisher_token)
    assert response.status_code < 500, response.get_data(as_text=True)
    if response.status_code >= 400:
        assert_error(response, response.status_code)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.binary(max_size=80))
def test_arbitrary_bytes_never_500(client: FlaskClient, publisher_token: str, raw: bytes) -> None:
    limiter.reset()
    for method, url in WRITE_ROUTES[:3]:
        response = send(client, method, url, raw, publisher_token)
        assert response.status_code < 500
        if response.status_code >= 400:
            assert_error(response, response.status_code)


@pytest.mark.parametrize("token_id", ["2147483648", "99999999999999999999999", "0"])
def test_ids_beyond_the_database_are_404(
    client: FlaskClient, reader_token: str, token_id: str
) -> None:
    response = client.delete(f"/api/v1/tokens/{token_id}", headers=bearer(reader_token))
    assert_error(response, 404, "not_found")
    refund = client.post(f"/api/v1/purchases/{token_id}/refund", headers=bearer(reader_token))
    assert_error(refund, 404)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    slug=st.text(st.characters(exclude_categories=()), min_size=1, max_size=40),
    query=st.text(max_size=20),
)
def test_arbitrary_paths_and_queries_never_500(
    client: FlaskClient, publisher_token: str, slug: str, query: str
) -> None:
    quoted = quote(slug.encode("utf-8", "surrogatepass"), safe="")
    for url in (
        f"/api/v1/articles/{quoted}",
        f"/articles/{quoted}",
        f"/api/v1/articles?page={quote(query)}",
        f"/?page={quote(query)}&{quote(query)}=1",
    ):
        response = client.get(url, headers=bearer(publisher_token))
        assert response.status_code < 500, (url, response.status_code)
        if url.startswith("/api/") and response.status_code >= 400:
            assert_error(response, response.status_code)
    patch = client.patch(
        f"/api/v1/articles/{quoted}", json={"title": "x"}, headers=bearer(publisher_token)
    )
    assert patch.status_code < 500
