"""A reader's plain wallet purchase through the API, made before Flask on PostgreSQL.

`POST /api/v1/articles/<slug>/purchase` with a reader's own bearer token, no query string
and no body (or `{}`) is the purchase clients make most. When the wallet covers the
price and nothing else applies, it is made here by one statement that is its own
transaction (autocommit: one round trip), with the guarantees of
`services.purchase_article`:

- It finds the caller by token and the article by slug, and locks the reader's wallet
  in the article's currency (`FOR UPDATE OF w`, the row lock every wallet change
  takes) if nobody holds it (`SKIP LOCKED`). It never waits: a statement sees the
  database as of its start, so one that waited could act on a cap, a price or a token
  changed meanwhile. A wallet in use sends the request to the view, which locks first
  and reads after.
- It writes only the plain case, which it states in SQL: a live reader token whose last
  use needs no recording, not a publisher, a published priced article, a wallet that is
  not frozen and covers the price, no daily spending cap in that currency. Everything
  else (agent budgets, caps, auto top-up, the 402 with its offer, a wallet not yet
  made, a token to touch) finds no row, writes nothing, and Flask answers the request.
- The purchase insert does nothing if the reader holds an active purchase of the
  article (the partial unique index decides); the ledger entry's unique (kind,
  reference) decides its insert; the balance moves only with a new entry; the
  entitlement is upserted. No purchase written: Flask answers (200, the existing one).
- The answer is the view's: 201, the JSON dumped by the same schema, and the headers
  the view sent with its first such answer.

Any error (the database's included) leaves the request to Flask; a statement that
failed wrote nothing. SQLite runs the view only.
"""

from __future__ import annotations

import contextlib
import io
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flask import Flask
from sqlalchemy import text
from sqlalchemy.pool import NullPool

from dispatch_pay.accounts.services import TOKEN_TOUCH_INTERVAL, token_digest
from dispatch_pay.money import money
from dispatch_pay.request_log import REQUEST_ID_HEADER, log_request, request_id_for
from models import (
    ENTRY_PURCHASE,
    PURCHASE_ACTIVE,
    ROLE_PUBLISHER,
    STATUS_PUBLISHED,
    TokenKind,
    db,
    utcnow,
)
from models.base import build_engine

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

PATH = re.compile(r"/api/v1/articles/([A-Za-z0-9][A-Za-z0-9_-]{0,199})/purchase")
BEARER = re.compile(r"[Bb]earer ([A-Za-z0-9_.~+/=-]{1,200})")
MADE_KEY = "dispatch_pay.quick_purchase_made"  # set by the view on a plain 201
EMPTY_BODIES = (b"", b"{}")
PER_REQUEST_HEADERS = frozenset({"content-length", REQUEST_ID_HEADER.lower(), "set-cookie"})

# One statement, in a transaction of its own. It locks the reader's wallet only if the
# lock is free (`SKIP LOCKED`): a statement reads the database as it was when it began,
# so after waiting for a lock it could act on a cap, a price or a token that changed
# meanwhile. A busy wallet means no row, nothing written, and the view (which locks
# first, then reads) takes the request.
_PURCHASE = text(
    """
    WITH t AS MATERIALIZED (
        SELECT user_id FROM api_tokens
        WHERE token_hash = :token_hash AND revoked_at IS NULL
          AND last_used_at > :touch_due AND kind = :reader_kind
    ), a AS MATERIALIZED (
        SELECT id, price_amount, price_currency FROM articles
        WHERE slug = :slug AND status = :published AND price_amount > 0
    ), c AS (
        SELECT w.user_id, a.id AS article_id, a.price_amount AS price,
               a.price_currency AS currency, w.id AS wallet_id
        FROM a JOIN wallets w ON w.currency = a.price_currency
        WHERE w.user_id = (SELECT user_id FROM t)
          AND w.open_disputes = 0 AND w.balance >= a.price_amount
          AND EXISTS (SELECT 1 FROM users u WHERE u.id = w.user_id AND u.role <> :publisher)
          AND NOT EXISTS (SELECT 1 FROM wallet_settings s
                          WHERE s.user_id = w.user_id AND s.daily_cap_currency = a.price_currency)
        FOR UPDATE OF w SKIP LOCKED
    ), p AS (
        INSERT INTO purchases (user_id, article_id, wallet_id, amount, currency, status,
                               created_at)
        SELECT c.user_id, c.article_id, c.wallet_id, c.price, c.currency, :active, :now
        FROM c
        ON CONFLICT DO NOTHING
        RETURNING id, wallet_id, amount
    ), l AS (
        INSERT INTO ledger_entries (wallet_id, kind, amount, reference, purchase_id, created_at)
        SELECT p.wallet_id, :entry_kind, -p.amount, 'purchase:' || p.id, p.id, :now FROM p
        ON CONFLICT DO NOTHING
        RETURNING wallet_id, amount
    ), b AS (
        UPDATE wallets SET balance = balance + (SELECT amount FROM l)
        WHERE id = (SELECT wallet_id FROM l)
        RETURNING balance
    ), e AS (
        INSERT INTO entitlements (user_id, article_id, source, purchase_id, created_at)
        SELECT c.user_id, c.article_id, 'purchase', p.id, :now FROM c, p
        ON CONFLICT (user_id, article_id)
        DO UPDATE SET source = 'purchase', purchase_id = EXCLUDED.purchase_id
        RETURNING id
    )
    SELECT p.id, b.balance, (SELECT count(*) FROM e),
           c.user_id, c.article_id, c.price, c.currency, c.wallet_id
    FROM c, p, b
    """
)


