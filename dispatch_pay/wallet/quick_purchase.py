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

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flask import Flask
from sqlalchemy import text

from dispatch_pay.accounts.services import TOKEN_TOUCH_INTERVAL, token_digest
from dispatch_pay.before_flask import Answer, BeforeFlask, statement_runner
from dispatch_pay.catalog.owner_reads import BEARER
from dispatch_pay.money import money
from models import (
    ENTRY_PURCHASE,
    PURCHASE_ACTIVE,
    ROLE_PUBLISHER,
    STATUS_PUBLISHED,
    TokenKind,
    db,
    utcnow,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment

PATH = re.compile(r"/api/v1/articles/([A-Za-z0-9][A-Za-z0-9_-]{0,199})/purchase")
MADE_KEY = "dispatch_pay.quick_purchase_made"  # set by the view on a plain 201
EMPTY_BODIES = (b"", b"{}")

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


def mark_made(environ: dict[str, Any]) -> None:
    """Called by the view when it answered a plain purchase with 201."""
    environ[MADE_KEY] = True


class QuickPurchases(BeforeFlask):
    """WSGI middleware: the plain wallet purchase, in one statement, before Flask."""

    status = "201 CREATED"
    cache = "quick-purchase"

    def __init__(
        self,
        app: WSGIApplication,
        flask_app: Flask,
        dump: Callable[[dict[str, Any]], dict[str, Any]],
        testing: bool,
    ) -> None:
        super().__init__(app, MADE_KEY)
        self.flask_app = flask_app
        self.dump = dump
        self.statement = statement_runner(_PURCHASE, testing, writes=True)
        self.testing = testing

    def _plain_request(self, environ: WSGIEnvironment) -> tuple[str, str] | None:
        """(slug, token) of a plain purchase request; its body is left for Flask to read."""
        if environ.get("REQUEST_METHOD") != "POST":
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

    def answer(self, environ: WSGIEnvironment) -> Answer | None:
        plain = self._plain_request(environ)
        if plain is None:
            return None
        if self.testing and (db.session.new or db.session.dirty or db.session.deleted):
            return None  # a test's unflushed objects: the view's request flushes them
        slug, secret = plain
        try:
            made = self._purchase(slug, token_digest(secret))
        except Exception:  # any database trouble: Flask answers (and reports) it
            return None
        if made is None:
            return None
        answer, user_id = made
        body = (self.flask_app.json.dumps(answer, separators=(",", ":")) + "\n").encode()
        return body, user_id

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


def register_quick_purchases(app: Flask, dump: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """On PostgreSQL only (the statements are PostgreSQL's); SQLite runs the view."""
    url = str(app.config.get("DATABASE_URL") or "")
    if not url.startswith("postgresql"):
        return
    app.wsgi_app = QuickPurchases(  # type: ignore[method-assign]
        app.wsgi_app, app, dump, testing=app.testing
    )
