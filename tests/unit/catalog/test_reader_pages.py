"""Reader pages: front page, article page and paywall, structured data, the verification
policy, pages without JavaScript, the feed and the sitemap."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from flask.testing import FlaskClient

from tests.support.factories import grant, make_article, make_user
from tests.support.html import PageParser, parse_page
from tests.support.web import log_in

SUMMARY = "3 claims checked: 1 supported, 1 weak, 1 unverified"


def parse_xml(data: bytes) -> ET.Element:
    """Our own app's output in a test; expat refuses entity tricks we would not send."""
    return ET.fromstring(data)  # noqa: S314 - trusted input: the app under test


def page(client: FlaskClient, url: str, status: int = 200) -> tuple[str, PageParser]:
    response = client.get(url)
    assert response.status_code == status, (url, response.status_code)
    html = response.get_data(as_text=True)
    return html, parse_page(html)


def test_front_page_teasers_prices_and_summaries(client: FlaskClient) -> None:
    make_article(title="Thirty-nine cents", teaser="Teaser of the cheap one.", price=39)
    make_article(title="Euro dispatch", price=49, currency="eur")
    make_article(title="Pound dispatch", price=129, currency="gbp")
    make_article(title="Free dispatch", price=0)
    make_article(title="Secret draft", published=False)
    html, _ = page(client, "/")
    for text in (
        "Thirty-nine cents",
        "Teaser of the cheap one.",
        "$0.39",
        "€0.49",
        "£1.29",
        "Free",
        SUMMARY,
    ):
        assert text in html, text
    assert "Secret draft" not in html
    assert html.count(SUMMARY) == 4


def test_front_page_pages(client: FlaskClient) -> None:
    titles = [make_article(title=f"Paged dispatch {i:02d}").title for i in range(14)]
    first, _ = page(client, "/")
    second, _ = page(client, "/?page=2")
    assert titles[-1] in first and titles[0] not in first
    assert titles[0] in second and titles[-1] not in second
    assert 'href="/?page=2"' in first and 'href="/?page=1"' in second


def test_front_page_marks_what_the_reader_owns(client: FlaskClient) -> None:
    reader = make_user()
    owned = make_article(title="Already mine")
    grant(reader, owned)
    log_in(client, reader.email)
    html, _ = page(client, "/")
    assert "In your library" in html


def test_article_page_paywall(client: FlaskClient) -> None:
    article = make_article(teaser="Only the teaser.", body="Hidden body.", price=39)
    html, parsed = page(client, f"/articles/{article.slug}")
    assert "Only the teaser." in html and "Hidden body." not in html
    assert parsed.has_class("paywall")
    assert "$0.39" in html
    assert SUMMARY in html  # the summary line only, no claims
    assert "Claim number 1" not in html and not parsed.has_class("claims")
    assert f'href="/signup?next=/articles/{article.slug}"' in html


def test_article_page_full_text_and_verifier_section(client: FlaskClient) -> None:
    reader = make_user()
    article = make_article(body="The whole story.", verdicts=("supported", "weak", "unverified"))
    grant(reader, article)
    log_in(client, reader.email)
    html, parsed = page(client, f"/articles/{article.slug}")
    assert "The whole story." in html
    assert not parsed.has_class("paywall")
    assert parsed.has_class("verifier")
    assert html.index("The whole story.") < html.index('id="verifier"')  # the page ends with it
    assert SUMMARY in html
    for verdict in ("supported", "weak", "unverified"):
        assert parsed.has_class(f"verdict-{verdict}")
        assert f">{verdict.capitalize()}</span>" in html  # marked in words, not colour only
    for i in (1, 2, 3):
        assert f'href="https://source.example.org/{i}"' in html
        assert f"Claim number {i}" in html and f"note {i}" in html


