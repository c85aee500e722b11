"""The price moved between sight and click (issue 11, item 5).

`expected_price` on the purchase (API), the price the HTML buy form sends, and the
price the wallet page's buy-after-top-up sends: a price that differs from the current
one is refused with 409 `price_changed` and the current offer; nothing is debited or
charged.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from models import Article, LedgerEntry, Purchase, User, db
from tests.support.factories import bearer, make_article, make_token, make_user
from tests.support.servers import ROOT, LocalStripe
from tests.support.stripe_helpers import (
    CARD_3DS,
    card_payment_method,
    card_top_up,
)
from tests.support.stripe_helpers import stripe_client as stripe_api
from tests.support.wallet import fund
from tests.support.web import csrf_token_from, log_in


def change_price(client: FlaskClient, article: Article, amount: int) -> None:
    publisher = make_user(role="publisher")
    response = client.patch(
        f"/api/v1/articles/{article.slug}",
        json={"price": {"amount": amount, "currency": article.price_currency}},
        headers=bearer(make_token(publisher)),
    )
    assert response.status_code == 200, response.json
    db.session.expire_all()


def buy(client: FlaskClient, token: str, slug: str, body: Any = None) -> Any:
    return client.post(
        f"/api/v1/articles/{slug}/purchase",
        json=body,
        headers=bearer(token),
    )


def purchases_of(user: User) -> int:
    return int(
        db.session.scalar(select(func.count(Purchase.id)).where(Purchase.user_id == user.id)) or 0
    )


def entries() -> int:
    return int(db.session.scalar(select(func.count(LedgerEntry.id))) or 0)


# --- API ---------------------------------------------------------------------------------


def test_the_expected_price_buys(client: FlaskClient) -> None:
    article = make_article(price=39)
    reader = make_user()
    fund(reader, 100)
    response = buy(
        client,
        make_token(reader),
        article.slug,
        {"expected_price": {"amount": 39, "currency": "usd"}},
    )
    assert response.status_code == 201, response.json
    assert response.json["wallet"]["balance"] == {"amount": 61, "currency": "usd"}


def test_a_price_changed_since_it_was_shown_is_a_409_with_the_new_offer(
    client: FlaskClient,
) -> None:
    article = make_article(price=10)
    reader = make_user()
    fund(reader, 1000)
    token = make_token(reader)
    change_price(client, article, 450)
    before = entries()

    response = buy(
        client, token, article.slug, {"expected_price": {"amount": 10, "currency": "usd"}}
    )

    assert response.status_code == 409, response.json
    assert response.json["error"]["code"] == "price_changed"
    assert response.json["offer"]["price"] == {"amount": 450, "currency": "usd"}
    assert response.json["offer"]["purchase_url"].endswith(
        f"/api/v1/articles/{article.slug}/purchase"
    )
    assert entries() == before
    assert purchases_of(reader) == 0
    wallet = client.get("/api/v1/wallet", headers=bearer(token)).json
    assert wallet["balance"]["amount"] == 1000


@pytest.mark.parametrize(
    "expected",
    [
        {"amount": 39, "currency": "eur"},
        {"amount": 40, "currency": "usd"},
        {"amount": 0, "currency": "usd"},
    ],
)
def test_any_other_price_is_a_409(client: FlaskClient, expected: dict[str, Any]) -> None:
    article = make_article(price=39)
    reader = make_user()
    fund(reader, 100)
    response = buy(client, make_token(reader), article.slug, {"expected_price": expected})
    assert response.status_code == 409, response.json
    assert response.json["error"]["code"] == "price_changed"
    assert purchases_of(reader) == 0


@pytest.mark.parametrize(
    "expected",
    [
        "39",
        39,
        {"amount": "39", "currency": "usd"},
        {"amount": 39.0, "currency": "usd"},
        {"amount": 39},
    ],
)
def test_a_malformed_expected_price_is_a_422(client: FlaskClient, expected: Any) -> None:
    article = make_article(price=39)
    reader = make_user()
    fund(reader, 100)
    response = buy(client, make_token(reader), article.slug, {"expected_price": expected})
    assert response.status_code == 422, response.json
    assert "expected_price" in response.json["error"]["fields"]
    assert purchases_of(reader) == 0


def test_a_purchase_already_owned_answers_200_whatever_the_price_now(
    client: FlaskClient,
) -> None:
    article = make_article(price=39)
    reader = make_user()
    fund(reader, 100)
    token = make_token(reader)
    assert (
        buy(
            client, token, article.slug, {"expected_price": {"amount": 39, "currency": "usd"}}
        ).status_code
        == 201
    )
    change_price(client, article, 45)
    again = buy(client, token, article.slug, {"expected_price": {"amount": 39, "currency": "usd"}})
    assert again.status_code == 200
    assert again.json["wallet"]["balance"]["amount"] == 61


# --- HTML buy form -----------------------------------------------------------------------


def buy_form_fields(html: str) -> dict[str, str]:
    form = re.search(r'<form[^>]*class="buy-form".*?</form>', html, re.S)
    assert form, "no buy form on the page"
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form.group(0)))


def test_the_buy_form_sends_the_price_it_shows(client: FlaskClient) -> None:
    article = make_article(price=39)
    reader = make_user()
    fund(reader, 100)
    log_in(client, reader)
    fields = buy_form_fields(client.get(f"/articles/{article.slug}").get_data(as_text=True))
    assert fields["expected_amount"] == "39"
    assert fields["expected_currency"] == "usd"


def test_the_buy_form_with_a_stale_price_debits_nothing_and_says_so(client: FlaskClient) -> None:
    article = make_article(price=10)
    reader = make_user()
    fund(reader, 1000)
    log_in(client, reader)
    fields = buy_form_fields(client.get(f"/articles/{article.slug}").get_data(as_text=True))
    change_price(client, article, 450)

    response = client.post(f"/articles/{article.slug}/buy", data=fields, follow_redirects=True)

    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "$4.50" in html and "price" in html.lower()
    assert purchases_of(reader) == 0
    assert "The full text, for paying readers only." not in html


def test_the_buy_form_with_the_shown_price_buys(client: FlaskClient) -> None:
    article = make_article(price=39)
    reader = make_user()
    fund(reader, 100)
    log_in(client, reader)
    fields = buy_form_fields(client.get(f"/articles/{article.slug}").get_data(as_text=True))
    response = client.post(f"/articles/{article.slug}/buy", data=fields, follow_redirects=True)
    assert "The full text, for paying readers only." in response.get_data(as_text=True)
    assert purchases_of(reader) == 1


def test_a_buy_form_without_a_price_buys_nothing(client: FlaskClient) -> None:
    article = make_article(price=39)
    reader = make_user()
    fund(reader, 100)
    log_in(client, reader)
    token = csrf_token_from(client, f"/articles/{article.slug}")
    client.post(f"/articles/{article.slug}/buy", data={"csrf_token": token})
    assert purchases_of(reader) == 0


# --- buy after a top-up ------------------------------------------------------------------


def test_the_wallet_page_sends_the_price_it_shows_with_the_top_up(
    stripe_client: FlaskClient,
) -> None:
    article = make_article(price=39)
    log_in(stripe_client, make_user())
    html = stripe_client.get(f"/wallet?buy={article.slug}&amount=500").get_data(as_text=True)
    assert 'data-buy-amount="39"' in html
    assert 'data-buy-currency="usd"' in html
    script = (ROOT / "static" / "wallet.js").read_text()
    assert "body.expected_price" in script and "form.dataset.buyAmount" in script


def test_a_top_up_to_buy_at_a_changed_price_is_refused_before_charging(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    article = make_article(price=10)
    reader = make_user()
    token = make_token(reader)
    change_price(stripe_client, article, 450)
    listed_before = len(
        stripe_api(localstripe.base).v1.payment_intents.list(params={"limit": 100}).data
    )

    response = stripe_client.post(
        "/api/v1/wallet/topups",
        json={
            "amount": 500,
            "currency": "usd",
            "payment_method": card_payment_method(localstripe.base),
            "buy": article.slug,
            "expected_price": {"amount": 10, "currency": "usd"},
        },
        headers=bearer(token),
    )

    assert response.status_code == 409, response.json
    assert response.json["error"]["code"] == "price_changed"
    assert response.json["offer"]["price"] == {"amount": 450, "currency": "usd"}
    listed_after = len(
        stripe_api(localstripe.base).v1.payment_intents.list(params={"limit": 100}).data
    )
    assert listed_after == listed_before  # nothing charged
    assert purchases_of(reader) == 0


def test_a_price_raised_while_the_top_up_was_being_paid_does_not_buy(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    """3-D Secure takes a while: the publisher raises the price meanwhile. The top-up is
    credited; the article is not bought at a price the reader never saw."""
    article = make_article(price=39)
    reader = make_user()
    token = make_token(reader)
    response = stripe_client.post(
        "/api/v1/wallet/topups",
        json={
            "amount": 500,
            "currency": "usd",
            "payment_method": card_payment_method(localstripe.base, CARD_3DS),
            "buy": article.slug,
            "expected_price": {"amount": 39, "currency": "usd"},
        },
        headers=bearer(token),
    )
    assert response.status_code == 201, response.json
    topup = response.json["topup"]
    change_price(stripe_client, article, 450)
    stripe_api(localstripe.base).raw_request(
        "post",
        f"/v1/payment_intents/{topup['id']}/_authenticate",
        client_secret=topup["client_secret"],
        success="true",
    )
    # The webhook reports the success (a poll may be throttled).
    from tests.support.stripe_helpers import event, signed, stripe_intent_of

    payload, headers = signed(
        event("payment_intent.succeeded", stripe_intent_of(localstripe.base, topup["id"]))
    )
    assert stripe_client.post("/webhooks/stripe", data=payload, headers=headers).status_code == 200

    wallet = stripe_client.get("/api/v1/wallet", headers=bearer(token)).json
    assert wallet["balance"]["amount"] == 500
    assert purchases_of(reader) == 0


def test_a_top_up_to_buy_at_the_shown_price_buys(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    article = make_article(price=39)
    reader = make_user()
    response = card_top_up(
        stripe_client,
        localstripe.base,
        make_token(reader),
        buy=article.slug,
        expected_price={"amount": 39, "currency": "usd"},
    )
    assert response.json["topup"]["status"] == "succeeded"
    assert purchases_of(reader) == 1
