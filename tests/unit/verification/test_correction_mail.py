"""Buyers hear about corrections by mail: once per change, none of the paid text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from dispatch_pay.verification.correction_mail import KIND, mail_buyers
from dispatch_pay.verification.manifests import latest_manifest
from dispatch_pay.verification.notices import buyer_ids
from dispatch_pay.verification.services import attach_report
from dispatch_pay.wallet.closing import shut_account
from models import Article, Manifest, OutboxMessage, User, db
from tests.support.factories import bearer, claims, grant, make_article, make_token, make_user
from tests.support.mail import deliver
from tests.support.smtp import SMTPServer, html_part, text_part

BODY = "The port cut its diesel use by half. Crane moves stayed flat.\n"
TITLE = "Diesel halved at the port"


@pytest.fixture()
def editor() -> dict[str, str]:
    return bearer(make_token(make_user(role="publisher")))


def report(*verdicts: str) -> dict[str, Any]:
    claim_list = claims(*verdicts)
    claim_list[0]["quote"] = "diesel use by half"
    return {"verifier": "v2", "checked_at": "2026-11-25T10:00:00Z", "claims": claim_list}


def put_report(
    client: FlaskClient, editor: dict[str, str], article: Article, *verdicts: str
) -> None:
    response = client.put(
        f"/api/v1/articles/{article.slug}/verification", json=report(*verdicts), headers=editor
    )
    assert response.status_code == 200, response.get_json()


def correction_mail(to: str | None = None) -> list[OutboxMessage]:
    query = select(OutboxMessage).where(OutboxMessage.kind == KIND).order_by(OutboxMessage.id)
    if to is not None:
        query = query.where(OutboxMessage.to_address == to)
    return list(db.session.scalars(query))


def an_owned_article() -> tuple[Article, User]:
    article = make_article(body=BODY, verdicts=("supported",), title=TITLE)
    buyer = make_user()
    grant(buyer, article)
    return article, buyer


def test_a_buyer_gets_one_mail_when_the_live_report_is_replaced(
    client: FlaskClient, editor: dict[str, str]
) -> None:
    article, buyer = an_owned_article()
    stranger = make_user()
    put_report(client, editor, article, "supported", "weak")
    (message,) = correction_mail()
    assert message.to_address == buyer.email
    assert TITLE in message.subject
    assert "Verifier report replaced: " in message.text_body
    assert f"/articles/{article.slug}" in message.text_body
    assert f"/api/v1/articles/{article.slug}/manifest" in message.html_body
    assert correction_mail(stranger.email) == []


def test_withdrawal_by_a_contradicted_report_mails_the_buyer_once(
    client: FlaskClient, editor: dict[str, str]
) -> None:
    article, buyer = an_owned_article()
    put_report(client, editor, article, "supported", "contradicted")
    (message,) = correction_mail()
    assert message.to_address == buyer.email
    assert "Taken off sale" in message.text_body and "Taken off sale" in message.html_body


def test_deleted_accounts_and_publishers_get_nothing(
    app: Flask, client: FlaskClient, editor: dict[str, str]
) -> None:
    article, buyer = an_owned_article()
    gone = make_user()
    grant(gone, article)
    publisher = make_user(role="publisher")
    grant(publisher, article)
    with app.test_request_context():
        shut_account(gone)
    db.session.commit()
    assert set(buyer_ids(article)) == {buyer.id, gone.id, publisher.id}
    put_report(client, editor, article, "supported", "weak")
    assert [m.to_address for m in correction_mail()] == [buyer.email]


def test_a_change_that_rolls_back_queues_nothing(client: FlaskClient) -> None:
    article, _buyer = an_owned_article()
    data = report("supported", "weak")
    data["checked_at"] = datetime(2026, 11, 25, 10, tzinfo=UTC)
    with pytest.raises(RuntimeError), db.session.begin_nested():
        attach_report(db.session.get(Article, article.id), data)  # type: ignore[arg-type]
        assert len(correction_mail()) == 1  # queued in the change's transaction...
        raise RuntimeError("the change failed after the manifest was signed")
    assert correction_mail() == []  # ...and gone with it


def test_the_listener_called_twice_for_one_change_queues_one_mail(
    client: FlaskClient, editor: dict[str, str]
) -> None:
    article, buyer = an_owned_article()
    put_report(client, editor, article, "supported", "weak")
    manifest = latest_manifest(article)
    assert manifest is not None
    mail_buyers(article, manifest, [buyer.id])
    mail_buyers(article, manifest, [buyer.id])
    assert len(correction_mail(buyer.email)) == 1


def test_at_most_one_mail_per_article_per_reader_per_hour(
    client: FlaskClient, editor: dict[str, str]
) -> None:
    article, buyer = an_owned_article()
    for verdicts in (("supported", "weak"), ("supported", "unverified"), ("weak",)):
        put_report(client, editor, article, *verdicts)  # a publisher replacing in a loop
    assert len(correction_mail(buyer.email)) == 1
    # An hour later the next change is mailed again.
    for manifest in db.session.scalars(select(Manifest).where(Manifest.article_id == article.id)):
        manifest.created_at -= timedelta(hours=1, minutes=1)
    db.session.commit()
    put_report(client, editor, article, "supported")
    assert len(correction_mail(buyer.email)) == 2


def test_the_delivered_mail_has_none_of_the_paid_text(
    app: Flask, client: FlaskClient, editor: dict[str, str], smtp: SMTPServer
) -> None:
    article, buyer = an_owned_article()
    put_report(client, editor, article, "supported", "contradicted")
    db.session.commit()
    with app.test_request_context():
        assert deliver(smtp) == (1, 0)
    (message,) = smtp.inbox.to(buyer.email)
    stored = report("supported", "contradicted")["claims"]
    paid = [
        BODY.strip(),
        "diesel use by half",
        "Crane moves",
        *(c["claim"] for c in stored),
        *(c["note"] for c in stored),
        *(s["url"] for c in stored for s in c["sources"]),
    ]
    for part in (text_part(message), html_part(message), str(message["Subject"])):
        assert TITLE in part
        for secret in paid:
            assert secret not in part, secret


def test_a_hostile_title_is_escaped_and_cannot_inject_headers(
    client: FlaskClient, editor: dict[str, str]
) -> None:
    article, buyer = an_owned_article()
    article = db.session.get(Article, article.id)  # type: ignore[assignment]
    article.title = 'Diesel <img src=x onerror="alert(1)">\r\nBcc: victim@example.com'
    db.session.commit()
    put_report(client, editor, article, "supported", "weak")
    (message,) = correction_mail(buyer.email)
    assert "\r" not in message.subject and "\n" not in message.subject
    assert "<img" not in message.html_body and "&lt;img" in message.html_body
