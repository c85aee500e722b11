"""The publisher's dashboard: access, forms with CSRF, prices, publishing, revisions, tokens."""

from __future__ import annotations

import io
import json
import re
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select

from dispatch_pay.publisher.services import default_price
from models import ApiToken, Article, PriceChange, Purchase, User, VerificationReport, db
from tests.support.factories import bearer, claims, make_article, make_token, make_user
from tests.support.wallet import buy, fund
from tests.support.web import log_in


def publisher_session(client: FlaskClient) -> tuple[User, str]:
    publisher = make_user(role="publisher")
    return publisher, log_in(client, publisher)


def report_json(*verdicts: str, **extra: Any) -> str:
    return json.dumps(
        {"verifier": "desk", "checked_at": "2026-11-20T10:00:00Z", "claims": claims(*verdicts)}
        | extra
    )


def html(response: Any) -> str:
    return str(response.get_data(as_text=True))


def article_named(slug: str) -> Article:
    db.session.expire_all()
    article = db.session.scalar(select(Article).where(Article.slug == slug))
    assert article is not None
    return article


# --- access ------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_the_login_page(client: FlaskClient) -> None:
    for path in ("/publisher", "/publisher/sales", "/publisher/tokens", "/publisher/articles/new"):
        response = client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login?next=")


def test_readers_get_the_forbidden_page(client: FlaskClient) -> None:
    article = make_article()
    log_in(client, make_user())
    for path in ("/publisher", f"/publisher/articles/{article.slug}", "/publisher/tokens"):
        response = client.get(path)
        assert response.status_code == 403
        assert "Not allowed" in html(response)
    token = csrf_token_from_page(client)
    response = client.post(
        f"/publisher/articles/{article.slug}/price",
        data={"price": "0.01", "currency": "usd", "csrf_token": token},
    )
    assert response.status_code == 403
    assert article_named(article.slug).price_amount == 39


def csrf_token_from_page(client: FlaskClient) -> str:
    match = re.search(r'<meta name="csrf-token" content="([^"]+)"', html(client.get("/")))
    assert match
    return match.group(1)


def test_publishers_see_every_article_with_status_price_and_verification(
    client: FlaskClient,
) -> None:
    make_article(title="Live dispatch", price=45)
    make_article(title="Draft dispatch", published=False, verdicts=())
    publisher_session(client)
    page = html(client.get("/publisher"))
    assert "Live dispatch" in page and "Draft dispatch" in page
    assert 'value="0.45"' in page
    assert "Report current" in page and "No report" in page
    assert "3 claims checked" in page
    assert ">Dashboard<" in html(client.get("/"))  # the link in the header


def test_forms_without_the_csrf_token_are_refused(client: FlaskClient) -> None:
    article = make_article()
    publisher_session(client)
    response = client.post(
        f"/publisher/articles/{article.slug}/price", data={"price": "1.00", "currency": "usd"}
    )
    assert response.status_code == 400
    assert article_named(article.slug).price_amount == 39


# --- writing -----------------------------------------------------------------------


def test_preview_renders_markdown_and_saves_nothing(client: FlaskClient) -> None:
    _, token = publisher_session(client)
    form = {
        "title": "Preview me",
        "teaser": "Teaser",
        "body": "Some **bold** words\n\n<script>alert(1)</script>",
        "action": "preview",
        "csrf_token": token,
    }
    response = client.post("/publisher/articles/new", data=form)
    assert response.status_code == 200
    assert "<strong>bold</strong>" in html(response)
    assert "<script>alert(1)" not in html(response)
    assert db.session.scalar(select(func.count(Article.id))) == 0


def test_creating_a_draft_uses_the_default_price(client: FlaskClient) -> None:
    publisher, token = publisher_session(client)
    response = client.post(
        "/publisher/default-price", data={"price": "0.55", "currency": "eur", "csrf_token": token}
    )
    assert response.status_code == 302
    assert default_price() == {"amount": 55, "currency": "eur"}
    form = {"title": "Brand new", "teaser": "T", "body": "B", "action": "save", "csrf_token": token}
    response = client.post("/publisher/articles/new", data=form)
    assert response.status_code == 302
    article = article_named("brand-new")
    assert (article.price_amount, article.price_currency) == (55, "eur")
    assert article.status == "draft" and article.author_id == publisher.id
    # The API does not: the contract's `POST /api/v1/articles` requires `price`.
    api = client.post(
        "/api/v1/articles",
        json={"title": "From the pipeline", "teaser": "T", "body": "B"},
        headers=bearer(make_token(publisher)),
    )
    assert api.status_code == 422 and "price" in api.json["error"]["fields"]


