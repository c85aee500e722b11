"""Receipts: every credited top-up mails one; printable page and JSON for its owner only."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from dispatch_pay.payments.stripe_gateway import intent_from_payload
from dispatch_pay.wallet.disputes import record_card_refund
from dispatch_pay.wallet.services import purchase_article, refund_purchase
from models import OutboxMessage, TopUp, User, db
from tests.support.factories import bearer, make_article, make_token, make_user
from tests.support.mail import deliver
from tests.support.smtp import SMTPServer, html_part, text_part
from tests.support.wallet import credit_topup
from tests.support.web import log_in as login_browser


@pytest.fixture()
def seller(app: Flask) -> Iterator[None]:
    saved = {k: app.config.get(k) for k in ("SELLER_NAME", "SELLER_ADDRESS", "SELLER_TAX_ID")}
    app.config.update(
        SELLER_NAME="Dispatch Media Ltd",
        SELLER_ADDRESS="1 Press Row, London",
        SELLER_TAX_ID="GB123456789",
    )
    yield
    app.config.update(saved)


def credit(user: User, intent_id: str, amount: int = 500) -> bool:
    card = {"charge_id": f"ch_{intent_id}", "card_brand": "visa", "card_last4": "4242"}
    return credit_topup(user, amount, intent_id, **card) == intent_id


def mails(kind: str) -> int:
    count = db.session.scalar(
        select(func.count(OutboxMessage.id)).where(OutboxMessage.kind == kind)
    )
    return int(count or 0)


@pytest.mark.usefixtures("seller")
def test_a_credited_top_up_mails_one_receipt(client: FlaskClient, smtp: SMTPServer) -> None:
    reader = make_user()
    assert credit(reader, "pi_receipt_1")
    assert not credit(reader, "pi_receipt_1")  # the webhook again: no second receipt
    assert mails("receipt") == 1
    assert deliver(smtp) == (1, 0)
    (message,) = smtp.inbox.to(reader.email)
    text = text_part(message)
    for expected in (
        "Dispatch Media Ltd",
        "1 Press Row, London",
        "GB123456789",
        "$5.00",
        "visa ending in 4242",
        "ch_pi_receipt_1",
        "http://dispatch.test/wallet/receipts/pi_receipt_1",
    ):
        assert expected in text, expected
    assert "GB123456789" in html_part(message)
    topup = db.session.scalar(select(TopUp).where(TopUp.payment_intent_id == "pi_receipt_1"))
    assert topup is not None and (topup.card_brand, topup.card_last4) == ("visa", "4242")


def test_receipts_are_queued_outside_requests_too(app: Flask, client: FlaskClient) -> None:
    """`reconcile` credits from the command line, where there is no request to build URLs."""
    reader = make_user()
    with app.app_context():
        assert credit(reader, "pi_receipt_cli")
    assert mails("receipt") == 1


@pytest.mark.usefixtures("seller")
def test_receipt_json_and_page_for_the_owner_only(app: Flask, client: FlaskClient) -> None:
    reader, other = make_user(), make_user()
    credit(reader, "pi_receipt_2", 1000)
    response = client.get(
        "/api/v1/wallet/receipts/pi_receipt_2", headers=bearer(make_token(reader))
    )
    assert response.status_code == 200
    receipt = response.get_json()["receipt"]
    assert receipt["amount"] == {"amount": 1000, "currency": "usd"}
    assert receipt["card"] == {"brand": "visa", "last4": "4242"}
    assert receipt["charge_id"] == "ch_pi_receipt_2"
    assert receipt["seller"] == {
        "name": "Dispatch Media Ltd",
        "address": "1 Press Row, London",
        "tax_id": "GB123456789",
    }
    assert (
        client.get(
            "/api/v1/wallet/receipts/pi_receipt_2", headers=bearer(make_token(other))
        ).status_code
        == 404
    )
    assert (
        client.get(
            "/api/v1/wallet/receipts/pi_unknown", headers=bearer(make_token(reader))
        ).status_code
        == 404
    )
    assert client.get("/api/v1/wallet/receipts/pi_receipt_2").status_code == 401
    login_browser(client, reader.email)
    page = client.get("/wallet/receipts/pi_receipt_2").get_data(as_text=True)
    assert "GB123456789" in page and "$10.00" in page and "4242" in page
    stranger = app.test_client()
    login_browser(stranger, other.email)
    assert stranger.get("/wallet/receipts/pi_receipt_2").status_code == 404


def test_refunds_send_a_note(client: FlaskClient, smtp: SMTPServer) -> None:
    reader = make_user()
    credit(reader, "pi_receipt_3", 1000)
    topup = db.session.scalar(select(TopUp).where(TopUp.payment_intent_id == "pi_receipt_3"))
    assert topup is not None
    record_card_refund(topup, 300)
    record_card_refund(topup, 300)  # the same refund reported again: no second note
    db.session.commit()
    article = make_article(price=39)
    purchase = purchase_article(reader, article).purchase
    refund_purchase(reader, purchase.id)
    db.session.commit()
    assert (mails("card_refund"), mails("purchase_refund")) == (1, 1)
    deliver(smtp)
    texts = [text_part(m) for m in smtp.inbox.to(reader.email)]
    assert any("$3.00 of your top-up" in t and "4242" in t for t in texts)
    assert any(article.title in t and "$0.39 is back in your wallet" in t for t in texts)


def test_card_details_are_read_from_an_expanded_charge() -> None:
    intent = intent_from_payload(
        {
            "id": "pi_1",
            "status": "succeeded",
            "amount": 500,
            "currency": "usd",
            "latest_charge": {
                "id": "ch_1",
                "payment_method_details": {"card": {"brand": "mastercard", "last4": "4444"}},
            },
        }
    )
    assert (intent.charge_id, intent.card_brand, intent.card_last4) == (
        "ch_1",
        "mastercard",
        "4444",
    )
    odd = intent_from_payload(
        {
            "id": "pi_2",
            "status": "succeeded",
            "amount": 500,
            "currency": "usd",
            "latest_charge": {"id": "ch_2", "payment_method_details": {"card": {"last4": "x\r\n"}}},
        }
    )
    assert (odd.card_brand, odd.card_last4) == (None, None)