@dataclass(frozen=True)
class ArticleRef:
    slug: str


@dataclass(frozen=True)
class MadePurchase:
    """The purchase as the answer shows it (what `PurchaseSchema` reads of a Purchase)."""

    id: int
    article: ArticleRef
    amount: int
    currency: str
    created_at: datetime
    status: str = str(PURCHASE_ACTIVE)
    refunded_at: datetime | None = None


class Statement:
    """Runs the statement as a transaction of its own: its first row, or None."""

    def __call__(self, params: dict[str, Any]) -> Any: ...

    def discard(self) -> None:
        """After an error: nothing of it may stay (connection, transaction)."""


class _InSession(Statement):
    """Tests: through the session (which sees, and commits within, the test's transaction)."""

    def __call__(self, params: dict[str, Any]) -> Any:
        row = db.session.execute(_PURCHASE, params).first()
        db.session.commit()
        # What the statement changed is not in objects the test loaded before (a request
        # in production starts with an empty session).
        db.session.expire_all()
        return row

    def discard(self) -> None:
        db.session.rollback()


class _OnThreadConnection(Statement):
    """A DB-API connection each thread keeps, in autocommit (the statement is the whole
    transaction: one round trip), on a pool of its own, as owner_reads.py does."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.lock = threading.Lock()
        self.engine: Any = None
        self.sql = ""
        self.compiled: Any = None

    def __call__(self, params: dict[str, Any]) -> Any:
        connection = getattr(self.local, "connection", None)
        if connection is None:
            connection = self._connect()
        cursor = connection.cursor()
        try:
            cursor.execute(self.sql, self.compiled.construct_params(params))
            return cursor.fetchone()
        finally:
            cursor.close()

    def _connect(self) -> Any:
        with self.lock:
            if self.engine is None:
                assert db.engine is not None
                url = db.engine.url.render_as_string(hide_password=False)
                self.engine = build_engine(url, poolclass=NullPool)
                self.compiled = _PURCHASE.compile(dialect=self.engine.dialect)
                self.sql = str(self.compiled)
        connection = self.engine.raw_connection()
        connection.driver_connection.autocommit = True
        self.local.connection = connection
        return connection

    def discard(self) -> None:
        connection = getattr(self.local, "connection", None)
        self.local.connection = None
        if connection is not None:
            with contextlib.suppress(Exception):  # thrown away anyway
                connection.invalidate()


def mark_made(environ: dict[str, Any]) -> None:
    """Called by the view when it answered a plain purchase with 201."""
    environ[MADE_KEY] = True


class QuickPurchases:
    """WSGI middleware: the plain wallet purchase, in one transaction, before Flask."""

    def __init__(
        self,
        app: WSGIApplication,
        flask_app: Flask,
        dump: Callable[[dict[str, Any]], dict[str, Any]],
        testing: bool,
    ) -> None:
        self.app = app
        self.flask_app = flask_app
        self.dump = dump
        self.headers: list[tuple[str, str]] | None = None  # the view's, learned once
        self.statement: Statement = _InSession() if testing else _OnThreadConnection()
        self.testing = testing

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        served = self._try(environ, start_response, started)
        if served is not None:
            return served
        if self.headers is None:
            return self._learn_headers(environ, start_response)
        return self.app(environ, start_response)

    def _plain_request(self, environ: WSGIEnvironment) -> tuple[str, str] | None:
        """(slug, token) of a plain purchase request; its body is left for Flask to read."""
        if self.headers is None or environ.get("REQUEST_METHOD") != "POST":
            return None
        if environ.get("QUERY_STRING") or environ.get("HTTP_TRANSFER_ENCODING"):
            return None
        path = PATH.fullmatch(environ.get("PATH_INFO", ""))
        bearer = BEARER.fullmatch(environ.get("HTTP_AUTHORIZATION", ""))
        if path is None or bearer is None:
            return None
        length = environ.get("CONTENT_LENGTH") or "0"
        if length not in ("0", "2"):
            return None
        if length == "2":
            body = environ["wsgi.input"].read(2)
            environ["wsgi.input"] = io.BytesIO(body)  # as it came, for Flask if it answers
            if body not in EMPTY_BODIES:
                return None
        return path.group(1), bearer.group(1)

    def _try(
        self, environ: WSGIEnvironment, start_response: StartResponse, started: float
    ) -> Iterable[bytes] | None:
        plain = self._plain_request(environ)
        if plain is None:
            return None
        if self.testing and (db.session.new or db.session.dirty or db.session.deleted):
            return None  # a test's unflushed objects: the view's request flushes them
        slug, secret = plain
        try:
            made = self._purchase(slug, token_digest(secret))
        except Exception:  # any database trouble: Flask answers (and reports) it
            self.statement.discard()
            return None
        if made is None:
            return None
        answer, user_id = made
        body = (self.flask_app.json.dumps(answer, separators=(",", ":")) + "\n").encode()
        rid = request_id_for(environ)
        assert self.headers is not None
        headers = [*self.headers, ("Content-Length", str(len(body))), (REQUEST_ID_HEADER, rid)]
        start_response("201 CREATED", headers)
        log_request(
            {
                "request_id": rid,
                "method": "POST",
                "path": environ.get("PATH_INFO", ""),
                "status": 201,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "user_id": user_id,
                "remote_addr": environ.get("REMOTE_ADDR"),
                "cache": "quick-purchase",
            }
        )
        return [body]

    def _purchase(self, slug: str, token_hash: str) -> tuple[dict[str, Any], int] | None:
        """The answer's body (as `PurchaseResultSchema` dumps it) and the buyer, if made."""
        now = utcnow()
        row = self.statement(
            {
                "slug": slug,
                "token_hash": token_hash,
                "touch_due": now - TOKEN_TOUCH_INTERVAL,
                "reader_kind": str(TokenKind.READER),
                "publisher": ROLE_PUBLISHER,
                "published": STATUS_PUBLISHED,
                "active": str(PURCHASE_ACTIVE),
                "entry_kind": str(ENTRY_PURCHASE),
                "now": now,
            }
        )
        if row is None:  # nothing written: not the plain case, or bought before
            return None
        purchase_id, balance, entitled, user_id, _article, price, currency, _wallet = row
        assert entitled == 1
        made = MadePurchase(purchase_id, ArticleRef(slug), price, currency, now)
        body = self.dump({"purchase": made, "wallet": {"balance": money(balance, currency)}})
        return body, user_id

    def _learn_headers(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        """The first plain 201 the view gives tells which headers such an answer has."""

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if status.startswith("201") and environ.get(MADE_KEY):
                self.headers = [(k, v) for k, v in headers if k.lower() not in PER_REQUEST_HEADERS]
            return start_response(status, headers, exc_info)

        return self.app(environ, capture)


def register_quick_purchases(app: Flask, dump: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """On PostgreSQL only (the statements are PostgreSQL's); SQLite runs the view."""
    url = str(app.config.get("DATABASE_URL") or "")
    if not url.startswith("postgresql"):
        return
    app.wsgi_app = QuickPurchases(  # type: ignore[method-assign]
        app.wsgi_app, app, dump, testing=app.testing
    )
