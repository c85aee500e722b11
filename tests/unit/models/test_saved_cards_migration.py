"""Migration 0014: saved cards, auto top-up settings and auto top-ups, on the previous
schema with rows in it and back, on SQLite and (with TEST_DATABASE_URL) PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from dispatch_pay.cli import alembic_config

PG = os.environ.get("TEST_DATABASE_URL")
SCHEMA = "migration_0014"
NOW = datetime(2026, 12, 1, tzinfo=UTC)
PREVIOUS = "0013_readers_in_control"


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrate.sqlite'}"
        return
    if not PG:
        pytest.skip("TEST_DATABASE_URL is not set")
    admin = create_engine(PG)
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
    scoped = make_url(PG).update_query_dict({"options": f"-csearch_path={SCHEMA}"})
    yield scoped.render_as_string(hide_password=False)
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
    admin.dispose()


def run(url: str, statement: str) -> list[tuple[object, ...]]:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(statement), {"now": NOW})
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def refuses(url: str, statement: str) -> bool:
    try:
        run(url, statement)
    except IntegrityError:
        return True
    return False


def seed_previous_schema(url: str) -> None:
    run(
        url,
        "INSERT INTO users (id, email, password_hash, role, created_at) "
        "VALUES (1, 'r@example.com', 'x', 'reader', :now)",
    )
    run(
        url,
        "INSERT INTO users (id, email, password_hash, role, created_at) "
        "VALUES (2, 's@example.com', 'x', 'reader', :now)",
    )
    run(
        url,
        "INSERT INTO topups (id, user_id, payment_intent_id, amount, currency, status, "
        "created_at) VALUES (1, 1, 'pi_1', 500, 'usd', 'succeeded', :now)",
    )
    run(
        url,
        "INSERT INTO wallet_settings (user_id, daily_cap_amount, daily_cap_currency, "
        "updated_at) VALUES (1, 200, 'usd', :now)",
    )


def test_0014_upgrades_the_previous_schema_with_rows_and_downgrades(url: str) -> None:
    config = alembic_config(url)
    command.upgrade(config, PREVIOUS)
    seed_previous_schema(url)

    command.upgrade(config, "head")

    assert run(url, "SELECT auto FROM topups WHERE id = 1") == [(False,)]
    assert run(url, "SELECT daily_cap_amount, auto_topup_amount FROM wallet_settings") == [
        (200, None)
    ]
    # Auto top-up is whole (all three amounts and the currency) and consistent.
    assert refuses(url, "UPDATE wallet_settings SET auto_topup_amount = 500")
    assert refuses(
        url,
        "UPDATE wallet_settings SET auto_topup_below = 0, auto_topup_amount = 500, "
        "auto_topup_monthly_limit = 100, auto_topup_currency = 'usd'",
    )
    assert not refuses(
        url,
        "UPDATE wallet_settings SET auto_topup_below = 0, auto_topup_amount = 500, "
        "auto_topup_monthly_limit = 2000, auto_topup_currency = 'usd'",
    )
    run(
        url,
        "INSERT INTO stripe_customers (user_id, customer_id, payment_method_id, "
        "created_at) VALUES (1, 'cus_1', 'pm_1', :now)",
    )
    # One Customer per reader, and a card saved by one reader only.
    assert refuses(
        url,
        "INSERT INTO stripe_customers (user_id, customer_id, payment_method_id, "
        "created_at) VALUES (2, 'cus_1', NULL, :now)",
    )
    assert refuses(
        url,
        "INSERT INTO stripe_customers (user_id, customer_id, payment_method_id, "
        "created_at) VALUES (2, 'cus_2', 'pm_1', :now)",
    )

    command.downgrade(config, PREVIOUS)

    engine = create_engine(url)
    try:
        names = inspect(engine).get_table_names()
        topup_columns = {c["name"] for c in inspect(engine).get_columns("topups")}
    finally:
        engine.dispose()
    assert "stripe_customers" not in names
    assert "auto" not in topup_columns
    assert run(url, "SELECT daily_cap_amount FROM wallet_settings") == [(200,)]
    command.upgrade(config, "head")  # and up again


def test_0014_builds_an_empty_database(url: str) -> None:
    command.upgrade(alembic_config(url), "head")
    seed_previous_schema(url)
    assert run(url, "SELECT auto FROM topups") == [(False,)]
