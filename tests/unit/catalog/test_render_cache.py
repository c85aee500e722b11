"""The full text is rendered once per revision and catalog version, never served stale,
and never instead of the read gate."""

from __future__ import annotations

from datetime import UTC, datetime

from flask.testing import FlaskClient

from dispatch_pay.publisher.services import publish, update_article
from dispatch_pay.verification.services import attach_report
from models import Entitlement, db
from tests.support.factories import bearer, claims, grant, make_article, make_token, make_user
from tests.support.web import log_in


def _republish(article_id: int, body: str) -> None:
    from models import Article

    article = db.session.get(Article, article_id)
    assert article is not None
    update_article(article, {"body": body}, None)
    attach_report(
        article,
        {
            "verifier": "second-verifier",
            "checked_at": datetime(2026, 11, 2, tzinfo=UTC),
            "claims": claims("supported"),
        },
    )
    publish(article)
    db.session.commit()


def test_a_new_revision_is_served_at_once_to_owners_page_and_api(client: FlaskClient) -> None:
    article = make_article(body="First words of the text.")
    reader = make_user()
    grant(reader, article)
    token = make_token(reader)
    api, page = f"/api/v1/articles/{article.slug}", f"/articles/{article.slug}"
    assert "First words" in client.get(api, headers=bearer(token)).json["body_html"]
    log_in(client, reader)
    assert "First words" in client.get(page).get_data(as_text=True)

    _republish(article.id, "Corrected words of the text.")

    body = client.get(api, headers=bearer(token)).json
    assert "Corrected words" in body["body_html"] and "First words" not in body["body_html"]
    assert body["verification"]["verifier"] == "second-verifier"
    assert body["corrections"], "the correction is listed with the new text"
    html = client.get(page).get_data(as_text=True)
    assert "Corrected words" in html and "First words" not in html
    assert "second-verifier" in html


def test_a_rendered_text_is_not_served_once_the_gate_closes(client: FlaskClient) -> None:
    article = make_article(body="Words only owners read.")
    reader = make_user()
    grant(reader, article)
    token = make_token(reader)
    api = f"/api/v1/articles/{article.slug}"
    assert client.get(api, headers=bearer(token)).status_code == 200  # rendered and kept
    db.session.query(Entitlement).filter_by(user_id=reader.id).delete()
    db.session.commit()
    response = client.get(api, headers=bearer(token))
    assert response.status_code == 402
    assert "Words only owners read." not in response.get_data(as_text=True)
    # Another reader who never owned it gets the offer too, not the kept rendering.
    other = make_token(make_user())
    assert client.get(api, headers=bearer(other)).status_code == 402


def test_a_kept_gift_and_an_own_gift_link_still_show_on_the_cached_page(
    client: FlaskClient,
) -> None:
    article = make_article(body="Gifted words.")
    giver = make_user()
    grant(giver, article)
    log_in(client, giver)
    page = f"/articles/{article.slug}"
    assert 'id="gift-button"' in client.get(page).get_data(as_text=True)
    token = client.get(page).get_data(as_text=True)  # the same rendering, from the cache
    assert "Gifted words." in token
    response = client.post(
        f"/api/v1/articles/{article.slug}/gifts", headers=bearer(make_token(giver))
    )
    assert response.status_code == 201, response.json
    html = client.get(page).get_data(as_text=True)
    assert response.json["gift"]["url"] in html  # the giver's own link, not cached away


def test_an_owner_read_answered_before_flask_matches_the_view_and_keeps_the_gate(
    client: FlaskClient,
) -> None:
    from dispatch_pay.accounts.services import revoke_token
    from models import ApiToken

    article = make_article(body="Owner words.")
    reader = make_user()
    grant(reader, article)
    token = make_token(reader)
    api = f"/api/v1/articles/{article.slug}"
    first = client.get(api, headers=bearer(token))  # the view renders it
    second = client.get(api, headers=bearer(token))  # the owner fast path may answer
    assert first.status_code == second.status_code == 200
    assert first.data == second.data
    same = {k: v for k, v in first.headers.items() if k != "X-Request-ID"}
    assert same == {k: v for k, v in second.headers.items() if k != "X-Request-ID"}
    assert "no-store" in second.headers["Cache-Control"]  # per reader: never shared
    # A Markdown request, a revoked token: the app answers them, never the stored JSON.
    markdown = client.get(api, headers={**bearer(token), "Accept": "text/markdown"})
    assert markdown.status_code == 200 and markdown.mimetype == "text/markdown"
    stored = db.session.query(ApiToken).filter_by(user_id=reader.id).one()
    revoke_token(reader, stored.id)
    db.session.commit()
    assert client.get(api, headers=bearer(token)).status_code == 401
