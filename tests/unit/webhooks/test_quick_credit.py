"""A plain top-up's `payment_intent.succeeded`, credited before Flask on PostgreSQL
(webhooks/quick_credit.py): the same answer, rows and receipt as the view's; every event
that is not the plain case is the view's to answer. On SQLite the view answers every
event, and these tests hold all the same.

A query string sends a request to the view (the quick path takes only the bare URL), so
each test compares a credit the view made with one made before Flask.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from dispatch_pay.payments.receipts import receipt_number
from dispatch_pay.wallet.ledger import find_wallet
from models import (
    ENTRY_TOPUP,
    LedgerEntry,
    OutboxMessage,
    TopUp,
    User,
    WebhookEvent,
    db,
)
from tests.support.factories import make_article, make_user
from tests.support.stripe_helpers import (
    WEBHOOK_SECRET,
    event,
    payment_intent_obj,
    recorded_topup,
    signed,
)
from tests.support.wallet import fund
from tests.support.web import answered_before_flask

WEBHOOK = "/webhooks/stripe"
VIEW = WEBHOOK + "?via=view"  # a query string: the view answers
_ids = itertools.count(1)


def quick(caplog: pytest.LogCaptureFixture, response: TestResponse) -> bool:
    return answered_before_flask(caplog, response, "quick-credit")


def pi_id() -> str:
    return f"pi_quick_{next(_ids)}_{secrets.token_hex(6)}"


def success(user_id: int, reference: str, amount: int = 500, **extra: Any) -> dict[str, Any]:
    """Stripe's `payment_intent.succeeded` for a top-up of ours, as Stripe sends it."""
    return event(
        "payment_intent.succeeded",
        payment_intent_obj(pi_id(), amount, user_id, reference=reference, **extra),
    )


def deliver(client: FlaskClient, evt: dict[str, Any], url: str = WEBHOOK) -> TestResponse:
    payload, headers = signed(evt)
    return client.post(url, data=payload, headers=headers)


def outcome(response: TestResponse) -> str:
    assert response.status_code == 200, response.data
    assert response.json is not None
    return str(response.json["outcome"])


@pytest.fixture
def reader(stripe_client: FlaskClient) -> User:
    """A reader with a wallet, after one plain credit (the quick path has learned the
    view's headers by then, whichever test ran first)."""
    user = make_user()
    fund(user, 100)
    assert outcome(deliver(stripe_client, success(user.id, recorded_topup(user.id, 500)))) == (
        "credited"
    )
    return user


def balance(user: User) -> int:
    db.session.expire_all()
    wallet = find_wallet(user.id, "usd")
    assert wallet is not None
    return wallet.balance


def topup_of(evt: dict[str, Any]) -> TopUp:
    db.session.expire_all()
    reference = evt["data"]["object"]["metadata"]["dispatch_ref"]
    topup = db.session.scalar(select(TopUp).where(TopUp.reference == reference))
    assert topup is not None
    return topup


def receipt_mail(topup: TopUp) -> OutboxMessage:
    number = receipt_number(topup.id)
    found = db.session.scalars(
        select(OutboxMessage).where(
            OutboxMessage.kind == "receipt", OutboxMessage.subject.contains(number)
        )
    ).all()
    assert len(found) == 1
    return found[0]


def generic(text: str, topup: TopUp) -> str:
    """A receipt's text with what differs between two top-ups (and minutes) replaced."""
    assert topup.payment_intent_id is not None and topup.charge_id is not None
    text = text.replace(receipt_number(topup.id), "<number>")
    text = text.replace(topup.payment_intent_id, "<pi>").replace(topup.charge_id, "<charge>")
    return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", "<date>", text)


