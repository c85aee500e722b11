"""Reports: bad input is refused whole; a contradicted live report withdraws the article."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from dispatch_pay.verification import notices
from dispatch_pay.verification.notices import on_correction
from models import Article, Manifest, VerificationReport, db
from tests.support.factories import (
    bearer,
    claims,
    grant,
    make_agent_token,
    make_article,
    make_token,
    make_user,
)
from tests.support.wallet import buy, fund
from tests.support.web import assert_error, log_in

BODY = "The port cut its diesel use by half. Crane moves stayed flat.\n"


@pytest.fixture()
def editor() -> dict[str, str]:
    return bearer(make_token(make_user(role="publisher")))


def anon(client: FlaskClient, path: str) -> Any:
    client._cookies.clear()
    return client.get(path)


def a_report(claim_list: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"verifier": "v2", "checked_at": "2026-11-25T10:00:00Z", "claims": claim_list, **extra}


def stored(article: Article) -> VerificationReport:
    db.session.expire_all()
    revision = db.session.get(Article, article.id).live_revision  # type: ignore[union-attr]
    assert revision is not None and revision.report is not None
    return revision.report


def bad_claims() -> list[tuple[str, list[dict[str, Any]], str, str]]:
    """(case, claims, error code, the field named) — each must be refused, nothing stored."""
    quote = claims("supported")
    quote[0]["quote"] = "diesel use by a third"
    dup = claims("supported", "weak")
    dup[1]["claim"] = "  claim NUMBER 1 is supported. "
    dup[0]["claim"] = "Claim number 1 is supported."
    verdict = claims("supported")
    verdict[0]["verdict"] = "false"
    js_source = claims("weak")
    js_source[0]["sources"][0]["url"] = "javascript:alert(1)"
    ftp_source = claims("weak")
    ftp_source[0]["sources"][0]["url"] = "ftp://files.example.org/x"
    return [
        ("quote not in the text", quote, "quote_not_found", "quote"),
        ("duplicated claim", dup, "invalid_fields", "claim"),
        ("verdict outside the four", verdict, "invalid_fields", "verdict"),
        ("javascript source", js_source, "invalid_fields", "url"),
        ("ftp source", ftp_source, "invalid_fields", "url"),
    ]


@pytest.mark.parametrize(("case", "claim_list", "code", "field"), bad_claims())
def test_bad_claims_are_refused_with_the_field_named_and_nothing_stored(
    client: FlaskClient,
    editor: dict[str, str],
    case: str,
    claim_list: list[dict[str, Any]],
    code: str,
    field: str,
) -> None:
    article = make_article(body=BODY, verdicts=("supported",))
    before = (stored(article).claims, db.session.scalar(db_count_manifests(article)))
    response = client.put(
        f"/api/v1/articles/{article.slug}/verification", json=a_report(claim_list), headers=editor
    )
    body = assert_error(response, 422, code)
    assert "claims" in body["error"]["fields"], case
    assert field in str(body["error"]["fields"]["claims"]), (case, body)
    assert (stored(article).claims, db.session.scalar(db_count_manifests(article))) == before


def db_count_manifests(article: Article) -> Any:
    return select(func.count(Manifest.id)).where(Manifest.article_id == article.id)


def test_a_check_in_the_future_is_refused(client: FlaskClient, editor: dict[str, str]) -> None:
    article = make_article(body=BODY, verdicts=("supported",))
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    response = client.put(
        f"/api/v1/articles/{article.slug}/verification",
        json=a_report(claims("weak"), checked_at=future),
        headers=editor,
    )
    assert "checked_at" in assert_error(response, 422, "invalid_fields")["error"]["fields"]
    assert stored(article).weak_count == 0
    soon = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()  # clock skew is forgiven
    ok = client.put(
        f"/api/v1/articles/{article.slug}/verification",
        json=a_report(claims("weak"), checked_at=soon),
        headers=editor,
    )
    assert ok.status_code == 200


def test_a_quote_of_the_text_is_stored_and_returned(
    client: FlaskClient, editor: dict[str, str]
) -> None:
    article = make_article(body=BODY, verdicts=("supported",))
    claim_list = claims("weak")
    claim_list[0]["quote"] = "diesel use by half"
    response = client.put(
        f"/api/v1/articles/{article.slug}/verification", json=a_report(claim_list), headers=editor
    )
    assert response.status_code == 200
    assert response.get_json()["claims"][0]["quote"] == "diesel use by half"


def test_a_contradicted_live_report_takes_the_article_off_sale_at_once(
    client: FlaskClient, editor: dict[str, str]
) -> None:
    """Issue 11, item 4: it used to stay on sale showing '1 contradicted'."""
    article = make_article(body=BODY, verdicts=("supported",), title="Diesel halved")
    slug = article.slug
    buyer = make_user()
    grant(buyer, article)
    buyer_token = bearer(make_token(buyer))
    public = ("/", "/api/v1/articles", "/feed.xml", "/sitemap.xml")
    for path in public:  # listed, and now cached for anonymous readers
        assert slug in anon(client, path).get_data(as_text=True)
        assert anon(client, path).headers.get("X-Dispatch-Cache") == "hit"
    heard: list[tuple[str, list[int]]] = []
    listener = on_correction(lambda a, m, buyers: heard.append((m.change, buyers)))
    try:
        contradicted = claims("supported", "contradicted")
        response = client.put(
            f"/api/v1/articles/{slug}/verification", json=a_report(contradicted), headers=editor
        )
    finally:
        notices._listeners.remove(listener)
    assert response.status_code == 200
    assert heard and heard[0][1] == [buyer.id] and "Taken off sale" in heard[0][0]

    # Gone from the catalog for everyone, at once (the cached pages included).
    for path in public:
        assert slug not in anon(client, path).get_data(as_text=True), path
    assert anon(client, f"/articles/{slug}").status_code == 404
    assert_error(anon(client, f"/api/v1/articles/{slug}"), 404, "not_found")
    stranger = bearer(make_token(make_user()))
    assert_error(client.get(f"/api/v1/articles/{slug}", headers=stranger), 404, "not_found")
    sale = client.post(f"/api/v1/articles/{slug}/purchase", headers=stranger)
    assert_error(sale, 404, "not_found")

    # The buyer keeps the text, with the new report and the correction.
    mine = client.get(f"/api/v1/articles/{slug}", headers=buyer_token).get_json()
    assert mine["body"] == BODY
    assert mine["verification"]["counts"]["contradicted"] == 1
    assert "Taken off sale" in mine["corrections"][0]["what"]
    log_in(client, buyer.email)
    page = client.get(f"/articles/{slug}").get_data(as_text=True)
    assert 'id="correction-notice"' in page and "verdict-contradicted" in page
    library = client.get("/library").get_data(as_text=True)
    assert "Changed since you got it" in library and "Taken off sale" in library

    # It returns only when a text that passes the gate is published.
    assert_error(client.post(f"/api/v1/articles/{slug}/publish", headers=editor), 409)
    fixed = "The port cut its diesel use by a third. Crane moves stayed flat.\n"
    assert client.patch(f"/api/v1/articles/{slug}", json={"body": fixed}, headers=editor)
    assert (
        client.put(
            f"/api/v1/articles/{slug}/verification",
            json=a_report(claims("supported")),
            headers=editor,
        ).status_code
        == 200
    )
    assert client.post(f"/api/v1/articles/{slug}/publish", headers=editor).status_code == 200
    assert slug in anon(client, "/").get_data(as_text=True)
    assert anon(client, f"/articles/{slug}").status_code == 200


def test_a_clean_replacement_keeps_the_article_on_sale_and_records_it(
    client: FlaskClient, editor: dict[str, str]
) -> None:
    article = make_article(body=BODY, verdicts=("supported",))
    response = client.put(
        f"/api/v1/articles/{article.slug}/verification",
        json=a_report(claims("supported", "weak")),
        headers=editor,
    )
    assert response.status_code == 200
    assert anon(client, f"/articles/{article.slug}").status_code == 200
    page = anon(client, f"/articles/{article.slug}").get_data(as_text=True)
    assert "Verifier report replaced: 1 supported, 1 weak." in page  # corrections are public


def test_a_report_for_the_live_text_replaces_it_while_an_edit_waits(
    client: FlaskClient, editor: dict[str, str]
) -> None:
    article = make_article(body=BODY, verdicts=("supported",))
    live_hash = article.live_revision.body_sha256  # type: ignore[union-attr]
    client.patch(f"/api/v1/articles/{article.slug}", json={"body": "Edited.\n"}, headers=editor)
    response = client.put(
        f"/api/v1/articles/{article.slug}/verification",
        json=a_report(claims("contradicted"), body_sha256=live_hash),
        headers=editor,
    )
    assert response.status_code == 200 and response.get_json()["revision"] == 1
    assert anon(client, f"/articles/{article.slug}").status_code == 404


def test_a_buyer_buying_a_withdrawn_article_again_gets_their_purchase_not_a_404(
    client: FlaskClient, editor: dict[str, str]
) -> None:
    """Found by attack: "404 to everyone but its buyers", but buying again (how an agent's
    buy_and_read reads what it owns) answered the buyer 404 once the article was withdrawn."""
    article = make_article(body=BODY, verdicts=("supported",))
    buyer = make_user()
    fund(buyer, 100)
    bought = buy(buyer, article)
    slug = article.slug
    contradicted = a_report(claims("supported", "contradicted"))
    response = client.put(
        f"/api/v1/articles/{slug}/verification", json=contradicted, headers=editor
    )
    assert response.status_code == 200

    for token in (make_token(buyer), make_agent_token(buyer)):
        again = client.post(
            f"/api/v1/articles/{slug}/purchase?include=article", headers=bearer(token)
        )
        assert again.status_code == 200, again.get_json()
        assert again.get_json()["purchase"]["id"] == bought.id
        assert again.get_json()["article"]["body"] == BODY
        assert again.get_json()["wallet"]["balance"]["amount"] == 100 - bought.amount
    stranger = make_user()
    fund(stranger, 100)
    sale = client.post(f"/api/v1/articles/{slug}/purchase", headers=bearer(make_token(stranger)))
    assert_error(sale, 404, "not_found")
