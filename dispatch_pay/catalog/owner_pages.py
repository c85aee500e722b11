"""A logged-in reader's full article page, answered before Flask once it was rendered.

An entitled page is the same for every reader who may read it, apart from who they are:
the nav (reader or publisher), whether they may give the dispatch, their gift links, the
messages flashed to them and their CSRF token. So when the view renders such a page for
a reader who has made no gift link of it, it keeps the page (`keep_shell`) split at that
request's CSRF token, under a key naming everything else it was built from: the
article, the revision shown, the catalog version, the origin and the nav/gift variant.

The next such request is answered here: the signed session cookie is opened with the
app's own serializer; one statement, on a per-thread autocommit connection, learns
whose session it is, the article, what they hold of it (the read gate's own EXISTS
columns) and the catalog version; the read gate (`gate.read_access`) decides; and only
when it answers FULL and a kept page exists for that key is the page sent, joined with
a fresh CSRF token signed exactly as Flask-WTF signs one from the session's secret.

Flask answers every other case unchanged: no or a bad cookie, flashed messages, no CSRF
secret yet, a session whose use is due to be recorded (or that has expired), a reader
who made gift links of the article (the page lists them), any query string or
Authorization header, a teaser, a kept page missing, a database error.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from flask import Flask, get_flashed_messages, request, session
from flask_wtf.csrf import generate_csrf
from itsdangerous import BadData, URLSafeTimedSerializer
from sqlalchemy import bindparam, select
from werkzeug.http import parse_cookie

from dispatch_pay.accounts.sessions import SESSION_KEY, TOUCH_INTERVAL, session_digest
from dispatch_pay.before_flask import Answer, BeforeFlask, statement_runner
from dispatch_pay.catalog.full_text import origin_of
from dispatch_pay.catalog.gate import Access, Holdings, holdings_columns, read_access
from dispatch_pay.catalog.gifts import may_give
from dispatch_pay.catalog.owner_reads import CATALOG_VERSION, older_than
from dispatch_pay.catalog.render_cache import RenderKey, render_key, renders
from models import Article, User, UserSession

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment

PAGE_PATH = "/articles/"
SLUG_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
SHELL_KEY = "dispatch_pay.owner_page_shell"  # set by the view when it kept the page
FLASHES = "_flashes"
CSRF_SALT = "wtf-csrf-token"  # Flask-WTF's, so the tokens signed here validate there
VERIFIED_COOKIES = 4096  # per process: the oldest are forgotten (and checked again) first

# The caller (by session) and the article, with what the caller holds of it.
_READ = (
    select(
        UserSession.last_seen_at,
        User.id,
        User.role,
        Article.id,
        Article.status,
        Article.price_amount,
        Article.live_revision_id,
        Article.latest_revision_id,
        CATALOG_VERSION.scalar_subquery(),
        *holdings_columns(User.id, Article.id),
    )
    .select_from(UserSession)
    .join(User, User.id == UserSession.user_id)
    .join(Article, Article.slug == bindparam("slug"))
    .where(UserSession.token_hash == bindparam("token_hash"))
)


def shell_key(
    viewer: User, can_give: bool, article_id: int, shown: int | None, version: int, origin: str
) -> RenderKey:
    """What a kept page is built from besides the text: the nav and the gift form."""
    kind = f"page:{'publisher' if viewer.is_publisher else 'reader'}:{int(can_give)}"
    return render_key(kind, article_id, shown, version, origin)


def keep_shell(html: str, key: RenderKey) -> None:
    """The view rendered an entitled page for a reader with no gift links of it: keep it,
    split at this request's CSRF token (the only thing of the reader left in it)."""
    if get_flashed_messages() or session.get(FLASHES):
        return  # the page shows messages meant for this reader only (read while rendering)
    token = generate_csrf()  # the request's token, already in the page
    parts = tuple(part.encode() for part in html.split(token))
    if len(parts) < 2:
        return
    renders.get_or_build(key, lambda: parts)
    request.environ[SHELL_KEY] = True


def _slug(path: str) -> str | None:
    if not path.startswith(PAGE_PATH):
        return None
    slug = path[len(PAGE_PATH) :]
    if not 0 < len(slug) <= 200 or not SLUG_CHARACTERS.issuperset(slug) or slug[0] in "_-":
        return None
    return slug