def test_a_plain_credit_is_the_views_answer_rows_and_receipt(
    stripe_client: FlaskClient, reader: User, logs: pytest.LogCaptureFixture, postgres: bool
) -> None:
    by_view = success(reader.id, recorded_topup(reader.id, 500))
    by_quick = success(reader.id, recorded_topup(reader.id, 700), amount=700)
    viewed = deliver(stripe_client, by_view, VIEW)
    made = deliver(stripe_client, by_quick)
    assert outcome(viewed) == outcome(made) == "credited"
    assert quick(logs, viewed) is False
    assert quick(logs, made) is postgres
    assert made.data == viewed.data == b'{"outcome":"credited","received":true}\n'
    varying = ("X-Request-ID", "Content-Length")
    assert {k: v for k, v in made.headers.items() if k not in varying} == {
        k: v for k, v in viewed.headers.items() if k not in varying
    }
    assert balance(reader) == 100 + 500 + 500 + 700
    for evt, amount in ((by_view, 500), (by_quick, 700)):
        intent = evt["data"]["object"]
        topup = topup_of(evt)
        assert topup.status == "succeeded" and topup.credited_at is not None
        assert topup.payment_intent_id == intent["id"]
        assert topup.charge_id == intent["latest_charge"]
        assert topup.failure_code is None and topup.card_brand is None
        entries = db.session.scalars(
            select(LedgerEntry).where(LedgerEntry.payment_intent_id == intent["id"])
        ).all()
        assert [(e.kind, e.amount, e.reference) for e in entries] == [
            (ENTRY_TOPUP, amount, intent["id"])
        ]
        stored = db.session.scalar(
            select(WebhookEvent).where(WebhookEvent.stripe_event_id == evt["id"])
        )
        assert stored is not None
        assert (stored.type, stored.livemode, stored.outcome) == (
            "payment_intent.succeeded",
            False,
            "credited",
        )
        assert stored.payload == evt
    view_topup, quick_topup = topup_of(by_view), topup_of(by_quick)
    view_mail, quick_mail = receipt_mail(view_topup), receipt_mail(quick_topup)
    assert quick_mail.to_address == view_mail.to_address == reader.email
    assert (quick_mail.status, quick_mail.attempts) == ("queued", 0)
    assert re.fullmatch(r"<[0-9a-f]{32}@[^>]+>", quick_mail.message_id)
    assert quick_mail.message_id.split("@")[1] == view_mail.message_id.split("@")[1]
    for part in ("subject", "text_body", "html_body"):
        view_text = generic(getattr(view_mail, part), view_topup).replace("$5.00", "<amount>")
        quick_text = generic(getattr(quick_mail, part), quick_topup).replace("$7.00", "<amount>")
        assert quick_text == view_text
        assert "RECEIPT-" not in getattr(quick_mail, part)
    assert f"http://dispatch.test/wallet/receipts/{quick_topup.payment_intent_id}" in (
        quick_mail.text_body
    )


def test_receipts_made_from_one_render_carry_each_credits_own_values_escaped(
    stripe_client: FlaskClient, reader: User, logs: pytest.LogCaptureFixture, postgres: bool
) -> None:
    """Credits of one amount in one minute share a render: each receipt still shows its
    own number, charge and link, and a charge id with markup is escaped as the view does."""
    odd = "ch_a&b<i>\"c'd"
    escaped = "ch_a&amp;b&lt;i&gt;&#34;c&#39;d"
    view_evt = success(reader.id, recorded_topup(reader.id, 500), latest_charge=odd)
    assert outcome(deliver(stripe_client, view_evt, VIEW)) == "credited"
    view_topup = topup_of(view_evt)
    view_mail = receipt_mail(view_topup)
    assert escaped in view_mail.html_body and odd in view_mail.text_body
    for charge_id in (odd, "ch_plain_1", "ch_plain_2"):
        evt = success(reader.id, recorded_topup(reader.id, 500), latest_charge=charge_id)
        response = deliver(stripe_client, evt)
        assert outcome(response) == "credited" and quick(logs, response) is postgres
        topup = topup_of(evt)
        assert topup.charge_id == charge_id
        mail = receipt_mail(topup)
        assert mail.subject.startswith(f"Receipt {receipt_number(topup.id)}: $5.00")
        assert mail.text_body.endswith(f"/wallet/receipts/{topup.payment_intent_id}")
        assert f'href="http://dispatch.test/wallet/receipts/{topup.payment_intent_id}"' in (
            mail.html_body
        )
        if charge_id == odd:  # the very receipt the view made, but for its own number and ids
            for part in ("subject", "text_body", "html_body"):
                assert generic(getattr(mail, part), topup) == generic(
                    getattr(view_mail, part), view_topup
                )
        else:
            assert f"Stripe charge: {charge_id}\n" in mail.text_body
            assert odd not in mail.text_body and escaped not in mail.html_body


