"""Migration 0008: statuses become CHECKed enums, on an empty database and on the
previous schema with rows in it, on SQLite and (with TEST_DATABASE_URL) PostgreSQL.

The PostgreSQL run uses a schema of its own, so the suite's database is left alone.
"""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime

from alembic import command
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from dispatch_pay.cli import MIGRATIONS, alembic_config
from models import DisputeOutcome, DisputeStatus, RefundedBy, TopUpStatus

SCHEMA = "migration_0008"
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def seed_previous_schema(url: str) -> None:
    """Rows as the code before 0008 wrote them."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (id, email, password_hash, role, created_at) "
                "VALUES (1, 'r@example.com', 'x', 'reader', :now)"
            ),
            {"now": NOW},
        )
        conn.execute(
            text(
                "INSERT INTO wallets (id, user_id, currency, balance, open_disputes, created_at) "
                "VALUES (1, 1, 'usd', 500, 1, :now)"
            ),
            {"now": NOW},
        )
        for n, status in enumerate(("succeeded", "failed", "requires_action"), start=1):
            conn.execute(
                text(
                    "INSERT INTO topups (id, user_id, payment_intent_id, amount, currency, "
                    "status, created_at) VALUES (:id, 1, :pi, 500, 'usd', :status, :now)"
                ),
                {"id": n, "pi": f"pi_{n}", "status": status, "now": NOW},
            )
        conn.execute(
            text(
                "INSERT INTO disputes (id, stripe_dispute_id, wallet_id, payment_intent_id, "
                "amount, status, created_at) VALUES (1, 'dp_1', 1, 'pi_1', 500, 'open', :now)"
            ),
            {"now": NOW},
        )
    engine.dispose()


def refuses(url: str, statement: str) -> bool:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(statement))
    except IntegrityError:
        return True
    finally:
        engine.dispose()
    return False


def test_0008_upgrades_the_previous_schema_with_rows_and_then_refuses_unknown_values(
    url: str,
) -> None:
    config = alembic_config(url)
    command.upgrade(config, "0007")
    seed_previous_schema(url)
    command.upgrade(config, "head")

    assert refuses(url, "UPDATE topups SET status = 'exploded' WHERE id = 1")
    assert refuses(url, "UPDATE disputes SET status = 'pending' WHERE id = 1")
    assert refuses(url, "UPDATE disputes SET outcome = 'draw' WHERE id = 1")
    assert not refuses(url, "UPDATE topups SET status = 'canceled' WHERE id = 3")

    command.downgrade(config, "0007")
    assert not refuses(url, "UPDATE topups SET status = 'exploded' WHERE id = 1")


def test_0008_builds_an_empty_database(url: str) -> None:
    command.upgrade(alembic_config(url), "head")
    seed_previous_schema(url)  # every value the code writes is accepted
    assert refuses(url, "UPDATE topups SET status = 'exploded' WHERE id = 1")
    assert refuses(url, "UPDATE disputes SET outcome = 'draw' WHERE id = 1")


def test_the_checks_list_every_value_of_the_enums() -> None:
    """The migration's lists and the Python enums are the same values."""
    path = MIGRATIONS / "versions" / "0008_status_enums.py"
    spec = importlib.util.spec_from_file_location("migration_0008", path)
    assert spec is not None and spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    conditions = {
        (table, name): condition
        for table, checks in migration.CHECKS.items()
        for name, condition in checks
    }
    for enum, key in (
        (TopUpStatus, ("topups", "status_known")),
        (RefundedBy, ("purchases", "refunded_by_known")),
        (DisputeStatus, ("disputes", "status_known")),
        (DisputeOutcome, ("disputes", "outcome_known")),
    ):
        listed = conditions[key]
        assert all(f"'{member.value}'" in listed for member in enum), key
        assert listed.count("'") == 2 * len(enum), key
