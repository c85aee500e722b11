"""What the WSGI layers that answer some requests before Flask share.

Each (catalog/owner_reads.py, catalog/owner_pages.py, wallet/quick_purchase.py) answers a
request only as its view would, with the headers the view sent with its first such answer
(learned once: the view marks its answer in the WSGI environ), its own request id and its
own JSON request line; every other request goes to Flask unchanged. Their one statement
runs on a DB-API connection each thread keeps in autocommit (one round trip, no
BEGIN/COMMIT, nothing held between requests), or in tests through the session, which sees
the test's uncommitted rows.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, Select, TextClause
from sqlalchemy.pool import NullPool

from dispatch_pay.request_log import REQUEST_ID_HEADER, log_request, request_id_for
from models import db
from models.base import build_engine

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

# Headers of the view's answer that describe it (not its request): kept and replayed.
PER_REQUEST_HEADERS = frozenset({"content-length", REQUEST_ID_HEADER.lower(), "set-cookie"})

Answer = tuple[bytes, int | None]  # the body, and the user it was for (for the log)


class BeforeFlask:
    """WSGI middleware: `answer` a request as the view would, or let Flask answer it."""

    status = "200 OK"
    cache = ""  # the request line's `cache` field for an answer made here

    def __init__(self, app: WSGIApplication, marker: str) -> None:
        self.app = app
        self.marker = marker  # the environ key the view sets on an answer like ours
        self.headers: list[tuple[str, str]] | None = None  # the view's, learned once

    def answer(self, environ: WSGIEnvironment) -> Answer | None:
        raise NotImplementedError

    def learned(self) -> None:
        """Called once, when the view's headers are known (the app is configured by then)."""

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if self.headers is None:
            return self._learn_headers(environ, start_response)
        started = time.perf_counter()
        found = self.answer(environ)
        if found is None:
            return self.app(environ, start_response)
        body, user_id = found
        rid = request_id_for(environ)
        start_response(
            self.status,
            [*self.headers, ("Content-Length", str(len(body))), (REQUEST_ID_HEADER, rid)],
        )
        log_request(
            {
                "request_id": rid,
                "method": environ.get("REQUEST_METHOD"),
                "path": environ.get("PATH_INFO", ""),
                "status": int(self.status.split()[0]),
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "user_id": user_id,
                "remote_addr": environ.get("REMOTE_ADDR"),
                "cache": self.cache,
            }
        )
        return [body]

    def _learn_headers(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        """The view's first answer of our kind tells which headers such an answer has."""
        code = self.status.split()[0]

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if status.startswith(code) and environ.get(self.marker):
                self.learned()
                self.headers = [(k, v) for k, v in headers if k.lower() not in PER_REQUEST_HEADERS]
            return start_response(status, headers, exc_info)

        return self.app(environ, capture)


Statement = Callable[[dict[str, Any]], Any]
Query = Select[Any] | TextClause  # built once, compiled once per process


def statement_runner(statement: Query, testing: bool, *, writes: bool = False) -> Statement:
    """`statement`'s first row for some parameters, as a transaction of its own.

    Raises what the database raised, having thrown its connection away (or, in tests,
    rolled the session back); callers then leave the request to Flask."""
    if testing:
        return _InSession(statement, writes)
    return _OnThreadConnection(statement)


class _InSession:
    """Tests: through the session (which sees, and commits within, the test's transaction)."""

    def __init__(self, statement: Query, writes: bool) -> None:
        self.statement = statement
        self.writes = writes

    def __call__(self, params: dict[str, Any]) -> Any:
        try:
            row = db.session.execute(self.statement, params).first()
        except Exception:
            if self.writes:
                db.session.rollback()
            raise
        if self.writes:
            db.session.commit()
            # What the statement changed is not in objects the test loaded before (a
            # request in production starts with an empty session).
            db.session.expire_all()
        return row


class _OnThreadConnection:
    """The statement on a DB-API connection each thread keeps, in autocommit, on a pool
    of its own (as the catalog version reader of public_cache.py does)."""

    def __init__(self, statement: Query) -> None:
        self.statement = statement
        self.local = threading.local()
        self.lock = threading.Lock()
        self.engine: Engine | None = None
        self.sql = ""
        self.positions: list[str] | None = None
        self.compiled: Any = None

    def __call__(self, params: dict[str, Any]) -> Any:
        connection = getattr(self.local, "connection", None)
        try:
            if connection is None:
                connection = self._connect()
            values = self.compiled.construct_params(params)
            cursor = connection.cursor()
            try:
                if self.positions is not None:
                    cursor.execute(self.sql, tuple(values[name] for name in self.positions))
                else:
                    cursor.execute(self.sql, values)
                return cursor.fetchone()
            finally:
                cursor.close()
        except Exception:
            self.local.connection = None
            if connection is not None:
                with contextlib.suppress(Exception):  # it is being thrown away anyway
                    connection.invalidate()
            raise

    def _connect(self) -> Any:
        with self.lock:
            if self.engine is None:
                assert db.engine is not None
                url = db.engine.url.render_as_string(hide_password=False)
                self.engine = build_engine(url, poolclass=NullPool)
                self.compiled = self.statement.compile(dialect=self.engine.dialect)
                self.sql = str(self.compiled)
                positional = self.engine.dialect.paramstyle in ("qmark", "numeric", "format")
                self.positions = list(self.compiled.positiontup or []) if positional else None
        connection = self.engine.raw_connection()
        if self.engine.dialect.name == "postgresql":
            connection.driver_connection.autocommit = True  # type: ignore[union-attr]
        # (SQLite connections already run in autocommit: see models/base.py.)
        self.local.connection = connection
        return connection
