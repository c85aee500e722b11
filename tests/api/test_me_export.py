"""GET /api/v1/me/export: everything stored about the caller, no secrets, nobody else's."""

from __future__ import annotations

import json

from flask.testing import FlaskClient

from dispatch_pay.wallet.services import purchase_article
from models import db
from tests.support.factories import bearer, make_article, make_token, make_user
from tests.support.wallet import credit_topup
from tests.support.web import log_in as login_browser


def test_export_holds_everything_about_the_reader_and_no_secrets(client: FlaskClient) -> None:
    reader = make_user()
    token = make_token(reader)
    credit_topup(reader, 500, "pi_export_1")
    article = make_article(price=39)
    purchase_article(reader, article)
    db.session.commit()
    login_browser(client, reader.email)
    other = make_user()
    make_token(other)

    response = client.get("/api/v1/me/export", headers=bearer(token))
    assert response.status_code == 200
    assert "attachment" in response.headers["Content-Disposition"]
    assert "no-store" in response.headers["Cache-Control"]
    body = response.get_json()
    assert body["account"]["email"] == reader.email
    assert body["wallets"][0]["balance"] == {"amount": 461, "currency": "usd"}
    assert [e["kind"] for e in body["wallet_entries"]] == ["topup", "purchase"]
    assert body["purchases"][0]["article"]["slug"] == article.slug
    assert body["topups"][0]["id"] == "pi_export_1"
    assert len(body["tokens"]) == 1 and len(body["sessions"]) == 1
    text = json.dumps(body)
    assert token not in text and token[3:] not in text
    assert "token_hash" not in text and "client_secret" not in text
    assert other.email not in text


def test_export_by_the_browser_session(client: FlaskClient) -> None:
    reader = make_user()
    login_browser(client, reader.email)
    assert client.get("/api/v1/me/export").get_json()["account"]["email"] == reader.email
    assert client.get("/account").status_code == 200
    assert "/api/v1/me/export" in client.get("/account").get_data(as_text=True)
