"""GET /api/v1/purchases costs the same number of SQL statements for 1 purchase or 50:
the schema reads each purchase's article from what the service loaded, never queries."""

from __future__ import annotations

from flask.testing import FlaskClient

from dispatch_pay.wallet.services import purchase_article
from models import db
from tests.support.factories import bearer, make_article, make_token, make_user
from tests.unit.ops.test_query_counts import (  # noqa: F401  (fixtures)
    Measure,
    count_queries,
    counter,
    fund,
)


def test_listing_purchases_costs_the_same_for_1_and_50(
    client: FlaskClient,
    count_queries: Measure,  # noqa: F811
) -> None:
    reader = make_user()
    fund(reader)
    token = make_token(reader)
    purchase_article(reader, make_article(price=39))
    db.session.commit()

    def request() -> None:
        response = client.get("/api/v1/purchases", headers=bearer(token))
        assert response.status_code == 200, response.json
        assert len(response.json["purchases"]) == listed

    listed = 1
    one = count_queries(request)
    for _ in range(49):
        purchase_article(reader, make_article(price=39))
    db.session.commit()
    listed = 50
    fifty = count_queries(request)
    assert one == fifty, f"{one} statements for 1 purchase, {fifty} for 50"
    assert fifty <= 4
