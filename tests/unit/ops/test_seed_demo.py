"""`flask --app app seed-demo`: the demo publication, and running it twice changes nothing."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from dispatch_pay.demo import (
    PUBLISHER_EMAIL,
    PUBLISHER_PASSWORD,
    READER_EMAIL,
    READER_PASSWORD,
)
from models import (
    ApiToken,
    Article,
    ArticleRevision,
    Base,
    Entitlement,
    User,
    VerificationReport,
    db,
)
from tests.support.factories import bearer, make_token
from tests.support.web import assert_error, log_in


def seed(app: Flask) -> str:
    result = app.test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    return result.output


def row_counts() -> dict[str, int]:
    """Rows in every table of the schema (a second seed must add none)."""
    counts = {}
    for table in Base.metadata.sorted_tables:
        counts[table.name] = db.session.scalar(select(func.count()).select_from(table)) or 0
    return counts


def test_seed_demo_creates_the_publication(app: Flask, client: FlaskClient) -> None:
    output = seed(app)
    assert PUBLISHER_EMAIL in output and READER_EMAIL in output

    publisher = db.session.scalar(select(User).where(User.email == PUBLISHER_EMAIL))
    reader = db.session.scalar(select(User).where(User.email == READER_EMAIL))
    assert publisher is not None and publisher.role == "publisher"
    assert reader is not None and reader.role == "reader"

    published = list(db.session.scalars(select(Article).where(Article.status == "published")))
    assert len(published) >= 4
    prices = {(a.price_amount, a.price_currency) for a in published}
    assert {(39, "usd"), (49, "usd"), (129, "usd"), (0, "usd")} <= prices
    for article in published:
        assert article.live_revision is not None
        report = article.live_revision.report
        assert report is not None, article.slug
        assert report.body_sha256 == article.live_revision.body_sha256
        verdicts = {claim["verdict"] for claim in report.claims}
        assert verdicts == {"supported", "weak", "unverified"}, (article.slug, verdicts)
        assert all(claim["sources"] for claim in report.claims)
        assert article.teaser and len(article.live_revision.body_markdown) > 200

    drafts = list(db.session.scalars(select(Article).where(Article.status == "draft")))
    assert len(drafts) >= 1
    blocked = [
        a
        for a in drafts
        if a.latest_revision is not None
        and a.latest_revision.report is not None
        and a.latest_revision.report.contradicted_count > 0
    ]
    assert blocked, "no draft with a contradicted claim"
    assert blocked[0].live_revision_id is None


def test_demo_draft_stays_unpublished(app: Flask, client: FlaskClient) -> None:
    seed(app)
    draft = db.session.scalar(select(Article).where(Article.status == "draft"))
    assert draft is not None
    publisher = db.session.scalar(select(User).where(User.email == PUBLISHER_EMAIL))
    assert publisher is not None
    token = make_token(publisher)
    response = client.post(f"/api/v1/articles/{draft.slug}/publish", headers=bearer(token))
    body = assert_error(response, 409, "contradicted_claims")
    assert body["claims"] and all(c["verdict"] == "contradicted" for c in body["claims"])
    assert client.get(f"/articles/{draft.slug}").status_code == 404
    assert draft.title not in client.get("/").get_data(as_text=True)


def test_demo_logins_work(app: Flask, client: FlaskClient) -> None:
    seed(app)
    log_in(client, READER_EMAIL, READER_PASSWORD)
    assert client.get("/api/v1/me").get_json()["user"]["email"] == READER_EMAIL
    pipeline = app.test_client()  # a machine client: no browser session
    response = pipeline.post(
        "/api/v1/tokens", json={"email": PUBLISHER_EMAIL, "password": PUBLISHER_PASSWORD}
    )
    assert response.status_code == 201, response.get_json()
    token = response.get_json()["token"]
    me = client.get("/api/v1/me", headers=bearer(token)).get_json()
    assert me["user"]["role"] == "publisher"


def test_demo_front_page(app: Flask, client: FlaskClient) -> None:
    seed(app)
    html = client.get("/").get_data(as_text=True)
    for price in ("$0.39", "$0.49", "$1.29", "Free"):
        assert price in html
    assert "claims checked" in html


def test_seed_demo_twice_changes_nothing(app: Flask, client: FlaskClient) -> None:
    seed(app)
    before = row_counts()
    assert before["articles"] >= 5 and before["users"] == 2
    snapshot = {
        a.slug: (a.status, a.price_amount, a.live_revision_id, a.published_at)
        for a in db.session.scalars(select(Article))
    }
    output = seed(app)
    assert "nothing changed" in output.lower()
    db.session.expire_all()
    assert row_counts() == before
    assert {
        a.slug: (a.status, a.price_amount, a.live_revision_id, a.published_at)
        for a in db.session.scalars(select(Article))
    } == snapshot
    # Named explicitly too, so the check cannot pass on an empty schema listing.
    for model in (User, ApiToken, Article, ArticleRevision, VerificationReport, Entitlement):
        assert model.__tablename__ in before
