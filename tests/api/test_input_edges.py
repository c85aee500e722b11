"""Input that once reached the database and failed there as a 500 (found by schemathesis
or by reading what it would try): each is now the contract's 404 or 422, on both backends."""

from __future__ import annotations

from flask.testing import FlaskClient

from dispatch_pay.inputs import UNSAFE_TEXT
from tests.support.factories import bearer, make_article, make_token, make_user
from tests.support.web import csrf_token_from

NUL = "\x00"


def test_a_nul_in_a_path_is_not_found(client: FlaskClient) -> None:
    token = make_token(make_user(role="publisher"))
    for url in (
        "/articles/a%00b",
        "/api/v1/articles/a%00b",
        "/api/v1/publisher/articles/a%00b",
        "/api/v1/wallet/topups/pi_%00",
    ):
        response = client.get(url, headers=bearer(token))
        assert response.status_code == 404, url


def test_a_nul_in_a_json_field_is_an_invalid_field(client: FlaskClient) -> None:
    token = make_token(make_user(role="publisher"))
    response = client.post(
        "/api/v1/articles",
        json={"title": "Fine", "teaser": "Fine", "body": f"Not{NUL}fine"},
        headers=bearer(token),
    )
    assert response.status_code == 422
    assert response.json["error"]["fields"] == {"body": [UNSAFE_TEXT]}
    nested = client.put(
        f"/api/v1/articles/{make_article(published=False).slug}/verification",
        json={"verifier": "v", "checked_at": "2026-11-01T00:00:00Z", "claims": [{"claim": NUL}]},
        headers=bearer(token),
    )
    assert nested.status_code == 422
    assert nested.json["error"]["fields"] == {"claims": {"0": {"claim": [UNSAFE_TEXT]}}}


def test_unpaired_surrogates_are_invalid_too(client: FlaskClient) -> None:
    response = client.post(
        "/api/v1/tokens",
        data='{"email": "a\\ud800@example.com", "password": "x"}',
        content_type="application/json",
    )
    assert response.status_code == 422


def test_a_nul_in_a_query_or_a_form_is_an_invalid_field(client: FlaskClient) -> None:
    token = make_token(make_user())
    assert client.get(f"/api/v1/me?x={NUL}", headers=bearer(token)).status_code == 422
    assert client.get(f"/?page=1{NUL}").status_code == 422
    response = client.post(
        "/login",
        data={
            "email": f"a{NUL}@example.com",
            "password": "x",
            "csrf_token": csrf_token_from(client),
        },
    )
    assert response.status_code == 422
    assert response.mimetype == "text/html"


def test_a_patched_price_needs_its_currency(client: FlaskClient) -> None:
    """`partial` reaches only the top-level fields: a price sent is a whole price."""
    token = make_token(make_user(role="publisher"))
    article = make_article(published=False)
    response = client.patch(
        f"/api/v1/articles/{article.slug}", json={"price": {"amount": 0}}, headers=bearer(token)
    )
    assert response.status_code == 422
    assert response.json["error"]["fields"] == {
        "price": {"currency": ["Missing data for required field."]}
    }
    title_only = client.patch(
        f"/api/v1/articles/{article.slug}", json={"title": "Only this"}, headers=bearer(token)
    )
    assert title_only.status_code == 200


def test_ids_beyond_32_bits_are_not_found(client: FlaskClient) -> None:
    token = make_token(make_user())
    big = 2**31
    assert client.delete(f"/api/v1/tokens/{big}", headers=bearer(token)).status_code == 404
    refund = client.post(f"/api/v1/purchases/{10**30}/refund", headers=bearer(token))
    assert refund.status_code == 404
    assert client.delete(f"/api/v1/tokens/{big - 1}", headers=bearer(token)).status_code == 404
