"""Rate limits on login, sign-up, token creation and top-ups (flask-limiter)."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient

from dispatch_pay.config import load_config
from tests.conftest import migrated_database
from tests.support.factories import bearer, make_token, make_user
from tests.support.servers import AppServer
from tests.support.web import csrf_token_from, json_error

REDIS_URL = os.environ.get("REDIS_URL_FOR_TESTS")


def html_login(client: FlaskClient, email: str, addr: str = "127.0.0.1") -> Any:
    token = csrf_token_from(client, "/login")
    return client.post(
        "/login",
        data={"email": email, "password": "wrong password", "csrf_token": token},
        environ_base={"REMOTE_ADDR": addr},
    )


def api_login(client: FlaskClient, email: str, addr: str = "127.0.0.1") -> Any:
    return client.post(
        "/api/v1/tokens",
        json={"email": email, "password": "wrong password"},
        environ_base={"REMOTE_ADDR": addr},
    )


def assert_retry_after(response: Any) -> None:
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0


def test_html_login_is_limited_per_address_with_a_clear_page(client: FlaskClient) -> None:
    for i in range(10):
        assert html_login(client, f"user{i}@example.com").status_code == 401
    response = html_login(client, "user10@example.com")
    assert_retry_after(response)
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "Slow down" in page and "Too many attempts" in page
    # Another address is not affected.
    assert html_login(client, "user11@example.com", addr="10.0.0.2").status_code == 401


def test_api_token_creation_is_limited_with_the_contract_error(client: FlaskClient) -> None:
    for i in range(10):
        assert api_login(client, f"user{i}@example.com").status_code == 401
    response = api_login(client, "user10@example.com")
    assert_retry_after(response)
    assert json_error(response)["code"] == "too_many_requests"


def test_login_page_and_api_share_one_bucket(client: FlaskClient) -> None:
    for i in range(5):
        assert html_login(client, f"page{i}@example.com").status_code == 401
        assert api_login(client, f"api{i}@example.com").status_code == 401
    assert_retry_after(api_login(client, "api5@example.com"))
    assert_retry_after(html_login(client, "page5@example.com"))


def test_one_account_is_protected_from_many_addresses(client: FlaskClient) -> None:
    user = make_user()
    for i in range(10):
        login = html_login if i % 2 else api_login
        assert login(client, user.email.upper(), addr=f"10.0.1.{i}").status_code == 401
    response = api_login(client, user.email, addr="10.0.2.1")
    assert_retry_after(response)
    # Other accounts still answer from the same fresh address.
    assert api_login(client, "someone@example.com", addr="10.0.2.1").status_code == 401


def test_signup_page_and_api_share_one_bucket(client: FlaskClient) -> None:
    for i in range(5):
        if i % 2:
            token = csrf_token_from(client, "/signup")
            response = client.post(
                "/signup", data={"email": f"s{i}@example.com", "password": "x", "csrf_token": token}
            )
        else:
            response = client.post("/api/v1/readers", json={"email": f"s{i}", "password": "x"})
        assert response.status_code == 422
    response = client.post(
        "/api/v1/readers", json={"email": "late@example.com", "password": "long enough password"}
    )
    assert_retry_after(response)
    assert json_error(response)["code"] == "too_many_requests"
    token = csrf_token_from(client, "/signup")
    response = client.post(
        "/signup",
        data={"email": "late@example.com", "password": "long enough password", "csrf_token": token},
    )
    assert_retry_after(response)
    assert "Slow down" in response.get_data(as_text=True)


def test_topups_are_limited(client: FlaskClient) -> None:
    headers = bearer(make_token(make_user()))
    for _ in range(10):
        response = client.post(
            "/api/v1/wallet/topups", json={"amount": 500, "currency": "usd"}, headers=headers
        )
        assert response.status_code != 429
    response = client.post(
        "/api/v1/wallet/topups", json={"amount": 500, "currency": "usd"}, headers=headers
    )
    assert_retry_after(response)
    assert json_error(response)["code"] == "too_many_requests"


def test_limits_are_stored_in_redis_when_redis_url_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://cache.internal:6379/0")
    assert load_config(tmp_path, {"SECRET_KEY": "x"})["RATELIMIT_STORAGE_URI"] == (
        "redis://cache.internal:6379/0"
    )
    monkeypatch.delenv("REDIS_URL")
    assert load_config(tmp_path, {"SECRET_KEY": "x"})["RATELIMIT_STORAGE_URI"] == "memory://"


@pytest.fixture()
def redis_db() -> Iterator[redis.Redis]:
    if not REDIS_URL:
        pytest.skip("REDIS_URL_FOR_TESTS is not set")
    client = redis.Redis.from_url(REDIS_URL)

    def clear() -> None:
        for key in client.scan_iter("LIMITS*"):
            client.delete(key)

    clear()
    yield client
    clear()
    client.close()


def token_attempt(server: AppServer, i: int) -> int:
    request = urllib.request.Request(
        f"{server.base}/api/v1/tokens",
        data=f'{{"email": "u{i}@example.com", "password": "wrong"}}'.encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code


def server_env(tmp_path: Path, redis_url: str) -> dict[str, str]:
    return {
        "DATABASE_URL": migrated_database("sqlite", tmp_path),
        "SECRET_KEY": "e2e-secret",
        "REDIS_URL": redis_url,
        "STRIPE_SECRET_KEY": "",
        "STRIPE_WEBHOOK_SECRET": "",
    }


@pytest.mark.e2e
def test_two_app_servers_share_the_limit_through_redis(
    redis_db: redis.Redis, tmp_path: Path, artifacts: Path
) -> None:
    assert REDIS_URL
    env = server_env(tmp_path, REDIS_URL)
    servers = [AppServer(artifacts, env, workers=1, name=f"limits-{i}") for i in range(2)]
    try:
        for server in servers:
            server.start()
        statuses = [token_attempt(servers[i % 2], i) for i in range(10)]
        assert statuses == [401] * 10
        assert token_attempt(servers[0], 10) == 429
        assert token_attempt(servers[1], 11) == 429
        assert any(redis_db.scan_iter("LIMITS*")), "the counters live in Redis"
    finally:
        for server in servers:
            server.stop()


@pytest.mark.e2e
def test_limits_fall_back_to_memory_when_redis_is_down(tmp_path: Path, artifacts: Path) -> None:
    server = AppServer(
        artifacts, server_env(tmp_path, "redis://127.0.0.1:1/0"), workers=1, name="no-redis"
    )
    try:
        server.start()
        assert [token_attempt(server, i) for i in range(10)] == [401] * 10
        assert token_attempt(server, 10) == 429
    finally:
        server.stop()
