"""DELETE /api/v1/me: the balance back to the cards (newest top-up first), the account shut,
its email erased, the ledger kept and balanced; 409 while a dispute is open."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from dispatch_pay import create_app
from dispatch_pay.accounts import links
from dispatch_pay.catalog import gifts, private_feed
from dispatch_pay.payments.gateway import Intent, PaymentProviderUnavailable
from dispatch_pay.wallet.audit import audit
from dispatch_pay.wallet.crediting import credit_intent
from dispatch_pay.wallet.disputes import open_dispute, record_card_refund
from dispatch_pay.wallet.services import purchase_article
from models import (
    ENTRY_TOPUP_REFUNDED,
    PURCHASE_REFUNDED,
    ApiToken,
    LedgerEntry,
    OutboxMessage,
    Purchase,
    TopUp,
    User,
    UserSession,
    Wallet,
    db,
)
from tests.conftest import IsolatedClient
from tests.conftest import test_config as app_config
from tests.support.factories import PASSWORD, bearer, make_article, make_token, make_user
from tests.support.fake_gateway import InMemoryGateway
from tests.support.stripe_helpers import card_top_up, recorded_topup, topup_metadata
from tests.support.web import csrf_token_from, log_in

_ids = itertools.count(1)


@dataclass(eq=False)
class RefundingGateway(InMemoryGateway):
    """Refunds succeed until `fail_from` refunds have been made (a Stripe outage)."""

    fail_from: int | None = None
    calls: list[str] = field(default_factory=list)
    # Runs once, while the first refund is with Stripe: a request made in that moment.
    meanwhile: Callable[[], None] | None = None

    def create_intent(self, **_: Any) -> Intent:
        raise AssertionError("no top-up is made through the API here")

    def refund(self, payment_intent_id: str, amount: int, idempotency_key: str) -> str:
        self.calls.append(idempotency_key)
        if self.meanwhile is not None:
            meanwhile, self.meanwhile = self.meanwhile, None
            meanwhile()
        if self.fail_from is not None and len(self.refunds) >= self.fail_from:
            raise PaymentProviderUnavailable("Stripe is down")
        return super().refund(payment_intent_id, amount, idempotency_key)


@pytest.fixture()
def gateway_app(backend: Any) -> tuple[Flask, RefundingGateway]:
    _kind, engine = backend
    gateway = RefundingGateway()
    app = create_app(
        app_config(engine.url.render_as_string(hide_password=False)),
        payment_gateway=gateway,
        configure_database=False,
    )
    app.test_client_class = IsolatedClient
    return app, gateway


@pytest.fixture()
def site(gateway_app: tuple[Flask, RefundingGateway], db_connection: Any) -> Iterator[FlaskClient]:
    app, _gateway = gateway_app
    with app.app_context():
        yield app.test_client()


@pytest.fixture()
def gateway(gateway_app: tuple[Flask, RefundingGateway]) -> RefundingGateway:
    return gateway_app[1]


def top_up(gateway: RefundingGateway, user: User, amount: int) -> str:
    pi = f"pi_close_{next(_ids)}"
    metadata = topup_metadata(user.id, recorded_topup(user.id, amount))
    intent = gateway.keep_intent(
        pi, status="succeeded", amount=amount, currency="usd", metadata=metadata
    )
    assert credit_intent(intent)
    db.session.commit()
    return pi


def delete_me(client: FlaskClient, token: str, password: str | None = PASSWORD) -> Any:
    body = {"password": password} if password is not None else {}
    return client.delete("/api/v1/me", json=body, headers=bearer(token))


def balance(user_id: int) -> int:
    db.session.expire_all()
    wallet = db.session.scalar(select(Wallet).where(Wallet.user_id == user_id))
    return wallet.balance if wallet else 0


def test_deletion_refunds_newest_first_and_shuts_the_account(
    site: FlaskClient, gateway: RefundingGateway
) -> None:
    reader = make_user()
    older = top_up(gateway, reader, 500)
    newer = top_up(gateway, reader, 500)
    purchase_article(reader, make_article(price=39))
    db.session.commit()
    token = make_token(reader)
    browser = site.application.test_client()
    log_in(browser, reader.email)
    email = reader.email

    response = delete_me(site, token)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {
        "deleted": True,
        "refunds": [
            {"topup": newer, "amount": {"amount": 500, "currency": "usd"}},
            {"topup": older, "amount": {"amount": 461, "currency": "usd"}},
        ],
    }
    assert [(pi, amount) for pi, amount, _key in gateway.refunds] == [(newer, 500), (older, 461)]
    assert balance(reader.id) == 0
    refunded = db.session.scalars(
        select(LedgerEntry.amount).where(LedgerEntry.kind == ENTRY_TOPUP_REFUNDED)
    ).all()
    assert sorted(refunded) == [-500, -461]
    user = db.session.get(User, reader.id)
    assert user is not None and email not in user.email
    assert all(t.revoked_at for t in db.session.scalars(select(ApiToken)))
    assert db.session.scalars(select(UserSession)).all() == []
    assert site.get("/api/v1/me", headers=bearer(token)).status_code == 401
    assert browser.get("/api/v1/me").status_code == 401
    login = site.post("/api/v1/tokens", json={"email": email, "password": PASSWORD})
    assert login.status_code == 401
    assert audit() == []
    # Stripe's charge.refunded for the same refund, later: nothing is debited twice.
    topup = db.session.scalar(select(TopUp).where(TopUp.payment_intent_id == newer))
    assert topup is not None and record_card_refund(topup, 500) == 0


def test_an_open_dispute_blocks_deletion(site: FlaskClient, gateway: RefundingGateway) -> None:
    reader = make_user()
    pi = top_up(gateway, reader, 500)
    topup = db.session.scalar(select(TopUp).where(TopUp.payment_intent_id == pi))
    assert topup is not None
    open_dispute(topup, "dp_1", 500, None)
    db.session.commit()
    token = make_token(reader)
    response = delete_me(site, token)
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "dispute_open"
    assert "dispute" in response.get_json()["error"]["message"]
    assert gateway.calls == []
    assert site.get("/api/v1/me", headers=bearer(token)).status_code == 200


def test_deletion_needs_the_password(site: FlaskClient, gateway: RefundingGateway) -> None:
    reader = make_user()
    token = make_token(reader)
    assert delete_me(site, token, "wrong password").status_code == 422
    assert delete_me(site, token, None).status_code == 422  # a token alone is not enough
    assert site.get("/api/v1/me", headers=bearer(token)).status_code == 200


def test_a_stripe_outage_leaves_the_account_and_a_retry_finishes(
    site: FlaskClient, gateway: RefundingGateway
) -> None:
    reader = make_user()
    top_up(gateway, reader, 500)
    top_up(gateway, reader, 700)
    token = make_token(reader)
    gateway.fail_from = 1
    response = delete_me(site, token)
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "payment_provider_unavailable"
    assert balance(reader.id) == 500  # the refund Stripe made is recorded
    assert site.get("/api/v1/me", headers=bearer(token)).status_code == 200
    gateway.fail_from = None
    assert delete_me(site, token).status_code == 200
    assert balance(reader.id) == 0
    assert sum(amount for _pi, amount, _key in gateway.refunds) == 1200
    assert audit() == []


def test_publishers_and_other_readers(site: FlaskClient, gateway: RefundingGateway) -> None:
    publisher = make_user(role="publisher")
    assert delete_me(site, make_token(publisher)).status_code == 403
    reader, other = make_user(), make_user()
    top_up(gateway, other, 500)
    assert delete_me(site, make_token(reader)).status_code == 200
    assert balance(other.id) == 500 and gateway.refunds == []


def test_the_account_page_deletes_after_a_recent_login(
    site: FlaskClient, gateway: RefundingGateway
) -> None:
    reader = make_user()
    top_up(gateway, reader, 500)
    log_in(site, reader.email)
    assert "Delete my account" in site.get("/account").get_data(as_text=True)
    token = csrf_token_from(site, "/account")
    response = site.post("/account/delete", data={"csrf_token": token})
    assert response.status_code == 302
    assert balance(reader.id) == 0
    assert site.get("/api/v1/me").status_code == 401


def test_refunds_go_through_stripe(stripe_client: FlaskClient, localstripe: Any) -> None:
    """The real gateway against localstripe: the refund is made at Stripe and recorded."""
    reader = make_user()
    token = make_token(reader)
    response = card_top_up(stripe_client, localstripe.base, token, 700)
    pi = response.get_json()["topup"]["id"]
    assert balance(reader.id) == 700
    deleted = delete_me(stripe_client, token)
    assert deleted.status_code == 200, deleted.get_json()
    assert deleted.get_json()["refunds"] == [
        {"topup": pi, "amount": {"amount": 700, "currency": "usd"}}
    ]
    assert balance(reader.id) == 0
    intent = stripe_client.application.extensions["payment_gateway"].retrieve_intent(pi)
    assert intent.status == "succeeded"
    assert audit() == []


def test_links_mailed_before_deletion_cannot_revive_the_account(
    site: FlaskClient, gateway: RefundingGateway
) -> None:
    reader = make_user()
    log_in(site, reader.email)
    token = csrf_token_from(site, "/account")
    response = site.post(
        "/account/email",
        data={"email": "revived@example.com", "password": PASSWORD, "csrf_token": token},
    )
    assert response.status_code == 302
    with site.application.test_request_context():
        links.request_password_reset(reader.email)
    (change,) = [m for m in outbox_links() if "/account/email/" in m]
    assert delete_me(site, make_token(reader)).status_code == 200
    browser = site.application.test_client()
    page = browser.get(change)
    assert page.status_code == 400
    db.session.expire_all()
    assert db.session.get(User, reader.id).email.startswith("deleted-")  # type: ignore[union-attr]


def outbox_links() -> list[str]:
    found: list[str] = []
    for body in db.session.scalars(select(OutboxMessage.text_body)):
        found += [m.removeprefix("http://dispatch.test") for m in re.findall(r"http://\S+", body)]
    return found


def test_a_purchase_made_while_stripe_refunds_never_leaves_the_wallet_below_zero(
    site: FlaskClient, gateway: RefundingGateway
) -> None:
    """Found by attack: the balance is planned for refunds, then Stripe is asked (no lock
    held); a purchase in that moment was debited too, and the deleted account's wallet
    ended at -39 with the article read and every cent back on the card."""
    reader = make_user()
    top_up(gateway, reader, 100)
    article = make_article(price=39)
    token = make_token(reader)
    reader_id, article_id = reader.id, article.id

    def buy_in_parallel() -> None:
        buyer = db.session.get(User, reader_id)
        bought = db.session.get(type(article), article_id)
        assert buyer is not None and bought is not None
        purchase_article(buyer, bought)
        db.session.commit()

    gateway.meanwhile = buy_in_parallel
    response = delete_me(site, token)

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["refunds"] == [
        {"topup": gateway.refunds[0][0], "amount": {"amount": 100, "currency": "usd"}}
    ]
    assert balance(reader_id) == 0
    bought = db.session.scalar(select(Purchase).where(Purchase.user_id == reader_id))
    assert bought is not None and bought.status == PURCHASE_REFUNDED
    assert audit() == []


def test_deletion_ends_the_private_feed_and_the_gift_links(
    site: FlaskClient, gateway: RefundingGateway
) -> None:
    """Found by attack: the feed URL and unused gift links of a deleted account kept
    serving the full text, although deletion revokes every credential."""
    secret_text = "Only-for-the-owner-and-their-gifts"
    reader = make_user()
    top_up(gateway, reader, 100)
    article = make_article(price=39, body=f"{secret_text} and more.")
    purchase_article(reader, article)
    feed_secret = private_feed.feed_secret(reader)
    gift = gifts.create_gift(reader, article)
    db.session.commit()
    assert secret_text in site.get(f"/feed/{feed_secret}.xml").get_data(as_text=True)

    assert delete_me(site, make_token(reader)).status_code == 200

    assert site.get(f"/feed/{feed_secret}.xml").status_code == 404
    stranger = site.application.test_client()
    path = f"/gift/{gift.token}"
    stranger.post(path, data={"csrf_token": csrf_token_from(stranger, path)})
    assert secret_text not in stranger.get(path).get_data(as_text=True)


def test_a_top_up_that_succeeds_after_deletion_goes_back_to_the_card(
    site: FlaskClient, gateway: RefundingGateway
) -> None:
    """Found by attack: a top-up still waiting for 3-D Secure when the account was deleted
    succeeded afterwards and was credited to the closed account, where nobody could ever
    use or refund it. `reconcile` (cron) sends such money back to the card."""
    reader = make_user()
    token = make_token(reader)
    assert delete_me(site, token).get_json() == {"deleted": True, "refunds": []}
    late = top_up(gateway, reader, 500)  # the 3-D Secure finished; the webhook credits it
    assert balance(reader.id) == 500

    result = site.application.test_cli_runner().invoke(args=["reconcile"])

    assert result.exit_code == 0, result.output
    assert [(pi, amount) for pi, amount, _key in gateway.refunds] == [(late, 500)]
    assert balance(reader.id) == 0
    assert audit() == []
    again = site.application.test_cli_runner().invoke(args=["reconcile"])
    assert again.exit_code == 0 and len(gateway.refunds) == 1