@pytest.mark.parametrize("entitled", [False, True])
def test_news_article_json_ld(client: FlaskClient, entitled: bool) -> None:
    reader = make_user()
    article = make_article(teaser="Teaser for search engines.", body="Body for buyers.")
    if entitled:
        grant(reader, article)
    log_in(client, reader.email)
    _, parsed = page(client, f"/articles/{article.slug}")
    (data,) = parsed.json_ld
    assert data["@context"] == "https://schema.org"
    assert data["@type"] == "NewsArticle"
    assert data["headline"] == article.title
    assert data["description"] == "Teaser for search engines."
    assert data["isAccessibleForFree"] is False
    part = data["hasPart"]
    assert part["@type"] == "WebPageElement" and part["isAccessibleForFree"] is False
    selector = part["cssSelector"]
    assert selector.startswith(".")
    assert parsed.has_class(selector[1:]), f"no element matches {selector}"
    assert "Body for buyers." not in str(data)


def test_free_article_json_ld(client: FlaskClient) -> None:
    article = make_article(price=0, body="Free body.")
    html, parsed = page(client, f"/articles/{article.slug}")
    (data,) = parsed.json_ld
    assert data["isAccessibleForFree"] is True and "hasPart" not in data
    assert "Free body." in html


def test_open_graph_carries_the_teaser_only(client: FlaskClient) -> None:
    article = make_article(teaser="Teaser for sharing.", body="Body never shared.")
    _html, parsed = page(client, f"/articles/{article.slug}")
    assert parsed.meta["og:type"] == "article"
    assert parsed.meta["og:title"] == article.title
    assert parsed.meta["og:description"] == "Teaser for sharing."
    assert parsed.meta["og:url"] == f"http://dispatch.test/articles/{article.slug}"
    assert all("Body never shared" not in value for value in parsed.meta.values())


def test_verification_page_explains_the_policy(client: FlaskClient) -> None:
    html, _ = page(client, "/verification")
    text = " ".join(html.split())
    assert "each factual claim" in text.lower()
    assert "Only a contradicted claim blocks publication." in text
    assert "Weak and unverified claims are published as they are" in text
    for verdict in ("Supported", "Weak", "Unverified", "Contradicted"):
        assert verdict in text


def test_unknown_pages_are_404_pages(client: FlaskClient) -> None:
    html, _ = page(client, "/articles/no-such-dispatch", 404)
    assert "Not found" in html
    draft = make_article(published=False)
    page(client, f"/articles/{draft.slug}", 404)


def test_library_page(client: FlaskClient) -> None:
    response = client.get("/library")
    assert response.status_code == 302 and "/login?next=" in response.headers["Location"]
    reader = make_user()
    owned = make_article(title="In my library")
    make_article(title="Not in my library")
    grant(reader, owned)
    log_in(client, reader.email)
    html, _ = page(client, "/library")
    assert "In my library" in html and "Not in my library" not in html


def reader_pages(client: FlaskClient) -> list[str]:
    paid = make_article()
    free = make_article(price=0)
    return [
        "/",
        f"/articles/{paid.slug}",
        f"/articles/{free.slug}",
        "/verification",
        "/signup",
        "/login",
        "/logout",
        "/library",
        "/no-such-page",
    ]


@pytest.mark.parametrize("logged_in", [False, True])
def test_pages_work_without_javascript(client: FlaskClient, logged_in: bool) -> None:
    reader = make_user()
    urls = reader_pages(client)
    if logged_in:
        log_in(client, reader.email)
    for url in urls:
        response = client.get(url)
        if response.status_code == 302:
            continue  # /library for visitors: a plain redirect to the login form
        parsed = parse_page(response.get_data(as_text=True))
        assert any(a.get("name") == "viewport" for t, a in parsed.elements if t == "meta"), url
        # Scripts only as data (JSON-LD); nothing a reader must run to use the page.
        assert all(s.get("type") == "application/ld+json" for s, _text in parsed.scripts), url
        assert not any(name.startswith("on") for _t, attrs in parsed.elements for name in attrs), (
            url
        )
        for tag, attrs in parsed.elements:
            if tag == "a":
                assert not attrs.get("href", "").lower().startswith("javascript:"), url
        assert_plain_forms(parsed, url)