def test_invalid_article_form_shows_errors_and_saves_nothing(client: FlaskClient) -> None:
    _, token = publisher_session(client)
    form = {"title": "", "teaser": "T", "body": "B", "slug": "Bad Slug", "csrf_token": token}
    response = client.post("/publisher/articles/new", data=form)
    assert response.status_code == 422
    page = html(response)
    assert "Use lowercase letters" in page
    assert db.session.scalar(select(func.count(Article.id))) == 0


def test_invalid_default_price_changes_nothing(client: FlaskClient) -> None:
    _, token = publisher_session(client)
    before = default_price()
    for bad in ("-1", "abc", "0.391", "100.01"):
        response = client.post(
            "/publisher/default-price", data={"price": bad, "currency": "usd", "csrf_token": token}
        )
        assert response.status_code == 302
        assert default_price() == before


# --- prices --------------------------------------------------------------------------


def test_inline_price_change_is_recorded_and_leaves_past_purchases_alone(
    client: FlaskClient,
) -> None:
    article = make_article(price=39)
    reader = make_user()
    fund(reader, 100)
    purchase = buy(reader, article)
    publisher, token = publisher_session(client)
    response = client.post(
        f"/publisher/articles/{article.slug}/price",
        data={"price": "0.49", "currency": "usd", "next": "dashboard", "csrf_token": token},
    )
    assert response.status_code == 302 and response.headers["Location"] == "/publisher"
    assert article_named(article.slug).price_amount == 49
    change = db.session.scalar(select(PriceChange).where(PriceChange.article_id == article.id))
    assert change is not None
    assert (change.old_amount, change.new_amount, change.changed_by_id) == (39, 49, publisher.id)
    assert db.session.get(Purchase, purchase.id).amount == 39  # type: ignore[union-attr]
    page = html(client.get(f"/publisher/articles/{article.slug}"))
    history = page.split('id="price-history"')[1]
    assert publisher.email in history and "$0.39" in history and "$0.49" in history


def test_api_price_change_writes_the_same_history(client: FlaskClient) -> None:
    article = make_article(price=39)
    publisher = make_user(role="publisher")
    response = client.patch(
        f"/api/v1/articles/{article.slug}",
        json={"price": {"amount": 25, "currency": "usd"}},
        headers=bearer(make_token(publisher)),
    )
    assert response.status_code == 200
    changes = list(db.session.scalars(select(PriceChange)))
    assert [(c.old_amount, c.new_amount, c.changed_by_id) for c in changes] == [
        (39, 25, publisher.id)
    ]
    # The same price again is no change and leaves no history line.
    client.patch(
        f"/api/v1/articles/{article.slug}",
        json={"price": {"amount": 25, "currency": "usd"}},
        headers=bearer(make_token(publisher)),
    )
    assert db.session.scalar(select(func.count(PriceChange.id))) == 1


def test_invalid_inline_price_is_refused(client: FlaskClient) -> None:
    article = make_article(price=39)
    _, token = publisher_session(client)
    response = client.post(
        f"/publisher/articles/{article.slug}/price",
        data={"price": "1,000", "currency": "usd", "csrf_token": token},
    )
    # Refused, then redirected (POST, redirect, GET): the message waits on the article page.
    assert response.status_code == 302
    assert response.headers["Location"] == f"/publisher/articles/{article.slug}#price"
    assert "Enter an amount like 0.39" in html(client.get(f"/publisher/articles/{article.slug}"))
    assert article_named(article.slug).price_amount == 39
    assert db.session.scalar(select(func.count(PriceChange.id))) == 0


def test_bulk_price_change_touches_only_the_selected_articles(client: FlaskClient) -> None:
    a, b, c = make_article(price=39), make_article(price=45), make_article(price=50)
    publisher, token = publisher_session(client)
    response = client.post(
        "/publisher/prices",
        data={
            "articles": [a.slug, b.slug],
            "price": "0.29",
            "currency": "usd",
            "csrf_token": token,
        },
    )
    assert response.status_code == 302
    assert [article_named(x.slug).price_amount for x in (a, b, c)] == [29, 29, 50]
    rows = db.session.execute(
        select(PriceChange.article_id, PriceChange.old_amount, PriceChange.changed_by_id)
    ).all()
    assert sorted(rows) == sorted([(a.id, 39, publisher.id), (b.id, 45, publisher.id)])