class OwnerPages(BeforeFlask):
    """WSGI middleware: a reader's kept full page, through the read gate."""

    cache = "owner-page"

    def __init__(self, app: WSGIApplication, flask_app: Flask, testing: bool) -> None:
        super().__init__(app, SHELL_KEY)
        self.flask_app = flask_app
        self.fixed_origin = bool(flask_app.config.get("PUBLIC_BASE_URL"))
        self.cookie = str(flask_app.config.get("SESSION_COOKIE_NAME") or "session")
        self.fetch = statement_runner(_READ, testing)
        self.sessions: Any = None
        self.csrf: URLSafeTimedSerializer | None = None
        self.csrf_field = "csrf_token"
        self.max_age = 0
        self.lock = threading.Lock()
        # Cookie strings whose signature checked out, with when they were signed; and
        # the CSRF token signed for each session secret in the current second.
        self.verified: dict[str, tuple[dict[str, Any], float]] = {}
        self.tokens: dict[str, tuple[int, bytes]] = {}

    def learned(self) -> None:
        """The app's secrets are final once the view has kept a page: the serializers."""
        app = self.flask_app
        self.sessions = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
        self.max_age = int(app.permanent_session_lifetime.total_seconds())
        secret = app.config.get("WTF_CSRF_SECRET_KEY") or app.secret_key
        assert secret, "CSRF needs a secret key"  # the view just signed a token with it
        self.csrf = URLSafeTimedSerializer(secret, salt=CSRF_SALT)
        self.csrf_field = str(app.config.get("WTF_CSRF_FIELD_NAME") or "csrf_token")

    def _remember(self, store: dict[str, Any], key: str, value: Any) -> None:
        with self.lock:
            store[key] = value
            while len(store) > VERIFIED_COOKIES:
                store.pop(next(iter(store)))

    def _cookie(self, environ: WSGIEnvironment) -> dict[str, Any] | None:
        value = parse_cookie(environ.get("HTTP_COOKIE", "")).get(self.cookie)
        if not value or self.sessions is None:
            return None
        with self.lock:
            known = self.verified.get(value)
        if known is not None:
            data, signed_at = known
            return data if time.time() - signed_at <= self.max_age else None
        try:
            data, signed = self.sessions.loads(value, max_age=self.max_age, return_timestamp=True)
        except BadData:
            return None
        if not isinstance(data, dict):
            return None
        # This exact string verified: its signature need not be checked again.
        self._remember(self.verified, value, (data, signed.timestamp()))
        return data

    def _csrf_token(self, raw: str) -> bytes:
        """The token Flask-WTF would sign from the session's secret now (it signs with a
        timestamp in whole seconds, so within one second the token is the same)."""
        assert self.csrf is not None
        second = int(time.time())
        with self.lock:
            known = self.tokens.get(raw)
        if known is not None and known[0] == second:
            return known[1]
        token = self.csrf.dumps(raw).encode()
        self._remember(self.tokens, raw, (second, token))
        return token

    def answer(self, environ: WSGIEnvironment) -> Answer | None:
        if environ.get("REQUEST_METHOD") != "GET":
            return None
        if environ.get("QUERY_STRING") or environ.get("HTTP_AUTHORIZATION"):
            return None
        slug = _slug(environ.get("PATH_INFO", ""))
        data = self._cookie(environ) if slug is not None else None
        if slug is None or data is None or data.get(FLASHES):
            return None
        secret, raw_csrf = data.get(SESSION_KEY), data.get(self.csrf_field)
        if not (isinstance(secret, str) and secret and isinstance(raw_csrf, str) and raw_csrf):
            return None
        try:
            row = self.fetch({"slug": slug, "token_hash": session_digest(secret)})
        except Exception:  # any database trouble: Flask answers (and reports) it
            return None
        if row is None or older_than(row[0], TOUCH_INTERVAL):
            return None
        user = User(id=row[1], role=row[2])
        article = Article(id=row[3], status=row[4], price_amount=row[5], live_revision_id=row[6])
        holdings = Holdings(bool(row[9]), bool(row[10]), bool(row[11]))
        if holdings.gave_gifts or read_access(user, article, holdings=holdings) is not Access.FULL:
            return None
        can_give = may_give(user, article, holdings)
        origin = origin_of(environ, self.fixed_origin)
        key = shell_key(user, can_give, row[3], row[6] or row[7], int(row[8] or 0), origin)
        parts = renders.get(key)
        if parts is None or self.csrf is None:
            return None
        return self._csrf_token(raw_csrf).join(parts), row[1]
