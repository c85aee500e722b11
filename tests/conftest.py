"""Test harness.

Every database test runs on SQLite and, when TEST_DATABASE_URL is set, on PostgreSQL.
The schema is built once per backend by `alembic upgrade head`; each test runs inside
a transaction that is rolled back at its end (the app's commits become savepoints).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from flask import Flask, g, has_app_context
from flask.testing import FlaskClient
from sqlalchemy import Engine, make_url, text
from sqlalchemy.orm import scoped_session, sessionmaker

from dispatch_pay import create_app
from dispatch_pay.catalog.public_cache import clear_all_caches
from dispatch_pay.cli import alembic_config
from dispatch_pay.extensions import limiter
from models import db
from models.base import build_engine
from tests.support import ledger_check
from tests.support.servers import LocalStripe
from tests.support.smtp import SMTPServer
from tests.support.stripe_helpers import WEBHOOK_SECRET

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if TEST_DATABASE_URL else [])


def looks_like_test_database(url: str) -> bool:
    """The suite empties its database: only a name starting or ending in "test" will do."""
    name = (make_url(url).database or "").rsplit("/", 1)[-1].lower()
    return name.startswith("test") or name.endswith("test")


def pytest_configure(config: pytest.Config) -> None:
    if (
        TEST_DATABASE_URL
        and not looks_like_test_database(TEST_DATABASE_URL)
        and os.environ.get("ALLOW_ANY_TEST_DATABASE") != "1"
    ):
        raise pytest.UsageError(
            f"TEST_DATABASE_URL names the database {make_url(TEST_DATABASE_URL).database!r}: "
            "the suite empties it (DROP SCHEMA public CASCADE), so its name must start or end "
            'with "test" (e.g. dispatch_test). Set ALLOW_ANY_TEST_DATABASE=1 to use it anyway.'
        )


# Cheap scrypt parameters: the tests hash hundreds of passwords.
FAST_HASH = "scrypt:1024:8:1"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`postgres_only` tests (real concurrency) need TEST_DATABASE_URL; skip them without it."""
    if TEST_DATABASE_URL:
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL: set TEST_DATABASE_URL")
    for item in items:
        if item.get_closest_marker("postgres_only"):
            item.add_marker(skip)


def reset_postgres_schema(url: str) -> None:
    engine = build_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def migrated_database(kind: str, tmp_dir: Path) -> str:
    if kind == "sqlite":
        url = f"sqlite:///{tmp_dir / 'test.sqlite'}"
    else:
        assert TEST_DATABASE_URL
        url = TEST_DATABASE_URL
        reset_postgres_schema(url)
    command.upgrade(alembic_config(url), "head")
    ledger_check.register(url)  # audited once more after the whole suite
    return url


def pytest_sessionstart(session: pytest.Session) -> None:
    ledger_check.start_run()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The final test: every ledger the suite wrote to must still balance."""
    ledger_check.final_audit(session)


def test_config(url: str, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "TESTING": True,
        "DATABASE_URL": url,
        "SECRET_KEY": "test-secret-key-not-for-production",
        "PASSWORD_HASH_METHOD": FAST_HASH,
        "SERVER_NAME": "dispatch.test",
        "PREFERRED_URL_SCHEME": "http",
        "RATELIMIT_STORAGE_URI": "memory://",
    }
    config.update(extra)
    return config


class IsolatedClient(FlaskClient):
    """A test client whose every request starts with an empty `g`.

    Tests hold an app context open, and Flask reuses it for each request, so `g` (the
    flask-login user, the CSRF token) would leak from one request, and one client, into
    the next. In production each request has its own app context; so here.
    """

    def open(self, *args: Any, **kwargs: Any) -> Any:
        if has_app_context():
            vars(g._get_current_object()).clear()
        return super().open(*args, **kwargs)


@pytest.fixture(scope="session", params=BACKENDS)
def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Engine]]:
    kind: str = request.param
    url = migrated_database(kind, tmp_path_factory.mktemp(kind))
    engine = build_engine(url)
    yield kind, engine
    engine.dispose()


@pytest.fixture(scope="session")
def app(backend: tuple[str, Engine]) -> Flask:
    _kind, engine = backend
    app = create_app(
        test_config(str(engine.url.render_as_string(hide_password=False))), configure_database=False
    )
    app.test_client_class = IsolatedClient
    return app


@pytest.fixture()
def db_connection(backend: tuple[str, Engine]) -> Iterator[Any]:
    """Bind the app's session to one connection in a transaction rolled back afterwards."""
    _kind, engine = backend
    connection = engine.connect()
    transaction = connection.begin()
    previous_engine, previous_session = db.engine, db.session
    db.engine = engine
    db.session = scoped_session(
        sessionmaker(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
    )
    limiter.reset()
    clear_all_caches()  # rolled-back tests reuse catalog versions
    try:
        yield connection
    finally:
        db.session.remove()
        if transaction.is_active:
            transaction.rollback()
        connection.close()
        db.engine, db.session = previous_engine, previous_session


@pytest.fixture()
def client(app: Flask, db_connection: Any) -> Iterator[FlaskClient]:
    with app.app_context():
        yield app.test_client()


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Logs of the processes tests start."""
    return tmp_path_factory.mktemp("processes")


@pytest.fixture(scope="session")
def localstripe(artifacts: Path) -> Iterator[LocalStripe]:
    server = LocalStripe(artifacts)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def stripe_app(backend: tuple[str, Engine], localstripe: LocalStripe) -> Flask:
    """The app with Stripe keys, talking to localstripe as a separate process."""
    _kind, engine = backend
    app = create_app(
        test_config(
            engine.url.render_as_string(hide_password=False),
            STRIPE_SECRET_KEY="sk_test_dispatch",
            STRIPE_PUBLISHABLE_KEY="pk_test_dispatch",
            STRIPE_API_BASE=localstripe.base,
            STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        ),
        configure_database=False,
    )
    app.test_client_class = IsolatedClient
    return app


@pytest.fixture()
def stripe_client(stripe_app: Flask, db_connection: Any) -> Iterator[FlaskClient]:
    with stripe_app.app_context():
        yield stripe_app.test_client()


@pytest.fixture()
def backend_kind(backend: tuple[str, Engine]) -> str:
    return backend[0]


@pytest.fixture()
def postgres(backend: tuple[str, Engine]) -> bool:
    """This run is on PostgreSQL (where the layers that answer before Flask act)."""
    return backend[0] == "postgresql"


@pytest.fixture()
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """The request lines, which say who answered (see support/web.answered_before_flask)."""
    caplog.set_level("INFO", logger="dispatch_pay.request")
    yield caplog


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SMTPServer]:
    """A real SMTP server (aiosmtpd) on a loopback port for the whole run."""
    server = SMTPServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def smtp(smtp_server: SMTPServer) -> Iterator[SMTPServer]:
    """The SMTP server with an empty inbox, running again if a test stopped it."""
    if not smtp_server.running:
        smtp_server.start()
    smtp_server.inbox.clear()
    yield smtp_server
    if not smtp_server.running:
        smtp_server.start()