def test_bulk_price_change_with_nothing_selected_or_unknown_slug_changes_nothing(
    client: FlaskClient,
) -> None:
    a = make_article(price=39)
    _, token = publisher_session(client)
    client.post("/publisher/prices", data={"price": "0.29", "currency": "usd", "csrf_token": token})
    response = client.post(
        "/publisher/prices",
        data={
            "articles": [a.slug, "no-such"],
            "price": "0.29",
            "currency": "usd",
            "csrf_token": token,
        },
    )
    assert response.status_code == 404
    assert article_named(a.slug).price_amount == 39
    assert db.session.scalar(select(func.count(PriceChange.id))) == 0


# --- verification and publishing ----------------------------------------------------


def draft(client: FlaskClient, token: str, title: str = "Draft to publish") -> str:
    form = {
        "title": title,
        "teaser": "T",
        "body": "Body one",
        "action": "save",
        "csrf_token": token,
    }
    assert client.post("/publisher/articles/new", data=form).status_code == 302
    return article_named(re.sub(r"[^a-z0-9]+", "-", title.lower())).slug


def test_publishing_is_blocked_until_a_clean_current_report_exists(client: FlaskClient) -> None:
    _, token = publisher_session(client)
    slug = draft(client, token)
    page = html(client.get(f"/publisher/articles/{slug}"))
    assert "Attach a verifier report before publishing" in page

    refused = client.post(f"/publisher/articles/{slug}/publish", data={"csrf_token": token})
    assert refused.status_code == 302
    assert refused.headers["Location"] == f"/publisher/articles/{slug}#publishing"
    assert "Publishing refused" in html(client.get(f"/publisher/articles/{slug}"))

    bad = report_json("supported", "contradicted")
    client.post(
        f"/publisher/articles/{slug}/verification", data={"report_json": bad, "csrf_token": token}
    )
    refused = client.post(f"/publisher/articles/{slug}/publish", data={"csrf_token": token})
    assert refused.status_code == 302
    page = html(client.get(f"/publisher/articles/{slug}"))
    assert "1 claim is contradicted by its sources" in page
    blocked = page.split('id="blocked"')[1].split("</ul>")[0]
    assert "Claim number 2 is contradicted." in blocked
    assert "Claim number 1 is supported." not in blocked
    assert article_named(slug).status == "draft"

    upload = {
        "report_file": (io.BytesIO(report_json("supported").encode()), "report.json"),
        "csrf_token": token,
    }
    response = client.post(
        f"/publisher/articles/{slug}/verification", data=upload, content_type="multipart/form-data"
    )
    assert response.status_code == 302
    assert (
        client.post(f"/publisher/articles/{slug}/publish", data={"csrf_token": token}).status_code
        == 302
    )
    assert article_named(slug).status == "published"

    # An edit of the body makes the report stale for the new text.
    edit = {
        "title": "Draft to publish",
        "slug": slug,
        "teaser": "T",
        "body": "Body two",
        "action": "save",
        "csrf_token": token,
    }
    assert client.post(f"/publisher/articles/{slug}/edit", data=edit).status_code == 302
    page = html(client.get(f"/publisher/articles/{slug}"))
    assert "The text changed after it was checked" in page
    assert "Report stale" in page

    assert (
        client.post(f"/publisher/articles/{slug}/unpublish", data={"csrf_token": token}).status_code
        == 302
    )
    assert article_named(slug).status == "draft"


def test_invalid_reports_are_explained_and_not_attached(client: FlaskClient) -> None:
    _, token = publisher_session(client)
    slug = draft(client, token)
    cases = [
        ("{not json", "Not valid JSON"),
        ("[1, 2]", "Paste the report"),
        (
            json.dumps(
                {
                    "verifier": "desk",
                    "checked_at": "2026-11-20T10:00:00Z",
                    "claims": [{"claim": "x", "verdict": "maybe", "sources": []}],
                }
            ),
            "Must be one of",
        ),
        (report_json("supported", body_sha256="0" * 64), "another version of the text"),
    ]
    for text, message in cases:
        response = client.post(
            f"/publisher/articles/{slug}/verification",
            data={"report_json": text, "csrf_token": token},
        )
        assert response.status_code == 302, text
        assert response.headers["Location"] == f"/publisher/articles/{slug}#verification"
        page = html(client.get(response.headers["Location"]))
        assert message in page, text
        assert "The report was not attached" in page
    assert db.session.scalar(select(func.count(VerificationReport.id))) == 0


