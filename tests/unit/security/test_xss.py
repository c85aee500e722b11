"""XSS: whatever a publisher supplies comes out escaped in every output."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
from flask.testing import FlaskClient

from models import Article, db
from tests.support.factories import bearer, grant, make_token, make_user
from tests.support.html import executable_problems
from tests.support.html import parse_page as scan
from tests.support.web import json_error
from tests.support.web import log_in as login

# Each breaks out of a different context: element text, a quoted attribute, the JSON-LD
# <script> block, a Markdown link, raw HTML in Markdown.
PRICE = {"amount": 39, "currency": "usd"}
TITLE = "</script><script>alert('title')</script>\"><svg onload=alert(1)>"
TEASER = "'\"><img src=x onerror=alert('teaser')>&lt;script&gt;"
BODY = (
    "Intro <script>alert('body')</script>\n\n"
    "[click](javascript:alert('link')) <img src=x onerror=alert(3)>\n\n"
    '<a href="JaVaScRiPt:alert(4)">x</a> <iframe src="https://evil.example"></iframe>\n'
)
VERIFIER = "<script>alert('verifier')</script>"
CLAIM = "Claim </p><script>alert('claim')</script>"
NOTE = "\"><img src=x onerror=alert('note')>"
SOURCE_TITLE = "<b onmouseover=alert('source')>source</b>"
SCRIPT_URLS = [
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    " javascript:alert(1)",
    "java\tscript:alert(1)",
    "vbscript:msgbox(1)",
    "data:text/html,<script>alert(1)</script>",
    "//evil.example/x",
]
PAYLOAD_MARKERS = ("<script>alert", "<img src=x", "<svg", "<iframe", "<b onmouseover")


def report(url: str = "https://source.example.org/a?b=1&c=\"'>") -> dict[str, Any]:
    return {
        "verifier": VERIFIER,
        "checked_at": "2026-11-01T10:00:00+00:00",
        "claims": [
            {
                "claim": CLAIM,
                "verdict": "supported",
                "sources": [{"url": url, "title": SOURCE_TITLE}],
                "note": NOTE,
            }
        ],
    }


@pytest.fixture()
def hostile_article(client: FlaskClient) -> dict[str, Any]:
    publisher = make_user(role="publisher")
    headers = bearer(make_token(publisher))
    for slug in ("<script>x</script>", 'a"b', "../etc"):
        bad = client.post(
            "/api/v1/articles",
            json={"title": "t", "slug": slug, "teaser": "t", "body": "b", "price": PRICE},
            headers=headers,
        )
        assert bad.status_code == 422 and "slug" in json_error(bad)["fields"]
    created = client.post(
        "/api/v1/articles",
        json={"title": TITLE, "teaser": TEASER, "body": BODY, "price": PRICE},
        headers=headers,
    )
    assert created.status_code == 201, created.get_json()
    slug = created.get_json()["slug"]
    for url in SCRIPT_URLS:
        refused = client.put(
            f"/api/v1/articles/{slug}/verification", json=report(url), headers=headers
        )
        assert refused.status_code == 422, url
    stored = client.put(f"/api/v1/articles/{slug}/verification", json=report(), headers=headers)
    assert stored.status_code == 200, stored.get_json()
    published = client.post(f"/api/v1/articles/{slug}/publish", headers=headers)
    assert published.status_code == 200, published.get_json()
    return {"slug": slug, "headers": headers}


def assert_inert_html(html: str, where: str) -> None:
    assert executable_problems(html) == [], where
    page = scan(html)
    assert not [t for t, _ in page.tags if t in {"svg", "iframe", "object", "embed", "b"}], where
    for marker in PAYLOAD_MARKERS:
        assert marker not in html, (where, marker)


def json_ld(html: str) -> list[Any]:
    return [
        json.loads(text)
        for attrs, text in scan(html).scripts
        if attrs.get("type") == "application/ld+json"
    ]


def test_publisher_fields_are_escaped_on_every_page(
    client: FlaskClient, hostile_article: dict[str, Any]
) -> None:
    slug = hostile_article["slug"]
    # Anonymous: teaser, paywall, OpenGraph and JSON-LD.
    teaser_page = client.get(f"/articles/{slug}").get_data(as_text=True)
    assert_inert_html(teaser_page, "teaser page")
    assert json_ld(teaser_page)[0]["headline"] == TITLE  # intact, and no break-out
    meta = {
        a.get("property") or a.get("name"): a.get("content")
        for t, a in scan(teaser_page).tags
        if t == "meta"
    }
    assert meta["og:title"] == TITLE and meta["og:description"] == TEASER
    assert_inert_html(client.get("/").get_data(as_text=True), "front page")

    reader = make_user()
    article = db.session.query(Article).filter_by(slug=slug).one()
    grant(reader, article)
    login(client, reader.email)
    full = client.get(f"/articles/{slug}").get_data(as_text=True)
    assert_inert_html(full, "full article")
    # Shown, as text.
    assert "Checked by &lt;script&gt;alert(&#39;verifier&#39;)&lt;/script&gt;" in full
    assert "&lt;/p&gt;&lt;script&gt;alert(&#39;claim&#39;)" in full
    links = [
        a for t, a in scan(full).tags if t == "a" and "source.example.org" in (a["href"] or "")
    ]
    assert links and links[0]["href"] == "https://source.example.org/a?b=1&c=\"'>"
    assert_inert_html(client.get("/library").get_data(as_text=True), "library")


def test_feed_and_sitemap_escape_publisher_text(
    client: FlaskClient, hostile_article: dict[str, Any]
) -> None:
    feed = client.get("/feed.xml")
    root = ET.fromstring(feed.get_data())  # noqa: S314 - our own output; parses = no break-out
    item = root.find("./channel/item")
    assert item is not None and item.findtext("title") == TITLE
    assert (item.findtext("description") or "").startswith(TEASER)
    assert "<script>" not in feed.get_data(as_text=True)
    sitemap = ET.fromstring(client.get("/sitemap.xml").get_data())  # noqa: S314 - our own output
    locs = [e.text or "" for e in sitemap.iter("{http://www.sitemaps.org/schemas/sitemap/0.9}loc")]
    assert any(loc.endswith(f"/articles/{hostile_article['slug']}") for loc in locs)


def test_api_gives_text_as_data_and_html_sanitized(
    client: FlaskClient, hostile_article: dict[str, Any]
) -> None:
    response = client.get(
        f"/api/v1/articles/{hostile_article['slug']}", headers=hostile_article["headers"]
    )
    assert response.mimetype == "application/json"
    data = response.get_json()
    assert data["title"] == TITLE  # JSON carries text; clients escape it
    assert_inert_html(data["body_html"], "body_html")
    assert "<iframe" not in data["body_html"]


def test_a_stored_script_url_is_never_rendered_as_a_link(
    client: FlaskClient, hostile_article: dict[str, Any]
) -> None:
    """Defence in depth: a report written before validation existed, or by hand."""
    article = db.session.query(Article).filter_by(slug=hostile_article["slug"]).one()
    assert article.live_revision and article.live_revision.report
    stored = article.live_revision.report
    claim = dict(stored.claims[0])
    claim["sources"] = [{"url": u, "title": ""} for u in SCRIPT_URLS]
    stored.claims = [claim]
    db.session.commit()
    reader = make_user()
    grant(reader, article)
    login(client, reader.email)
    html = client.get(f"/articles/{article.slug}").get_data(as_text=True)
    assert_inert_html(html, "article with stored script urls")
    # The slug (made from a hostile title) is in this site's own links; look past it.
    hrefs = [
        (a.get("href") or "").replace(article.slug, "") for t, a in scan(html).tags if t == "a"
    ]
    assert not any("alert" in h or "script" in h.lower() for h in hrefs)


def test_error_pages_and_forms_escape_what_the_client_sent(client: FlaskClient) -> None:
    response = client.get("/articles/%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert response.status_code == 404
    assert_inert_html(response.get_data(as_text=True), "404 page")
    response = client.get("/login?next=javascript:alert(1)")
    page = scan(response.get_data(as_text=True))
    nexts = [a.get("value") for t, a in page.tags if t == "input" and a.get("name") == "next"]
    assert nexts == ["/"]
    from tests.support.web import csrf_token_from

    token = csrf_token_from(client, "/login")
    response = client.post("/login", data={"email": TEASER, "password": "x", "csrf_token": token})
    assert response.status_code == 401
    assert_inert_html(response.get_data(as_text=True), "login error page")


def test_login_never_redirects_off_site(client: FlaskClient) -> None:
    from tests.support.factories import PASSWORD
    from tests.support.web import csrf_token_from

    user = make_user()
    for target in (
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
        "javascript:alert(1)",
        "/%2F%2Fevil.example",
    ):
        token = csrf_token_from(client, "/login")
        response = client.post(
            "/login",
            data={"email": user.email, "password": PASSWORD, "csrf_token": token, "next": target},
        )
        assert response.status_code == 302
        location = response.headers["Location"]
        # Where a browser would go: resolved against the login page, the same host.
        resolved = urlsplit(urljoin("http://dispatch.test/login", location))
        assert (resolved.scheme, resolved.netloc) == ("http", "dispatch.test"), (target, location)
        client.post("/logout", data={"csrf_token": csrf_token_from(client, "/")})