def test_the_receipt_link_follows_public_base_url(
    stripe_app: Flask, stripe_client: FlaskClient, reader: User, logs: pytest.LogCaptureFixture
) -> None:
    stripe_app.config["PUBLIC_BASE_URL"] = "https://dispatch.example/news"
    try:
        evt = success(reader.id, recorded_topup(reader.id, 500))
        assert outcome(deliver(stripe_client, evt)) == "credited"
    finally:
        stripe_app.config["PUBLIC_BASE_URL"] = None
    topup = topup_of(evt)
    body = receipt_mail(topup).text_body
    assert f"https://dispatch.example/news/wallet/receipts/{topup.payment_intent_id}" in body


def test_a_second_delivery_is_a_duplicate_and_changes_nothing(
    stripe_client: FlaskClient, reader: User, logs: pytest.LogCaptureFixture, postgres: bool
) -> None:
    evt = success(reader.id, recorded_topup(reader.id, 500))
    first = deliver(stripe_client, evt)
    assert outcome(first) == "credited" and quick(logs, first) is postgres
    again = deliver(stripe_client, evt)
    assert outcome(again) == "duplicate" and quick(logs, again) is False
    assert balance(reader) == 100 + 500 + 500
    messages = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.to_address == reader.email)
    ).all()
    assert len(messages) == 2  # the fixture's receipt and this one


def test_an_event_id_stored_before_is_a_duplicate_whatever_it_now_says(
    stripe_client: FlaskClient, reader: User, logs: pytest.LogCaptureFixture
) -> None:
    """Stripe's event ids are unique: an id seen before (here with another amount, not
    credited) is a duplicate, never applied again, even when its content now is plain."""
    reference = recorded_topup(reader.id, 500)
    wrong = success(reader.id, reference, amount=600)
    assert outcome(deliver(stripe_client, wrong)) == "rejected: another_amount"
    right = success(reader.id, reference)
    right["id"] = wrong["id"]
    response = deliver(stripe_client, right)
    assert outcome(response) == "duplicate" and not quick(logs, response)
    assert balance(reader) == 100 + 500
    assert topup_of(right).credited_at is None


def charge(**fields: Any) -> dict[str, Any]:
    return {"id": f"ch_{secrets.token_hex(6)}", "object": "charge", **fields}


