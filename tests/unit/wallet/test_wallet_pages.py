"""The wallet page, the paywall's buttons and the page a finished top-up lands on."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from dispatch_pay import create_app
from dispatch_pay.wallet.ledger import locked_wallet, post_entry
from models import ENTRY_ADJUSTMENT, User, db
from tests.conftest import test_config as app_config
from tests.support.factories import bearer, make_article, make_token, make_user
from tests.support.servers import LocalStripe
from tests.support.stripe_helpers import card_top_up
from tests.support.web import csrf_token_from, log_in


def fund(user: User, amount: int) -> None:
    """Money in the wallet without Stripe (an operator's adjustment)."""
    wallet = locked_wallet(user.id, "usd")
    post_entry(wallet, ENTRY_ADJUSTMENT, amount, f"test-adjustment:{user.id}")
    db.session.commit()


def test_without_stripe_keys_top_ups_are_disabled_with_a_clear_message(
    client: FlaskClient,
) -> None:
    article = make_article()
    log_in(client, make_user())
    paywall = client.get(f"/articles/{article.slug}").get_data(as_text=True)
    assert "Buying is not available right now" in paywall
    assert "Top up" not in paywall and "buy-button" not in paywall

    wallet = client.get("/wallet").get_data(as_text=True)
    assert "Top-ups are not available right now" in wallet
    assert 'id="topup-form"' not in wallet
    assert "js.stripe.com" not in wallet


def test_without_stripe_keys_a_funded_wallet_still_buys_in_one_click(
    client: FlaskClient,
) -> None:
    """Paying from the wallet needs no card, so it needs no Stripe."""
    article = make_article(price=39)
    reader = make_user()
    fund(reader, 100)
    log_in(client, reader)
    page = client.get(f"/articles/{article.slug}").get_data(as_text=True)
    assert "Buy for $0.39" in page
    assert "Buying is not available" not in page

    token = csrf_token_from(client, f"/articles/{article.slug}")
    response = client.post(
        f"/articles/{article.slug}/buy", data={"csrf_token": token}, follow_redirects=True
    )
    html = response.get_data(as_text=True)
    assert "It&#39;s yours. $0.61 left in your wallet." in html
    assert "The full text, for paying readers only." in html


def test_the_paywall_offers_a_top_up_when_the_wallet_is_short(
    stripe_client: FlaskClient,
) -> None:
    article = make_article(price=39)
    log_in(stripe_client, make_user())
    page = stripe_client.get(f"/articles/{article.slug}").get_data(as_text=True)
    assert "Top up $5.00 and read" in page
    assert f"buy={article.slug}" in page
    wallet = stripe_client.get(f"/wallet?buy={article.slug}&amount=500").get_data(as_text=True)
    assert "is bought for you straight away" in wallet
    assert "Pay $5.00 and read" in wallet
    assert f'data-buy="{article.slug}"' in wallet


def test_a_finished_top_up_lands_on_the_article_it_bought(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    article = make_article(price=39)
    reader = make_user()
    response = card_top_up(stripe_client, localstripe.base, make_token(reader), buy=article.slug)
    pi_id = response.json["topup"]["id"]
    log_in(stripe_client, reader)

    done = stripe_client.get(f"/wallet/topups/{pi_id}/done")
    assert done.status_code == 302
    assert done.headers["Location"].endswith(f"/articles/{article.slug}")
    page = stripe_client.get(done.headers["Location"]).get_data(as_text=True)
    assert "$5.00 added to your wallet, and this dispatch is yours. $4.61 left." in page
    assert "The full text, for paying readers only." in page


def test_a_top_up_of_someone_else_is_not_shown(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    owner = make_user()
    response = card_top_up(stripe_client, localstripe.base, make_token(owner))
    pi_id = response.json["topup"]["id"]
    log_in(stripe_client, make_user())
    done = stripe_client.get(f"/wallet/topups/{pi_id}/done", follow_redirects=True)
    html = done.get_data(as_text=True)
    assert "We could not find that payment." in html
    assert "$5.00 added" not in html


def test_the_wallet_does_not_offer_to_buy_what_the_reader_owns(
    stripe_client: FlaskClient,
) -> None:
    article = make_article(price=39)
    reader = make_user()
    fund(reader, 100)
    log_in(stripe_client, reader)
    token = csrf_token_from(stripe_client, f"/articles/{article.slug}")
    stripe_client.post(f"/articles/{article.slug}/buy", data={"csrf_token": token})

    wallet = stripe_client.get(f"/wallet?buy={article.slug}").get_data(as_text=True)
    assert "is bought for you straight away" not in wallet
    assert 'data-buy=""' in wallet
    assert "Pay $5.00</button>" in wallet


def test_the_history_names_the_dispatch_each_purchase_was_for(client: FlaskClient) -> None:
    article = make_article(title="Night trains return", price=39)
    reader = make_user()
    fund(reader, 100)
    token = make_token(reader)
    assert (
        client.post(f"/api/v1/articles/{article.slug}/purchase", headers=bearer(token)).status_code
        == 201
    )

    entries = client.get("/api/v1/wallet", headers=bearer(token)).json["entries"]
    assert [(e["kind"], e.get("article")) for e in entries] == [
        ("purchase", {"slug": article.slug, "title": "Night trains return"}),
        ("adjustment", None),
    ]
    log_in(client, reader)
    page = client.get("/wallet").get_data(as_text=True)
    assert f'Purchase: <a href="/articles/{article.slug}">Night trains return</a>' in page


def test_a_secret_key_without_a_publishable_key_offers_no_top_up(
    backend: Any, client: FlaskClient, localstripe: LocalStripe
) -> None:
    """Stripe.js needs the publishable key: without it no card form can work."""
    _kind, engine = backend
    app = create_app(
        app_config(
            engine.url.render_as_string(hide_password=False),
            STRIPE_SECRET_KEY="sk_test_only",
            STRIPE_API_BASE=localstripe.base,
        ),
        configure_database=False,
    )
    with app.app_context():
        article = make_article(price=39)
        reader = make_user()
        browser = app.test_client()
        log_in(browser, reader)
        paywall = browser.get(f"/articles/{article.slug}").get_data(as_text=True)
        wallet = browser.get("/wallet").get_data(as_text=True)
    assert "Buying is not available right now" in paywall
    assert "Top up" not in paywall
    assert "Top-ups are not available right now" in wallet