def assert_plain_forms(parsed: PageParser, url: str) -> None:
    """Every form submits by itself: a method, an action, a CSRF field and a submit button."""
    forms: list[list[tuple[str, dict[str, str]]]] = []
    for tag, attrs in parsed.elements:
        if tag == "form":
            forms.append([(tag, attrs)])
        elif forms:
            forms[-1].append((tag, attrs))
    for form in forms:
        (_, attrs), *inside = form
        assert attrs.get("method", "").lower() == "post", url
        assert attrs.get("action", "").startswith("/"), url
        assert any(a.get("name") == "csrf_token" and a.get("value") for _t, a in inside), url
        assert any(t == "button" and a.get("type", "submit") == "submit" for t, a in inside), url


def test_login_and_signup_forms_post_email_and_password(client: FlaskClient) -> None:
    for url in ("/login", "/signup"):
        _, parsed = page(client, url)
        names = {a.get("name") for t, a in parsed.elements if t == "input"}
        assert {"email", "password", "csrf_token"} <= names, url


def test_feed_is_well_formed_with_teasers_only(client: FlaskClient) -> None:
    published = make_article(title="In the feed", teaser="Feed teaser.", body="Feed body secret.")
    free = make_article(title="Free in the feed", price=0, body="Free body in feed?")
    make_article(title="Draft not in feed", published=False)
    response = client.get("/feed.xml")
    assert response.status_code == 200
    assert response.mimetype == "application/rss+xml"
    root = parse_xml(response.get_data())
    assert root.tag == "rss" and root.get("version") == "2.0"
    items = root.findall("./channel/item")
    assert {i.findtext("title") for i in items} == {"In the feed", "Free in the feed"}
    by_title = {i.findtext("title"): i for i in items}
    item = by_title["In the feed"]
    assert item.findtext("link") == f"http://dispatch.test/articles/{published.slug}"
    assert "Feed teaser." in (item.findtext("description") or "")
    assert "$0.39" in (item.findtext("description") or "")
    assert item.findtext("pubDate")
    text = response.get_data(as_text=True)
    assert "Feed body secret." not in text and "Free body in feed?" not in text
    assert free.slug in text


def test_feed_escapes_markup_in_titles(client: FlaskClient) -> None:
    make_article(title="Fish & <chips>", teaser="Salt & vinegar <b>")
    root = parse_xml(client.get("/feed.xml").get_data())
    assert root.findtext("./channel/item/title") == "Fish & <chips>"


def test_sitemap_lists_published_articles_only(client: FlaskClient) -> None:
    published = make_article()
    draft = make_article(published=False)
    response = client.get("/sitemap.xml")
    assert response.status_code == 200 and response.mimetype == "application/xml"
    root = parse_xml(response.get_data())
    ns = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9"}
    locs = [loc.text for loc in root.findall("./s:url/s:loc", ns)]
    assert f"http://dispatch.test/articles/{published.slug}" in locs
    assert f"http://dispatch.test/articles/{draft.slug}" not in locs
    assert "http://dispatch.test/" in locs and "http://dispatch.test/verification" in locs
    for url in root.findall("./s:url", ns):
        if "/articles/" in (url.findtext("s:loc", namespaces=ns) or ""):
            assert url.findtext("s:lastmod", namespaces=ns)


def test_tracking_parameters_do_not_break_pages(client: FlaskClient) -> None:
    article = make_article(title="Shared on social media")
    for url in ("/?utm_source=newsletter&fbclid=abc", f"/articles/{article.slug}?utm_medium=x"):
        html, _ = page(client, url)
        assert "Shared on social media" in html
    listing = client.get("/api/v1/articles?utm_source=x")
    assert listing.status_code == 200
