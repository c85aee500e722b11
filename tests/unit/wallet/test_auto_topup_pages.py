"""The wallet page's saved card and auto top-up forms, and the paywall with auto top-up."""

from __future__ import annotations

from flask.testing import FlaskClient

from models import User
from tests.support.factories import bearer, make_article, make_token, make_user
from tests.support.servers import LocalStripe
from tests.support.stripe_helpers import CARD_3DS, save_card
from tests.support.web import log_in

FORM = {"amount": "5.00", "below": "0.00", "monthly_limit": "20.00", "currency": "usd"}


def settings_of(client: FlaskClient, token: str) -> object:
    return client.get("/api/v1/wallet/settings", headers=bearer(token)).json["auto_topup"]


def post_form(client: FlaskClient, csrf: str, **fields: str) -> str:
    response = client.post(
        "/wallet/auto-topup", data={**FORM, **fields, "csrf_token": csrf}, follow_redirects=True
    )
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_the_auto_topup_form_switches_it_on_says_what_is_wrong_and_switches_it_off(
    stripe_client: FlaskClient,
) -> None:
    reader = make_user()
    token = make_token(reader)
    csrf = log_in(stripe_client, reader)

    refused = post_form(stripe_client, csrf, amount="0.30")
    assert "Auto top-up was not changed: amount:" in refused
    assert settings_of(stripe_client, token) is None
    above = post_form(stripe_client, csrf, below="30.00")
    assert "Auto top-up was not changed: below: Cannot be above the monthly limit." in above

    page = post_form(stripe_client, csrf)
    assert "Auto top-up is on." in page and 'id="auto-topup-status"' in page
    assert settings_of(stripe_client, token) is not None

    off = post_form(stripe_client, csrf, action="off")
    assert "Auto top-up is off." in off
    assert settings_of(stripe_client, token) is None


def ready_reader(client: FlaskClient, base: str, number: str) -> tuple[User, str]:
    reader = make_user()
    token = make_token(reader)
    save_card(client, base, token, number)
    csrf = log_in(client, reader)
    post_form(client, csrf)
    return reader, csrf


def test_the_paywall_offers_one_click_when_auto_topup_can_pay(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    _reader, _csrf = ready_reader(stripe_client, localstripe.base, "4242424242424242")
    article = make_article(price=39)
    page = stripe_client.get(f"/articles/{article.slug}").get_data(as_text=True)
    assert "Buy for $0.39" in page and 'id="auto-topup-line"' in page
    wallet = stripe_client.get("/wallet").get_data(as_text=True)
    assert "Visa ending in 4242" in wallet

    removed = stripe_client.post(
        "/wallet/card/remove", data={"csrf_token": _csrf}, follow_redirects=True
    ).get_data(as_text=True)
    assert "Your saved card was removed." in removed and "No card is saved." in removed
    page = stripe_client.get(f"/articles/{article.slug}").get_data(as_text=True)
    assert "Buy for $0.39" not in page and "Top up $5.00 and read" in page


def test_a_card_that_needs_the_reader_sends_them_to_the_wallet_with_the_reason(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    _reader, csrf = ready_reader(stripe_client, localstripe.base, CARD_3DS)
    article = make_article(price=39)
    response = stripe_client.post(
        f"/articles/{article.slug}/buy",
        data={"expected_amount": "39", "expected_currency": "usd", "csrf_token": csrf},
    )
    assert response.status_code == 302
    assert "/wallet?buy=" in response.headers["Location"]
    page = stripe_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Your bank wants you to confirm payments with your saved card" in page
