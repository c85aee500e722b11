"""An owner's `GET /api/v1/articles/<slug>` with a bearer token, answered before Flask.

The anonymous page cache (public_cache.py) serves teasers at hello-world speed; this
does the same for the one per-reader answer that is the same for every reader allowed
to see it: the full article as JSON. One statement, on a per-thread autocommit
connection, learns who the token belongs to, what they hold of the article (the read
gate's own EXISTS columns, `gate.holdings_columns`) and the catalog version; then the
read gate itself (`gate.read_access`) decides. Only when it answers FULL, and the JSON
was rendered by the app at this catalog version (`render_cache`, filled by the view),
is the stored body sent, with the headers the view sent with it. In every other case
(no such token, a token whose last use must be recorded, an agent token on a route it
may not use, a teaser, a Markdown request, any query string, a cache miss, a database
error) the request goes to Flask unchanged, which answers it the usual way.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, Select, bindparam, select
from sqlalchemy.pool import NullPool

from dispatch_pay.accounts.services import TOKEN_TOUCH_INTERVAL, token_digest
from dispatch_pay.catalog.full_text import origin_of
from dispatch_pay.catalog.gate import Access, Holdings, holdings_columns, read_access
from dispatch_pay.catalog.render_cache import render_key, renders
from dispatch_pay.request_log import REQUEST_ID_HEADER, log_request, request_id_for
from models import (
    CATALOG_STATE_ID,
    ApiToken,
    Article,
    CatalogState,
    User,
    db,
    utcnow,
)
from models.base import build_engine

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

PATH = re.compile(r"/api/v1/articles/([A-Za-z0-9][A-Za-z0-9_-]{0,199})")
BEARER = re.compile(r"[Bb]earer ([A-Za-z0-9_.~+/=-]{1,200})")
JSON_ACCEPTS = frozenset({"", "*/*", "application/json"})
RENDERED_KEY = "dispatch_pay.owner_read_rendered"  # set by the view on a JSON 200
# Headers of the view's answer that describe it (not this request): kept and replayed.
PER_REQUEST_HEADERS = frozenset({"content-length", REQUEST_ID_HEADER.lower(), "set-cookie"})

CATALOG_VERSION = select(CatalogState.version).where(CatalogState.id == CATALOG_STATE_ID)
# The caller (by token) and the article, with what the caller holds of it: one statement.
_READ = (
    select(
        User.id,
        User.role,
        ApiToken.kind,
        ApiToken.last_used_at,
        Article.id,
        Article.status,
        Article.price_amount,
        Article.live_revision_id,
        Article.latest_revision_id,
        CATALOG_VERSION.scalar_subquery(),
        *holdings_columns(User.id, Article.id),
    )
    .select_from(ApiToken)
    .join(User, User.id == ApiToken.user_id)
    .join(Article, Article.slug == bindparam("slug"))
    .where(ApiToken.token_hash == bindparam("token_hash"), ApiToken.revoked_at.is_(None))
)


def mark_rendered(environ: dict[str, Any]) -> None:
    """Called by the view when it answered the full article as JSON (200)."""
    environ[RENDERED_KEY] = True


class OwnerReads:
    """WSGI middleware: an owner's article JSON from the render cache, through the gate."""

    def __init__(self, app: WSGIApplication, fixed_origin: bool, testing: bool) -> None:
        self.app = app
        self.fixed_origin = fixed_origin
        self.headers: list[tuple[str, str]] | None = None  # the view's, learned once
        self.fetch: Callable[[str, str], Any] = fetcher(_READ, testing)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        served = self._try(environ, start_response, started)
        if served is not None:
            return served
        if self.headers is None:
            return self._learn_headers(environ, start_response)
        return self.app(environ, start_response)

    def _try(
        self, environ: WSGIEnvironment, start_response: StartResponse, started: float
    ) -> Iterable[bytes] | None:
        if self.headers is None or environ.get("REQUEST_METHOD") != "GET":
            return None
        if environ.get("QUERY_STRING") or environ.get("HTTP_ACCEPT", "") not in JSON_ACCEPTS:
            return None
        path = PATH.fullmatch(environ.get("PATH_INFO", ""))
        bearer = BEARER.fullmatch(environ.get("HTTP_AUTHORIZATION", ""))
        if path is None or bearer is None:
            return None
        try:
            row = self.fetch(path.group(1), token_digest(bearer.group(1)))
        except Exception:  # any database trouble: Flask answers (and reports) it
            return None
        if row is None or older_than(row[3], TOKEN_TOUCH_INTERVAL):
            return None
        user = User(id=row[0], role=row[1])
        article = Article(id=row[4], status=row[5], price_amount=row[6], live_revision_id=row[7])
        holdings = Holdings(bool(row[10]), bool(row[11]), bool(row[12]))
        if read_access(user, article, holdings=holdings) is not Access.FULL:
            return None
        shown = row[7] or row[8]
        key = render_key(
            "json", row[4], shown, int(row[9] or 0), origin_of(environ, self.fixed_origin)
        )
        body = renders.get(key)
        if body is None:
            return None
        rid = request_id_for(environ)
        headers = [
            *self.headers,
            ("Content-Length", str(len(body))),
            (REQUEST_ID_HEADER, rid),
        ]
        start_response("200 OK", headers)
        log_request(
            {
                "request_id": rid,
                "method": "GET",
                "path": environ.get("PATH_INFO", ""),
                "status": 200,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "user_id": row[0],
                "remote_addr": environ.get("REMOTE_ADDR"),
                "cache": "owner",
            }
        )
        return [body]

    def _learn_headers(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        """The first JSON 200 the view renders tells which headers such an answer has."""

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if status.startswith("200") and environ.get(RENDERED_KEY):
                self.headers = [(k, v) for k, v in headers if k.lower() not in PER_REQUEST_HEADERS]
            return start_response(status, headers, exc_info)

        return self.app(environ, capture)


def older_than(moment: Any, interval: timedelta) -> bool:
    """A last use (a raw column value) is due to be recorded: a write, which Flask does."""
    if moment is None:
        return True
    if isinstance(moment, str):  # SQLite
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return bool(utcnow() - moment > interval)


def fetcher(statement: Select[Any], testing: bool) -> Callable[[str, str], Any]:
    """`statement`'s first row for (slug, token_hash): on a per-thread autocommit
    connection, or in tests through the session (which sees the test's uncommitted rows)."""
    if testing:
        return lambda slug, token_hash: db.session.execute(
            statement, {"slug": slug, "token_hash": token_hash}
        ).first()
    return _ThreadFetch(statement)


class _ThreadFetch:
    """The statement on a DB-API connection each thread keeps, in autocommit: one round
    trip, no BEGIN or COMMIT, nothing held between requests (as the catalog version
    reader of public_cache.py does, on a pool of its own for the same reason)."""

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        self.local = threading.local()
        self.lock = threading.Lock()
        self.engine: Engine | None = None
        self.sql = ""
        self.positions: list[str] | None = None
        self.compiled: Any = None

    def __call__(self, slug: str, token_hash: str) -> Any:
        connection = getattr(self.local, "connection", None)
        try:
            if connection is None:
                connection = self._connect()
            params = self.compiled.construct_params({"slug": slug, "token_hash": token_hash})
            cursor = connection.cursor()
            try:
                if self.positions is not None:
                    cursor.execute(self.sql, tuple(params[name] for name in self.positions))
                else:
                    cursor.execute(self.sql, params)
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
