"""/llms.txt and /robots.txt: public, cacheable, teasers only."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.support.factories import bearer, make_article, make_token, make_user

PAID = "Sentence-only-buyers-read"


def test_llms_txt_lists_the_catalog_and_how_an_agent_buys(client: FlaskClient) -> None:
    article = make_article(
        title="Tides [and] ports", teaser="Why the\nharbour silted.", body=f"{PAID}.", price=39
    )
    draft = make_article(title="Unpublished draft", published=False)
    response = client.get("/llms.txt")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert "public" in response.headers["Cache-Control"]
    text = response.get_data(as_text=True)
    assert text.startswith("# Dispatch\n")
    line = next(x for x in text.splitlines() if article.slug in x)
    assert line.startswith("- [Tides \\[and\\] ports](http://dispatch.test/api/v1/articles/")
    assert "Why the harbour silted." in line
    assert "Price: 39 usd" in line
    assert "Verification: 3 claims checked: 1 supported, 1 weak, 1 unverified" in line
    assert "expected_price" in text and "include=article" in text and "/mcp" in text
    assert "agent-tokens" in text
    assert draft.title not in text
    assert PAID not in text
    # An owner gets the same public text, nothing of theirs.
    owner = make_user()
    owned = client.get("/llms.txt", headers=bearer(make_token(owner))).get_data(as_text=True)
    assert PAID not in owned


def test_robots_txt_points_to_the_sitemap(client: FlaskClient) -> None:
    response = client.get("/robots.txt")
    assert response.status_code == 200
    assert "public" in response.headers["Cache-Control"]
    text = response.get_data(as_text=True)
    assert "Sitemap: http://dispatch.test/sitemap.xml" in text
    assert "User-agent: *" in text
    assert client.get("/sitemap.xml").status_code == 200
