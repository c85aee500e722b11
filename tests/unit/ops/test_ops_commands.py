"""Operations: /healthz, cron-ready `audit` and `reconcile`, webhook secret rotation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import scoped_session, sessionmaker

from dispatch_pay import create_app
from dispatch_pay.payments.gateway import WEBHOOKS_KEY
from dispatch_pay.payments.stripe_gateway import StripeWebhooks, webhook_secrets
from models import db
from models.base import build_engine
from tests.conftest import test_config as app_config
from tests.support.stripe_helpers import event, signed
from tests.support.web import json_error, table_counts

UNREACHABLE = {
    "sqlite": "sqlite:////nonexistent-directory/dispatch.sqlite",
    "postgresql": "postgresql+psycopg://root@127.0.0.1:1/nowhere?connect_timeout=2",
}


@pytest.fixture(params=sorted(UNREACHABLE))
def database_down(request: pytest.FixtureRequest, db_connection: Any) -> Iterator[None]:
    """The app's session bound to a database that cannot be reached."""
    engine = build_engine(UNREACHABLE[request.param])
    working = db.session
    db.session = scoped_session(sessionmaker(bind=engine))
    try:
        yield
    finally:
        db.session.remove()
        db.session = working
        engine.dispose()


def test_healthz_reports_database_and_stripe(app: Flask, client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok", "stripe": "not_configured"}
    configured = create_app(
        app_config(app.config["DATABASE_URL"], STRIPE_SECRET_KEY="sk_test_x"),
        configure_database=False,
    )
    with configured.app_context():
        response = configured.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["stripe"] == "configured"


def test_healthz_is_503_when_the_database_is_down(client: FlaskClient, database_down: None) -> None:
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {
        "status": "unavailable",
        "database": "unavailable",
        "stripe": "not_configured",
    }


def test_a_page_is_503_not_500_when_the_database_is_down(
    client: FlaskClient, database_down: None
) -> None:
    response = client.get("/api/v1/articles")
    assert response.status_code == 503
    assert json_error(response)["code"] == "database_unavailable"


def run(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=list(args))


def test_audit_exit_codes_for_cron(app: Flask, client: FlaskClient) -> None:
    result = run(app, "audit")
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines() == ["audit: every ledger invariant holds."]


def test_audit_exits_2_with_one_line_when_the_database_is_down(
    app: Flask, client: FlaskClient, database_down: None
) -> None:
    result = run(app, "audit")
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        "Error: the database is unavailable (OperationalError)"
    ]


def test_reconcile_without_stripe_exits_1_with_one_line(app: Flask, client: FlaskClient) -> None:
    result = run(app, "reconcile")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Stripe is not configured" in lines[0]


def test_webhook_secret_list_parsing() -> None:
    assert webhook_secrets("whsec_a") == ["whsec_a"]
    assert webhook_secrets(" whsec_new , whsec_old ,") == ["whsec_new", "whsec_old"]
    assert webhook_secrets("") == []


@pytest.fixture()
def rotating_secret(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    webhooks = StripeWebhooks("whsec_new_one, whsec_old_one")
    monkeypatch.setitem(app.extensions, WEBHOOKS_KEY, webhooks)
    yield


def test_webhook_accepts_both_secrets_during_rotation(
    client: FlaskClient, rotating_secret: None
) -> None:
    for secret in ("whsec_new_one", "whsec_old_one"):
        payload, headers = signed(event("customer.created", {"id": "cus_x"}), secret)
        response = client.post("/webhooks/stripe", data=payload, headers=headers)
        assert response.status_code == 200, (secret, response.get_json())
    before = table_counts()
    payload, headers = signed(event("customer.created", {"id": "cus_y"}), "whsec_retired")
    response = client.post("/webhooks/stripe", data=payload, headers=headers)
    assert response.status_code == 400
    assert json_error(response)["code"] == "invalid_signature"
    assert table_counts() == before


def test_deploy_guide_covers_operations() -> None:
    guide = (Path(__file__).resolve().parents[3] / "DEPLOY.md").read_text()
    for topic in (
        "gunicorn",
        "TRUSTED_PROXIES",
        "PostgreSQL",
        "REDIS_URL",
        "/webhooks/stripe",
        "STRIPE_WEBHOOK_SECRET",
        "/healthz",
        "pg_dump",
        "flask --app app reconcile",
        "flask --app app audit",
    ):
        assert topic in guide, topic
