"""Migration 0015: audit acknowledgements, append-only, on a database with a rejected
event in it; downgrade drops them and leaves the events as they were."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

from dispatch_pay.cli import alembic_config
from models.base import build_engine

SCHEMA = "migration_0015"
PREVIOUS = "0014_saved_cards_auto_topup"
NOW = datetime(2026, 12, 2, tzinfo=UTC)


def execute(url: str, statement: str, **params: object) -> None:
    engine = build_engine(url)  # SQLite with foreign keys on, as the app runs it
    try:
        with engine.begin() as conn:
            conn.execute(text(statement), params)
    finally:
        engine.dispose()


def refuses(url: str, statement: str) -> bool:
    try:
        execute(url, statement)
    except DBAPIError:
        return True
    return False


def tables(url: str) -> set[str]:
    engine = build_engine(url)  # SQLite with foreign keys on, as the app runs it
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_0015_upgrades_a_database_with_events_and_downgrades_without_touching_them(
    url: str,
) -> None:
    config = alembic_config(url)
    command.upgrade(config, PREVIOUS)
    execute(
        url,
        "INSERT INTO webhook_events (id, stripe_event_id, type, livemode, outcome, payload, "
        "received_at) VALUES (1, 'evt_1', 'payment_intent.succeeded', false, "
        "'rejected: other_reader', '{}', :now)",
        now=NOW,
    )
    command.upgrade(config, "head")
    execute(
        url,
        "INSERT INTO audit_acks (webhook_event_id, acknowledged_by, note, acknowledged_at) "
        "VALUES (1, 'ops', 'reviewed', :now)",
        now=NOW,
    )
    assert refuses(url, "UPDATE audit_acks SET note = 'rewritten'")
    assert refuses(url, "DELETE FROM audit_acks")
    assert refuses(url, "DELETE FROM webhook_events")
    assert refuses(
        url,
        "INSERT INTO audit_acks (webhook_event_id, acknowledged_by, note, acknowledged_at) "
        "VALUES (1, 'ops', '', CURRENT_TIMESTAMP)",
    )

    command.downgrade(config, PREVIOUS)
    assert "audit_acks" not in tables(url)
    assert "webhook_events" in tables(url)
    assert not refuses(url, "UPDATE webhook_events SET outcome = 'rejected: other_reader'")

    command.upgrade(config, "head")  # and up again: the function and triggers are gone
    assert "audit_acks" in tables(url)


def test_0015_builds_an_empty_database(url: str) -> None:
    command.upgrade(alembic_config(url), "head")
    assert "audit_acks" in tables(url)