def test_revisions_list_marks_the_live_one(client: FlaskClient) -> None:
    article = make_article(body="First text")
    _, token = publisher_session(client)
    edit = {
        "title": article.title,
        "slug": article.slug,
        "teaser": "T",
        "body": "Second text",
        "action": "save",
        "csrf_token": token,
    }
    assert client.post(f"/publisher/articles/{article.slug}/edit", data=edit).status_code == 302
    page = html(client.get(f"/publisher/articles/{article.slug}"))
    rows = page.split('id="revisions"')[1].split("</table>")[0].split("<tr")[2:]
    assert len(rows) == 2
    newest, oldest = rows
    assert "Latest" in newest and "Live" not in newest
    assert "live-row" in oldest and "Live" in oldest


def test_edit_form_preview_and_validation(client: FlaskClient) -> None:
    article = make_article(body="Old body")
    _, token = publisher_session(client)
    page = html(client.get(f"/publisher/articles/{article.slug}/edit"))
    assert "Old body" in page and "<p>Old body</p>" in page
    form = {
        "title": "",
        "slug": article.slug,
        "teaser": "T",
        "body": "New",
        "action": "save",
        "csrf_token": token,
    }
    assert client.post(f"/publisher/articles/{article.slug}/edit", data=form).status_code == 422
    assert article_named(article.slug).latest_revision.body_markdown == "Old body\n"  # type: ignore[union-attr]


# --- tokens ---------------------------------------------------------------------------


def test_tokens_are_shown_once_stored_hashed_and_revocable(client: FlaskClient) -> None:
    publisher, token = publisher_session(client)
    response = client.post("/publisher/tokens", data={"name": "pipeline", "csrf_token": token})
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    secret = re.search(r'id="token-secret" value="([^"]+)"', html(response))
    assert secret
    stored = db.session.scalar(select(ApiToken).where(ApiToken.name == "pipeline"))
    assert stored is not None and stored.user_id == publisher.id
    assert secret.group(1) not in (stored.token_hash, stored.prefix)

    listing = html(client.get("/publisher/tokens"))
    assert secret.group(1) not in listing and "never" in listing

    api = client.get("/api/v1/publisher/articles", headers=bearer(secret.group(1)))
    assert api.status_code == 200
    listing = html(client.get("/publisher/tokens"))
    assert "never" not in listing.split(f'data-token="{stored.id}"')[1].split("</tr>")[0]

    revoke = client.post(f"/publisher/tokens/{stored.id}/revoke", data={"csrf_token": token})
    assert revoke.status_code == 302
    assert (
        client.get("/api/v1/publisher/articles", headers=bearer(secret.group(1))).status_code == 401
    )


def test_publishers_cannot_revoke_someone_elses_token(client: FlaskClient) -> None:
    other = make_user(role="publisher")
    make_token(other)
    theirs = db.session.scalar(select(ApiToken).where(ApiToken.user_id == other.id))
    assert theirs is not None
    _, token = publisher_session(client)
    response = client.post(f"/publisher/tokens/{theirs.id}/revoke", data={"csrf_token": token})
    assert response.status_code == 404
    db.session.expire_all()
    assert db.session.get(ApiToken, theirs.id).revoked_at is None  # type: ignore[union-attr]


def test_empty_token_name_is_refused(client: FlaskClient) -> None:
    _, token = publisher_session(client)
    response = client.post("/publisher/tokens", data={"name": "", "csrf_token": token})
    assert response.status_code == 422
    assert db.session.scalar(select(func.count(ApiToken.id))) == 0


def test_dashboard_shows_sales_count_and_revenue(client: FlaskClient) -> None:
    article = make_article(title="Bestseller", price=39)
    for _ in range(2):
        reader = make_user()
        fund(reader, 100)
        buy(reader, article)
    publisher_session(client)
    page = html(client.get("/publisher"))
    row = page.split(f'data-slug="{article.slug}"')[1].split("</tr>")[0]
    assert re.search(r'class="num sales-count">2', row)
    assert "$0.78" in row
    assert "<svg" in page


def test_dashboard_queries_do_not_grow_with_sold_verified_articles(client: FlaskClient) -> None:
    from sqlalchemy import event

    def sell_one() -> None:
        article = make_article(price=39)
        reader = make_user()
        fund(reader, 100)
        buy(reader, article)

    def statements_for_dashboard() -> int:
        count = 0

        def on_execute(*_: Any) -> None:
            nonlocal count
            count += 1

        bind = db.session.get_bind()
        event.listen(bind, "before_cursor_execute", on_execute)
        try:
            assert client.get("/publisher").status_code == 200
        finally:
            event.remove(bind, "before_cursor_execute", on_execute)
        return count

    publisher_session(client)
    sell_one()
    few = statements_for_dashboard()
    for _ in range(5):
        sell_one()
    assert statements_for_dashboard() == few
