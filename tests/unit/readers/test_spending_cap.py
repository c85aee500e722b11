"""The reader's daily spending cap: 402 spending_cap_reached, nothing debited."""

from __future__ import annotations

from datetime import timedelta

from flask.testing import FlaskClient

from models import Purchase, User, Wallet, db
from tests.support.factories import bearer, make_article, make_token, make_user
from tests.support.wallet import buy, fund, refund
from tests.support.web import assert_error, csrf_token_from, log_in


def capped_reader(client: FlaskClient, cap: int) -> tuple[User, str]:
    reader = make_user()
    token = make_token(reader)
    fund(reader, 1000)
    response = client.put(
        "/api/v1/wallet/settings",
        json={"daily_cap": {"amount": cap, "currency": "usd"}},
        headers=bearer(token),
    )
    assert response.status_code == 200
    assert response.get_json() == {
        "daily_cap": {"amount": cap, "currency": "usd"},
        "spent_today": {"amount": 0, "currency": "usd"},
        "auto_topup": None,
    }
    return reader, token


def balance(reader: User) -> int:
    db.session.expire_all()
    wallet = db.session.query(Wallet).filter_by(user_id=reader.id).one()
    return wallet.balance


def test_a_purchase_over_the_cap_is_refused_and_nothing_debited(client: FlaskClient) -> None:
    reader, token = capped_reader(client, 100)
    first, second, third = (make_article(price=p) for p in (39, 39, 39))
    for article in (first, second):
        assert (
            client.post(
                f"/api/v1/articles/{article.slug}/purchase", headers=bearer(token)
            ).status_code
            == 201
        )
    before = balance(reader)
    body = assert_error(
        client.post(f"/api/v1/articles/{third.slug}/purchase", headers=bearer(token)),
        402,
        "spending_cap_reached",
    )
    assert body["daily_cap"] == {"amount": 100, "currency": "usd"}
    assert body["spent_today"] == {"amount": 78, "currency": "usd"}
    assert balance(reader) == before
    assert db.session.query(Purchase).filter_by(article_id=third.id).count() == 0
    settings = client.get("/api/v1/wallet/settings", headers=bearer(token)).get_json()
    assert settings["spent_today"] == {"amount": 78, "currency": "usd"}


def test_yesterday_and_refunds_do_not_count(client: FlaskClient) -> None:
    reader, token = capped_reader(client, 50)
    publisher = make_user(role="publisher")
    old = buy(reader, make_article(price=39))
    old.created_at = old.created_at - timedelta(days=1)
    db.session.commit()
    refunded = buy(reader, make_article(price=39))
    refund(publisher, refunded)
    article = make_article(price=39)
    response = client.post(f"/api/v1/articles/{article.slug}/purchase", headers=bearer(token))
    assert response.status_code == 201


def test_the_cap_is_per_currency_and_removable(client: FlaskClient) -> None:
    reader, token = capped_reader(client, 0)
    euro = make_article(price=39, currency="eur")
    fund(reader, 500, "eur")
    assert (
        client.post(f"/api/v1/articles/{euro.slug}/purchase", headers=bearer(token)).status_code
        == 201
    )
    usd = make_article(price=39)
    assert_error(
        client.post(f"/api/v1/articles/{usd.slug}/purchase", headers=bearer(token)),
        402,
        "spending_cap_reached",
    )
    removed = client.put("/api/v1/wallet/settings", json={"daily_cap": None}, headers=bearer(token))
    assert removed.get_json() == {"daily_cap": None, "spent_today": None, "auto_topup": None}
    assert (
        client.post(f"/api/v1/articles/{usd.slug}/purchase", headers=bearer(token)).status_code
        == 201
    )


def test_bad_caps_are_422_with_the_field_named_and_change_nothing(client: FlaskClient) -> None:
    _reader, token = capped_reader(client, 300)
    for bad in (
        {"daily_cap": {"amount": -1, "currency": "usd"}},
        {"daily_cap": {"amount": 100, "currency": "jpy"}},
        {"daily_cap": {"amount": 1.5, "currency": "usd"}},
        {"daily_cap": {"amount": "100", "currency": "usd"}},
        {"daily_cap": {"amount": 100}},
        {"daily_cap": 100},
        {"daily_cap": {"amount": 10**12, "currency": "usd"}},
        {"daily_limit": {"amount": 100, "currency": "usd"}},
    ):
        body = assert_error(
            client.put("/api/v1/wallet/settings", json=bad, headers=bearer(token)), 422
        )
        assert set(body["error"]["fields"]) == set(bad), (bad, body)
    settings = client.get("/api/v1/wallet/settings", headers=bearer(token)).get_json()
    assert settings["daily_cap"] == {"amount": 300, "currency": "usd"}


def test_the_paywall_says_so_plainly(client: FlaskClient) -> None:
    reader, _token = capped_reader(client, 10)
    article = make_article(price=39)
    log_in(client, reader)
    page = client.get(f"/articles/{article.slug}").get_data(as_text=True)
    assert 'id="spending-cap-reached"' in page
    assert "daily spending cap of $0.10" in page and "Nothing has been charged" in page
    assert 'id="buy-button"' not in page
    # The buy form (a stale page) gets the same plain answer, and nothing is debited.
    csrf = csrf_token_from(client, f"/articles/{article.slug}")
    response = client.post(f"/articles/{article.slug}/buy", data={"csrf_token": csrf})
    assert response.status_code == 302
    assert "daily spending cap" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert balance(reader) == 1000


def test_the_wallet_page_sets_and_removes_the_cap(client: FlaskClient) -> None:
    reader = make_user()
    token = make_token(reader)
    log_in(client, reader)
    csrf = csrf_token_from(client, "/wallet")
    client.post(
        "/wallet/settings", data={"csrf_token": csrf, "daily_cap": "2.50", "currency": "usd"}
    )
    assert client.get("/api/v1/wallet/settings", headers=bearer(token)).get_json()["daily_cap"] == {
        "amount": 250,
        "currency": "usd",
    }
    assert "$2.50" in client.get("/wallet").get_data(as_text=True)
    client.post("/wallet/settings", data={"csrf_token": csrf, "daily_cap": "-1", "currency": "usd"})
    assert client.get("/api/v1/wallet/settings", headers=bearer(token)).get_json()["daily_cap"] == {
        "amount": 250,
        "currency": "usd",
    }
    client.post("/wallet/settings", data={"csrf_token": csrf, "daily_cap": "", "currency": "usd"})
    assert (
        client.get("/api/v1/wallet/settings", headers=bearer(token)).get_json()["daily_cap"] is None
    )


def test_an_empty_settings_body_is_422_naming_daily_cap(client: FlaskClient) -> None:
    """Found by schemathesis: a PUT without a body was accepted as a no-op."""
    _reader, token = capped_reader(client, 300)
    for body in ({}, None):
        response = client.put("/api/v1/wallet/settings", json=body, headers=bearer(token))
        assert response.status_code in (400, 422)
        if response.status_code == 422:
            assert "daily_cap" in response.get_json()["error"]["fields"]
