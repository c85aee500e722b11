"""Publishers don't buy: the rule lives in the purchase service, so every way in refuses.

The publisher here has money in a wallet, so a refusal cannot be the wallet being short.
"""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from dispatch_pay.errors import DomainError
from dispatch_pay.wallet.services import purchase_article
from models import Purchase, User, Wallet, db
from tests.support.factories import bearer, make_article, make_token, make_user
from tests.support.wallet import fund
from tests.support.web import assert_error, csrf_token_from, log_in


def funded_publisher() -> User:
    publisher = make_user(role="publisher")
    fund(publisher, 500)
    return publisher


def purchases_of(user: User) -> int:
    found = select(func.count(Purchase.id)).where(Purchase.user_id == user.id)
    return int(db.session.scalar(found) or 0)


def balance_of(user: User) -> int:
    wallet = db.session.scalar(select(Wallet).where(Wallet.user_id == user.id))
    assert wallet is not None
    db.session.refresh(wallet)
    return wallet.balance


def test_the_purchase_service_refuses_a_publisher(client: FlaskClient) -> None:
    publisher = funded_publisher()
    with pytest.raises(DomainError) as refused:
        purchase_article(publisher, make_article(price=39))
    assert (refused.value.code, refused.value.status) == ("forbidden", 403)
    assert purchases_of(publisher) == 0


def test_the_api_refuses_a_publisher_with_money(client: FlaskClient) -> None:
    publisher = funded_publisher()
    article = make_article(price=39)
    response = client.post(
        f"/api/v1/articles/{article.slug}/purchase", headers=bearer(make_token(publisher))
    )
    assert_error(response, 403, "forbidden")
    assert (purchases_of(publisher), balance_of(publisher)) == (0, 500)


def test_the_paywall_button_refuses_a_publisher_with_money(client: FlaskClient) -> None:
    """Before the rule moved into the service, this form bought the article."""
    publisher = funded_publisher()
    article = make_article(price=39)
    log_in(client, publisher)
    token = csrf_token_from(client, f"/articles/{article.slug}")
    response = client.post(f"/articles/{article.slug}/buy", data={"csrf_token": token})
    assert response.status_code == 302
    assert (purchases_of(publisher), balance_of(publisher)) == (0, 500)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Publishers read everything already." in page
