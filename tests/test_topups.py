from __future__ import annotations

from flask.testing import FlaskClient

from tests.factories import bearer, make_article, make_token, make_user
from tests.servers import LocalStripe
from tests.stripe_support import card_top_up


def test_topup_then_one_click_purchase(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    article = make_article(price=39)
    token = make_token(make_user())
    response = card_top_up(stripe_client, localstripe.base, token)
    assert response.json["topup"]["status"] == "succeeded"
    assert response.json["topup"]["id"].startswith("pi_")
    bought = stripe_client.post(f"/api/v1/articles/{article.slug}/purchase", headers=bearer(token))
    assert bought.status_code == 201
    assert bought.json["wallet"]["balance"] == {"amount": 461, "currency": "usd"}
