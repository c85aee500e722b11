"""Helpers for fault tests: a TCP proxy that can be cut, frozen or made to drop answers,
databases of their own for tests whose app servers commit for real, process lookups, and
a localstripe behind such a proxy (`faulty_stripe`, a fixture: a test module uses it by
importing it) with `stripe_fault_app` to make an app that talks to it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from flask import Flask
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import scoped_session, sessionmaker

from dispatch_pay import create_app
from dispatch_pay.cli import alembic_config
from models import db
from models.base import build_engine
from tests.support import ledger_check
from tests.support.servers import LocalStripe
from tests.support.stripe_helpers import WEBHOOK_SECRET

FORWARD = "forward"
CUT = "cut"  # every connection is closed, new ones are closed at once
FREEZE = "freeze"  # connections are accepted, nothing is forwarded or answered
DROP_RESPONSES = "drop_responses"  # requests reach the server, its answers are discarded


class FaultProxy:
    """A loopback TCP proxy in front of one server, with a switch for each kind of fault."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.mode = FORWARD
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self.base = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self.forwarded_requests = 0  # connections whose bytes reached the server
        self._closed = False
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        if mode == CUT:
            self.close_connections()

    def close_connections(self) -> None:
        with self._lock:
            sockets, self._open = self._open, set()
        for sock in sockets:
            _close(sock)

    def close(self) -> None:
        self._closed = True
        _close(self._listener)
        self.close_connections()

    def _track(self, *socks: socket.socket) -> None:
        with self._lock:
            self._open.update(socks)

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.mode == CUT:
                _close(client)
                continue
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        self._track(client)
        if self.mode == FREEZE:
            return  # held open, never answered, until cut or closed
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            _close(client)
            return
        upstream.settimeout(None)
        self._track(upstream)
        threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
        self._pump(upstream, client, True)

    def _pump(self, source: socket.socket, target: socket.socket, answers: bool) -> None:
        counted = False
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            if self.mode == CUT:
                break
            if self.mode == FREEZE:
                continue  # swallowed: a dead path, on open connections too
            if answers and self.mode == DROP_RESPONSES:
                continue  # the server answered; the client never hears of it
            if not answers and not counted:
                counted = True
                with self._lock:
                    self.forwarded_requests += 1
            try:
                target.sendall(data)
            except OSError:
                break
        if answers and self.mode in (DROP_RESPONSES, FREEZE):
            return  # keep the client waiting, as a lost answer would
        _close(source)
        _close(target)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


# --- databases that app servers commit to ------------------------------------------------


def own_postgres_database(base_url: str, suffix: str) -> str:
    """A fresh, migrated PostgreSQL database next to the test database, for app servers
    that commit for real. It stays after the run so that the final audit can read it."""
    url = make_url(base_url)
    name = f"{url.database}_{suffix}"
    admin = build_engine(
        url.set(database="postgres").render_as_string(hide_password=False),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    own = url.set(database=name).render_as_string(hide_password=False)
    command.upgrade(alembic_config(own), "head")
    ledger_check.register(own)
    return own


@contextlib.contextmanager
def committing_session(engine: Engine) -> Iterator[None]:
    """Point the app's `db.session` at `engine` with real commits, for building data."""
    previous = db.session
    db.session = scoped_session(sessionmaker(bind=engine, expire_on_commit=False))
    try:
        yield
    finally:
        db.session.remove()
        db.session = previous


def scalar(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def backends_waiting_on_locks(engine: Engine) -> list[int]:
    """PostgreSQL backends of this database that wait for a lock."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
        )
        return [int(pid) for pid in rows.scalars()]


def backend_alive(engine: Engine, pid: int) -> bool:
    return bool(scalar(engine, "SELECT count(*) FROM pg_stat_activity WHERE pid = :pid", pid=pid))


def child_pids(pid: int) -> list[int]:
    """The children of a process (gunicorn's workers), from /proc."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] == "Z"


# --- a Stripe that can hang, refuse or lose answers (in-process apps, every backend) ------

# The Stripe budget of apps made by `stripe_fault_app`: short, so that hangs are quick.
STRIPE_TIMEOUT = 2.0


@dataclass
class FaultyStripe:
    server: LocalStripe
    proxy: FaultProxy


@pytest.fixture(scope="module")
def faulty_stripe(artifacts: Path) -> Iterator[FaultyStripe]:
    log_dir = artifacts / "faults"
    log_dir.mkdir(exist_ok=True)
    server = LocalStripe(log_dir)
    server.start()
    proxy = FaultProxy(server.port)
    yield FaultyStripe(server, proxy)
    proxy.close()
    server.stop()


def stripe_fault_app(backend: tuple[str, Engine], stripe: FaultyStripe, retries: int) -> Flask:
    """The app, talking to localstripe through the proxy, with a short Stripe timeout."""
    _kind, engine = backend
    from tests.conftest import test_config as app_config  # the suite's one test configuration

    return create_app(
        app_config(
            engine.url.render_as_string(hide_password=False),
            STRIPE_SECRET_KEY="sk_test_dispatch",
            STRIPE_PUBLISHABLE_KEY="pk_test_dispatch",
            STRIPE_API_BASE=stripe.proxy.base,
            STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
            STRIPE_TIMEOUT_SECONDS=STRIPE_TIMEOUT,
            STRIPE_NETWORK_RETRIES=retries,
        ),
        configure_database=False,
    )


@pytest.fixture()
def fault_app(
    backend: tuple[str, Engine], faulty_stripe: FaultyStripe, app: Flask, db_connection: Any
) -> Iterator[Flask]:
    """The app behind the proxy, in its app context, one attempt per Stripe call.

    localstripe ignores Idempotency-Key, so a retried attempt whose first answer was lost
    would charge twice there (never on Stripe). Each test starts and ends forwarding.
    """
    own = stripe_fault_app(backend, faulty_stripe, retries=0)
    faulty_stripe.proxy.set_mode(FORWARD)
    with own.app_context():
        yield own
    faulty_stripe.proxy.set_mode(FORWARD)
