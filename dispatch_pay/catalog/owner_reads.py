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

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, select

from dispatch_pay.accounts.services import TOKEN_TOUCH_INTERVAL, token_digest
from dispatch_pay.before_flask import Answer, BeforeFlask, statement_runner
from dispatch_pay.catalog.full_text import origin_of
from dispatch_pay.catalog.gate import Access, Holdings, holdings_columns, read_access
from dispatch_pay.catalog.render_cache import render_key, renders
from models import (
    CATALOG_STATE_ID,
    ApiToken,
    Article,
    CatalogState,
    User,
    utcnow,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment

PATH = re.compile(r"/api/v1/articles/([A-Za-z0-9][A-Za-z0-9_-]{0,199})")
BEARER = re.compile(r"[Bb]earer ([A-Za-z0-9_.~+/=-]{1,200})")
JSON_ACCEPTS = frozenset({"", "*/*", "application/json"})
RENDERED_KEY = "dispatch_pay.owner_read_rendered"  # set by the view on a JSON 200

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


class OwnerReads(BeforeFlask):
    """WSGI middleware: an owner's article JSON from the render cache, through the gate."""

    cache = "owner"

    def __init__(self, app: WSGIApplication, fixed_origin: bool, testing: bool) -> None:
        super().__init__(app, RENDERED_KEY)
        self.fixed_origin = fixed_origin
        self.fetch = statement_runner(_READ, testing)

    def answer(self, environ: WSGIEnvironment) -> Answer | None:
        if environ.get("REQUEST_METHOD") != "GET":
            return None
        if environ.get("QUERY_STRING") or environ.get("HTTP_ACCEPT", "") not in JSON_ACCEPTS:
            return None
        path = PATH.fullmatch(environ.get("PATH_INFO", ""))
        bearer = BEARER.fullmatch(environ.get("HTTP_AUTHORIZATION", ""))
        if path is None or bearer is None:
            return None
        try:
            row = self.fetch({"slug": path.group(1), "token_hash": token_digest(bearer.group(1))})
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
        return None if body is None else (body, row[0])


def older_than(moment: Any, interval: timedelta) -> bool:
    """A last use (a raw column value) is due to be recorded: a write, which Flask does."""
    if moment is None:
        return True
    if isinstance(moment, str):  # SQLite
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return bool(utcnow() - moment > interval)