CARD = {"payment_method_details": {"card": {"brand": "visa", "last4": "4242"}}}
FEE = {"balance_transaction": {"id": "txn_1", "fee": 45, "currency": "usd", "fee_details": []}}


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("charge with the card", "credited"),
        ("charge with a fee", "credited"),
        ("charge refunded in part", "credited"),
        ("charge disputed", "already_credited"),
        ("to buy an article", "credited"),
        ("reader id not canonical", "rejected: another_reader"),
        ("another reader", "rejected: another_reader"),
        ("another amount", "rejected: another_amount"),
        ("another currency", "rejected: another_currency"),
        ("amount above the limit", "rejected: amount_outside_limits"),
        ("not succeeded", "not_succeeded"),
        ("live event", "ignored: other_mode"),
        ("no reference", "ignored"),
        ("unknown reference", "ignored"),
        ("no charge", "credited"),
        ("no wallet yet", "credited"),
        ("top-up failed before", "credited"),
        ("top-up credited before", "already_credited"),
        ("top-up of another PaymentIntent", "rejected: another_payment_intent"),
        ("address mail needs checking", "credited"),
        ("account closed", "credited"),
    ],
)
def test_what_is_not_plain_is_the_views_to_answer(
    stripe_client: FlaskClient,
    reader: User,
    logs: pytest.LogCaptureFixture,
    case: str,
    expected: str,
) -> None:
    user = reader
    amount = 500
    reference = recorded_topup(user.id, 500)
    if case == "no wallet yet":
        user = make_user()
        reference = recorded_topup(user.id, 500)
    evt = success(user.id, reference)
    intent = evt["data"]["object"]
    meta = intent["metadata"]
    if case == "charge with the card":
        intent["latest_charge"] = charge(**CARD)
    elif case == "charge with a fee":
        intent["latest_charge"] = charge(**FEE)
    elif case == "charge refunded in part":
        intent["latest_charge"] = charge(amount_refunded=200, refunded=False)
    elif case == "charge disputed":
        intent["latest_charge"] = charge(disputed=True)
    elif case == "to buy an article":
        article = make_article(price=39)
        meta["dispatch_article"] = article.slug
    elif case == "reader id not canonical":
        meta["dispatch_reader"] = "0" + str(user.id)
    elif case == "another reader":
        meta["dispatch_reader"] = str(make_user().id)
    elif case == "another amount":
        intent["amount"] = 600
    elif case == "another currency":
        intent["currency"] = "eur"
    elif case == "amount above the limit":
        reference = recorded_topup(user.id, 10_000_000)
        meta["dispatch_ref"] = reference
        intent["amount"] = amount = 10_000_000
    elif case == "not succeeded":
        intent["status"] = "processing"
    elif case == "live event":
        evt["livemode"] = True
    elif case == "no reference":
        del meta["dispatch_ref"]
    elif case == "unknown reference":
        meta["dispatch_ref"] = secrets.token_hex(16)
    elif case == "no charge":
        intent["latest_charge"] = None
    elif case == "top-up failed before":
        topup = topup_of(evt)
        topup.status, topup.failure_code = "failed", "card_declined"
        db.session.commit()
    elif case == "top-up credited before":
        first = success(user.id, reference)
        first["data"]["object"]["id"] = intent["id"]
        assert outcome(deliver(stripe_client, first, VIEW)) == "credited"
    elif case == "top-up of another PaymentIntent":
        topup = topup_of(evt)
        topup.payment_intent_id = pi_id()
        db.session.commit()
    elif case == "account closed":  # its address erased as closing does (money goes back later)
        user.email = f"deleted-{user.id}@invalid"
        db.session.commit()
    elif case == "address mail needs checking":
        user.email = "Reader." + user.email
        db.session.commit()
    before = balance(user) if case != "no wallet yet" else 0
    response = deliver(stripe_client, evt, WEBHOOK)
    assert outcome(response) == expected
    assert quick(logs, response) is False
    credited = expected == "credited"
    bought = 39 if case == "to buy an article" else 0
    if case == "charge refunded in part":
        bought = 200  # what the card got back is taken back in the same transaction
    if case == "charge disputed":
        assert balance(user) == before  # held while the charge is disputed
    else:
        assert balance(user) == before + (amount if credited else 0) - bought
    stored = db.session.scalar(
        select(WebhookEvent).where(WebhookEvent.stripe_event_id == evt["id"])
    )
    assert stored is not None and stored.outcome == expected


def test_a_bad_signature_is_the_views_400_and_stores_nothing(
    stripe_client: FlaskClient, reader: User, logs: pytest.LogCaptureFixture
) -> None:
    evt = success(reader.id, recorded_topup(reader.id, 500))
    payload = json.dumps(evt).encode()
    for header in ("t=1,v1=00", signed(evt, secret=WEBHOOK_SECRET + "x")[1]["Stripe-Signature"]):
        response = stripe_client.post(
            WEBHOOK,
            data=payload,
            headers={"Stripe-Signature": header, "Content-Type": "application/json"},
        )
        assert response.status_code == 400 and not quick(logs, response)
        assert response.json is not None and response.json["error"]["code"] == "invalid_signature"
    assert balance(reader) == 100 + 500
    assert (
        db.session.scalar(select(WebhookEvent).where(WebhookEvent.stripe_event_id == evt["id"]))
        is None
    )


def test_another_signed_body_than_the_one_verified_is_never_credited(
    stripe_client: FlaskClient, reader: User, logs: pytest.LogCaptureFixture
) -> None:
    """The body is read once: what is verified is what is stored and credited."""
    evt = success(reader.id, recorded_topup(reader.id, 500))
    payload, headers = signed(evt)
    tampered = payload.replace(b'"amount": 500', b'"amount": 501')
    assert tampered != payload
    response = stripe_client.post(WEBHOOK, data=tampered, headers=headers)
    assert response.status_code == 400 and not quick(logs, response)
    assert balance(reader) == 100 + 500
