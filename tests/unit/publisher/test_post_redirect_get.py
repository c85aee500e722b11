"""Every refused publisher form redirects (POST, redirect, GET) with its message flashed, so
the browser never stays on a POST-only URL that a reload would submit again (issue 17)."""

from __future__ import annotations

import json

from flask.testing import FlaskClient

from models import Article, db
from tests.support.factories import make_article, make_user
from tests.support.web import log_in


def test_a_refused_publish_redirects_to_the_article_with_the_reason(client: FlaskClient) -> None:
    article = make_article(published=False, verdicts=("supported", "contradicted"))
    token = log_in(client, make_user(role="publisher"))
    refused = client.post(f"/publisher/articles/{article.slug}/publish", data={"csrf_token": token})
    assert refused.status_code == 302
    assert refused.headers["Location"] == f"/publisher/articles/{article.slug}#publishing"
    page = client.get(refused.headers["Location"]).get_data(as_text=True)
    assert "Publishing refused:" in page
    assert "1 claim is contradicted by its sources" in page
    assert "claim(s)" not in page
    assert db.session.get(Article, article.id).status == "draft"  # type: ignore[union-attr]
    # Flashed once: a reload of the article page is a plain page again.
    again = client.get(f"/publisher/articles/{article.slug}").get_data(as_text=True)
    assert "Publishing refused:" not in again


def test_a_refused_report_and_price_redirect_too(client: FlaskClient) -> None:
    article = make_article(published=False)
    token = log_in(client, make_user(role="publisher"))
    report = client.post(
        f"/publisher/articles/{article.slug}/verification",
        data={"report_json": "{oops", "csrf_token": token},
    )
    assert report.status_code == 302
    assert report.headers["Location"].endswith("#verification")
    assert "Not valid JSON" in client.get(report.headers["Location"]).get_data(as_text=True)
    price = client.post(
        f"/publisher/articles/{article.slug}/price",
        data={"price": "lots", "currency": "usd", "csrf_token": token},
    )
    assert price.status_code == 302 and price.headers["Location"].endswith("#price")
    assert "Enter an amount like 0.39" in client.get(price.headers["Location"]).get_data(
        as_text=True
    )


def test_after_creating_a_token_the_tokens_tab_is_current(client: FlaskClient) -> None:
    token = log_in(client, make_user(role="publisher"))
    response = client.post("/publisher/tokens", data={"name": "pipeline", "csrf_token": token})
    assert response.status_code == 201
    page = response.get_data(as_text=True)
    assert 'href="/publisher/tokens" aria-current="page">API tokens' in page
    assert 'id="copy-token"' in page and "/static/copy.js" in page
    assert "<script>" not in page  # the copy button's script is a file (CSP: self only)


def test_sales_wording_has_no_parenthesised_plurals(client: FlaskClient) -> None:
    log_in(client, make_user(role="publisher"))
    page = client.get("/publisher/sales").get_data(as_text=True)
    assert "(s)" not in page


def test_a_report_with_thousands_of_faults_does_not_overflow_the_session_cookie(
    client: FlaskClient,
) -> None:
    """The refusal is flashed in the cookie: cut short, or the browser drops the session."""
    article = make_article(published=False)
    token = log_in(client, make_user(role="publisher"))
    report = {
        "verifier": "desk",
        "checked_at": "2026-11-20T10:00:00Z",
        "claims": [{"claim": "x" * 50, "verdict": f"maybe-{i}", "sources": []} for i in range(400)],
    }
    response = client.post(
        f"/publisher/articles/{article.slug}/verification",
        data={"report_json": json.dumps(report), "csrf_token": token},
    )
    assert response.status_code == 302
    cookie = response.headers.get("Set-Cookie", "")
    assert 0 < len(cookie) < 3000, len(cookie)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "The report was not attached" in page and "more problems are not listed here" in page
    # Still logged in: the dashboard answers, not the login page.
    assert client.get("/publisher").status_code == 200
