"""The publish gate: reports bound to the exact text, contradictions block, edits wait.

Driven through the publishing API with a publisher token, as the pipeline does, and
checked from a reader's side (pages and API).
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from models import Article, ArticleRevision, VerificationReport, db
from tests.support.factories import bearer, claims, grant, make_token, make_user
from tests.support.web import assert_error

CHECKED_AT = "2026-11-20T10:00:00+00:00"


class Pipeline:
    """The publishing pipeline as an API client."""

    def __init__(self, client: FlaskClient, token: str) -> None:
        self.client = client
        self.headers = bearer(token)

    def create(self, body: str, **fields: Any) -> str:
        payload = {
            "title": fields.pop("title", "Storm surge on the estuary"),
            "teaser": "The barrier held; the forecasts did not.",
            "body": body,
            "price": {"amount": 49, "currency": "usd"},
            **fields,
        }
        response = self.client.post("/api/v1/articles", json=payload, headers=self.headers)
        assert response.status_code == 201, response.get_json()
        slug: str = response.get_json()["slug"]
        return slug

    def edit(self, slug: str, **fields: Any) -> TestResponse:
        return self.client.patch(f"/api/v1/articles/{slug}", json=fields, headers=self.headers)

    def verify(self, slug: str, *verdicts: str, **extra: Any) -> TestResponse:
        report = {"verifier": "pipeline", "checked_at": CHECKED_AT, "claims": claims(*verdicts)}
        return self.client.put(
            f"/api/v1/articles/{slug}/verification", json={**report, **extra}, headers=self.headers
        )

    def publish(self, slug: str) -> TestResponse:
        return self.client.post(f"/api/v1/articles/{slug}/publish", headers=self.headers)

    def unpublish(self, slug: str) -> TestResponse:
        return self.client.post(f"/api/v1/articles/{slug}/unpublish", headers=self.headers)

    def revisions(self, slug: str) -> list[dict[str, Any]]:
        response = self.client.get(f"/api/v1/articles/{slug}/revisions", headers=self.headers)
        assert response.status_code == 200
        rows: list[dict[str, Any]] = response.get_json()["revisions"]
        return rows


@pytest.fixture()
def pipeline(client: FlaskClient) -> Pipeline:
    return Pipeline(client, make_token(make_user(role="publisher")))


def article(slug: str) -> Article:
    found = db.session.query(Article).filter_by(slug=slug).one()
    db.session.refresh(found)
    return found


def public_text(client: FlaskClient, slug: str) -> str:
    """What any reader sees of a free dispatch (its full text, when it is live)."""
    response = client.get(f"/articles/{slug}")
    return response.get_data(as_text=True) if response.status_code == 200 else ""


def test_contradicted_claim_blocks_publishing(client: FlaskClient, pipeline: Pipeline) -> None:
    slug = pipeline.create("The barrier was closed 12 times.")
    assert pipeline.verify(slug, "supported", "contradicted", "weak").status_code == 200
    body = assert_error(pipeline.publish(slug), 409, "contradicted_claims")
    (claim,) = body["claims"]
    assert claim["verdict"] == "contradicted"
    assert claim["claim"] == "Claim number 2 is contradicted."
    assert claim["sources"] == [{"url": "https://source.example.org/2", "title": "Source 2"}]
    assert article(slug).status == "draft" and article(slug).live_revision_id is None
    assert client.get(f"/articles/{slug}").status_code == 404
    assert slug not in str(client.get("/api/v1/articles").get_json())

    # Fixing the text and checking it again opens the gate.
    assert pipeline.edit(slug, body="The barrier was closed 11 times.").status_code == 200
    assert pipeline.verify(slug, "supported", "supported", "weak").status_code == 200
    assert pipeline.publish(slug).status_code == 200
    assert article(slug).status == "published"


@pytest.mark.parametrize(
    "verdicts",
    [("weak",), ("unverified",), ("weak", "unverified"), ("supported", "weak", "unverified")],
)
def test_weak_and_unverified_claims_publish(
    client: FlaskClient, pipeline: Pipeline, verdicts: tuple[str, ...]
) -> None:
    slug = pipeline.create("Body text.", price={"amount": 0, "currency": "usd"})
    pipeline.verify(slug, *verdicts)
    response = pipeline.publish(slug)
    assert response.status_code == 200
    assert response.get_json()["status"] == "published"
    page = public_text(client, slug)
    for verdict in set(verdicts):
        assert f"verdict-{verdict}" in page  # shown to readers, marked as such


def test_publish_without_report_is_missing(pipeline: Pipeline) -> None:
    slug = pipeline.create("Body text.")
    assert_error(pipeline.publish(slug), 409, "verification_missing")
    assert article(slug).status == "draft"


def test_text_edited_after_its_report_is_stale(client: FlaskClient, pipeline: Pipeline) -> None:
    slug = pipeline.create("First text.")
    pipeline.verify(slug, "supported")
    pipeline.edit(slug, body="Second text, never checked.")
    assert_error(pipeline.publish(slug), 409, "verification_stale")
    assert article(slug).status == "draft"
    state = client.get(f"/api/v1/publisher/articles/{slug}", headers=pipeline.headers).get_json()
    assert state["verification"]["state"] == "stale"
    pipeline.verify(slug, "supported", "weak")
    assert pipeline.publish(slug).status_code == 200


def test_a_title_or_price_edit_does_not_need_a_new_report(pipeline: Pipeline) -> None:
    slug = pipeline.create("Body text.")
    pipeline.verify(slug, "supported")
    pipeline.edit(slug, title="A new title", price={"amount": 129, "currency": "usd"})
    assert pipeline.publish(slug).status_code == 200
    assert len(pipeline.revisions(slug)) == 1


def test_the_same_text_again_is_not_a_new_revision(pipeline: Pipeline) -> None:
    slug = pipeline.create("Line one.\nLine two.\n")
    pipeline.verify(slug, "supported")
    # The same text with Windows line endings and trailing newlines is the same text.
    assert pipeline.edit(slug, body="Line one.\r\nLine two.\r\n\r\n").status_code == 200
    assert len(pipeline.revisions(slug)) == 1
    assert pipeline.publish(slug).status_code == 200


def test_report_is_bound_to_the_exact_text(pipeline: Pipeline) -> None:
    text = "The estuary rose 1.2 metres."
    slug = pipeline.create(text)
    digest = hashlib.sha256((text + "\n").encode()).hexdigest()
    response = pipeline.verify(slug, "supported", body_sha256=digest)
    assert response.status_code == 200
    assert response.get_json()["body_sha256"] == digest
    report = db.session.query(VerificationReport).one()
    assert report.body_sha256 == digest == report.revision.body_sha256
    assert hashlib.sha256(report.revision.body_markdown.encode()).hexdigest() == digest

    # A verifier that read another version of the text is refused, and nothing changes.
    other = hashlib.sha256(b"The estuary rose 2 metres.\n").hexdigest()
    assert_error(
        pipeline.verify(slug, "contradicted", body_sha256=other), 409, "verification_stale"
    )
    db.session.refresh(report)
    assert report.contradicted_count == 0


def test_editing_a_published_body_keeps_the_live_text(
    client: FlaskClient, pipeline: Pipeline
) -> None:
    slug = pipeline.create("Live words: the barrier held.", price={"amount": 0, "currency": "usd"})
    pipeline.verify(slug, "supported")
    pipeline.publish(slug)
    first_published_at = article(slug).published_at

    pipeline.edit(slug, body="Pending words: the barrier failed.")
    page = public_text(client, slug)
    assert "Live words" in page and "Pending words" not in page
    api = client.get(f"/api/v1/articles/{slug}").get_json()
    assert "Live words" in api["body_html"] and "Pending words" not in str(api)
    assert api["verification"]["counts"]["total"] == 1  # the live text's own report

    # The edit's report contradicts: publishing it fails and the live text stays.
    pipeline.verify(slug, "contradicted")
    assert_error(pipeline.publish(slug), 409, "contradicted_claims")
    assert "Live words" in public_text(client, slug)

    pipeline.edit(slug, body="Newer words: the barrier mostly held.")
    pipeline.verify(slug, "supported", "weak")
    assert pipeline.publish(slug).status_code == 200
    page = public_text(client, slug)
    assert "Newer words" in page and "Live words" not in page
    assert article(slug).published_at == first_published_at

    revisions = pipeline.revisions(slug)
    assert [r["number"] for r in revisions] == [3, 2, 1]
    assert [r["live"] for r in revisions] == [True, False, False]
    assert [r["verified"] for r in revisions] == [True, True, True]
    stored = db.session.query(ArticleRevision).filter_by(article_id=article(slug).id).all()
    assert {r.body_markdown.split(":")[0] for r in stored} == {
        "Live words",
        "Pending words",
        "Newer words",
    }


def test_unpublish(client: FlaskClient, pipeline: Pipeline) -> None:
    slug = pipeline.create("Words for owners.")
    pipeline.verify(slug, "supported")
    pipeline.publish(slug)
    owner = make_user()
    owner_token = make_token(owner)
    grant(owner, article(slug))
    assert client.get(f"/articles/{slug}").status_code == 200

    response = pipeline.unpublish(slug)
    assert response.status_code == 200 and response.get_json()["status"] == "draft"
    assert client.get(f"/articles/{slug}").status_code == 404
    assert_error(client.get(f"/api/v1/articles/{slug}"), 404)
    assert slug not in str(client.get("/api/v1/articles").get_json())
    assert slug not in client.get("/").get_data(as_text=True)
    assert slug not in client.get("/feed.xml").get_data(as_text=True)
    assert slug not in client.get("/sitemap.xml").get_data(as_text=True)
    # A reader who bought it keeps what they paid for.
    owned = client.get(f"/api/v1/articles/{slug}", headers=bearer(owner_token))
    assert owned.status_code == 200 and "Words for owners." in owned.get_json()["body_html"]

    # Published again, it is back, with the same text and date.
    assert pipeline.publish(slug).status_code == 200
    assert client.get(f"/articles/{slug}").status_code == 200


def test_unpublish_is_idempotent_and_draft_stays_draft(pipeline: Pipeline) -> None:
    slug = pipeline.create("Never published.")
    assert pipeline.unpublish(slug).status_code == 200
    assert pipeline.unpublish(slug).status_code == 200
    assert article(slug).status == "draft"


def test_a_new_report_replaces_the_old_one_for_the_same_text(pipeline: Pipeline) -> None:
    slug = pipeline.create("Body.")
    pipeline.verify(slug, "contradicted")
    assert_error(pipeline.publish(slug), 409, "contradicted_claims")
    pipeline.verify(slug, "weak")  # the verifier looked again at the same text
    assert pipeline.publish(slug).status_code == 200
    assert db.session.query(VerificationReport).count() == 1


def test_undoing_an_edit_brings_back_the_checked_text(
    client: FlaskClient, pipeline: Pipeline
) -> None:
    slug = pipeline.create("Checked words.", price={"amount": 0, "currency": "usd"})
    pipeline.verify(slug, "supported")
    pipeline.publish(slug)
    pipeline.edit(slug, body="Unchecked words.")
    assert_error(pipeline.publish(slug), 409, "verification_stale")
    # Back to exactly the checked text: its report (bound to that hash) applies again.
    pipeline.edit(slug, body="Checked words.")
    assert pipeline.publish(slug).status_code == 200
    revisions = pipeline.revisions(slug)
    assert [(r["number"], r["live"], r["verified"]) for r in revisions] == [
        (2, False, False),
        (1, True, True),
    ]
    assert "Checked words." in public_text(client, slug)
