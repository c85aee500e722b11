"""What anonymous readers see, cached per process and invalidated across processes.

Design (and why):
- `catalog_state.version` moves in the same transaction as every write to an article,
  a revision or a report (a Session event in models/catalog.py, so no writer can forget
  it). The version lives in the database, not in Redis: a Redis counter could only be
  bumped after the commit, leaving a window (or, after a crash, forever) in which a
  process serves the old page as current.
- Each GET of a public path that carries no credentials (no Authorization header, no
  session or remember cookie) reads the version with one primary-key query and looks up
  its key in this process's cache; an entry counts only for the version it was rendered
  at. A change committed through any process therefore invalidates every cached page in
  every process on their next request.
- The key is what the page is built from, and the page is built from nothing else: the
  path, the query parameters the view reads (the query string the view sees is cut down
  to them, so `?utm_source=…` and other noise neither miss nor fill the cache), and the
  origin absolute URLs are written with: nothing when PUBLIC_BASE_URL is set, otherwise
  the effective scheme and host (after ProxyFix, which wraps this middleware).
- The budget (PUBLIC_CACHE_MAX_BYTES) counts what an entry really holds in memory: its
  key, status, headers and body as Python objects. The oldest entries go first.
- Only headers that describe the page are stored (an allow-list): nothing of the request
  that rendered it (its X-Request-ID, a cookie, rate-limit counters) reaches another
  request. A hit gets its own request id and its own JSON log line.
- The version is read before the page is rendered, so a page is never stored under a
  version newer than its data; at worst newer data sits under an older key and is
  re-rendered once.
- Only responses the views marked public (anonymous viewer: teasers, the listing, the
  feed, the 402 answer) and that set no cookie are stored; anything with per-user
  content never is. Hits are served by a WSGI middleware before Flask runs at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

from flask import Flask, Response, request
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool
from werkzeug.http import parse_cookie, parse_etags, parse_set_header, unquote_etag
from werkzeug.sansio.utils import get_host

from dispatch_pay.catalog.render_cache import renders
from dispatch_pay.request_log import (
    CACHE_STATUS_KEY,
    REQUEST_ID_HEADER,
    log_request,
    request_id_for,
)
from models import db
from models.base import build_engine

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

# Paths whose anonymous answers may be public; the views still decide per response.
PUBLIC_PATHS = frozenset(
    {
        "/",
        "/feed.xml",
        "/sitemap.xml",
        "/llms.txt",
        "/robots.txt",
        "/verification",
        "/api/v1/articles",
    }
)
PUBLIC_PREFIXES = ("/articles/", "/api/v1/articles/")
# The query parameters each public view reads; all others are dropped before it runs.
QUERY_PARAMETERS: dict[str, tuple[str, ...]] = {
    "/": ("page",),
    "/api/v1/articles": ("page", "per_page"),
}
# Headers that describe the page itself, the only ones stored with it.
STORED_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "content-language",
        "cache-control",
        "expires",
        "etag",
        "last-modified",
        "vary",
        "link",
        "payment-required",
        "content-security-policy",
        "cross-origin-resource-policy",
        "cross-origin-opener-policy",
        "permissions-policy",
        "referrer-policy",
        "strict-transport-security",
        "x-content-type-options",
        "x-frame-options",
        "x-robots-tag",
    }
)
# A page that varies on any other request header is not stored (its key would miss it).
STORABLE_VARY = frozenset({"cookie", "authorization"})
# What a dict slot and the entry's tuple cost beyond the objects counted one by one.
ENTRY_OVERHEAD = 160
# (origin or "" when PUBLIC_BASE_URL is set, script root, path, the view's query string)
CacheKey = tuple[str, str, str, str]
CACHEABLE_STATUSES = frozenset({200, 402})
VERSION_KEY = "dispatch_pay.catalog_version"
PUBLIC_MARK = "dispatch_pay.public"  # set by views (per request, not on g: see mark_public)
PUBLIC_KEY = "dispatch_pay.public_response"
_READ_VERSION = text("SELECT version FROM catalog_state WHERE id = 1")
_caches: list[AnonymousPageCache] = []


def mark_public() -> None:
    """Called by a view whose answer holds nothing specific to the (anonymous) caller.

    Kept in the WSGI environ rather than on `g`, which lives as long as the app context
    and so can outlive one request. A public view that reads a query parameter must list
    it in QUERY_PARAMETERS: anonymous requests reach the view without any other.
    """
    request.environ[PUBLIC_MARK] = True


def is_public() -> bool:
    return bool(request.environ.get(PUBLIC_MARK))


def _public_path(path: str) -> bool:
    if path in PUBLIC_PATHS:
        return True
    # Purchases and other sub-resources of an article are never public.
    return path.startswith(PUBLIC_PREFIXES) and path.count("/") == (
        2 if path.startswith("/articles/") else 4
    )


def carries_credentials(environ: WSGIEnvironment, cookie_names: tuple[str, ...]) -> bool:
    if environ.get("HTTP_AUTHORIZATION"):
        return True
    raw = environ.get("HTTP_COOKIE")
    if not raw:
        return False
    cookies = parse_cookie(raw)
    return any(name in cookies for name in cookie_names)


def read_catalog_version() -> int | None:
    """The catalog version as the request's own session sees it (tests, which never commit)."""
    try:
        version = db.session.execute(_READ_VERSION).scalar()
    except SQLAlchemyError:
        db.session.rollback()
        return None
    return int(version) if version is not None else None


class CommittedVersionReader:
    """The committed version in one round trip, on a connection each thread keeps.

    A session would check a pooled connection out (and ping it), BEGIN, SELECT and
    COMMIT: four round trips for what is the whole database cost of a cached page.
    This connection runs in autocommit, so each read sees the latest commit.
    """

    def __init__(self) -> None:
        self.local = threading.local()
        self.engine: Engine | None = None
        self.lock = threading.Lock()

    def __call__(self) -> int | None:
        try:
            connection = self._connection()
            cursor = connection.cursor()
            try:
                cursor.execute(_READ_VERSION.text)
                row = cursor.fetchone()
            finally:
                cursor.close()
        except Exception:  # any driver error: drop the connection, serve uncached
            self._discard()
            return None
        return int(row[0]) if row is not None else None

    def _connection(self) -> Any:
        connection = getattr(self.local, "connection", None)
        if connection is None:
            engine = self._engine()
            connection = engine.raw_connection()
            if engine.dialect.name == "postgresql":
                connection.driver_connection.autocommit = True  # type: ignore[union-attr]
            # (SQLite connections already run in autocommit: see models/base.py.)
            self.local.connection = connection
        return connection

    def _engine(self) -> Engine:
        """A pool of its own, never the sessions' pool: an autocommit connection handed
        back to that pool (when a thread ends) would break the next session's
        transaction. NullPool closes a connection once its thread lets go of it."""
        with self.lock:
            if self.engine is None:
                assert db.engine is not None
                url = db.engine.url.render_as_string(hide_password=False)
                self.engine = build_engine(url, poolclass=NullPool, pool_pre_ping=False)
            return self.engine

    def _discard(self) -> None:
        connection = getattr(self.local, "connection", None)
        self.local.connection = None
        if connection is not None:
            with contextlib.suppress(Exception):  # it is being thrown away anyway
                connection.invalidate()


@dataclass(frozen=True, slots=True)
class CachedResponse:
    version: int
    status: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    etag: str | None

    def serve(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if self.etag and self.status.startswith("200"):
            wanted = environ.get("HTTP_IF_NONE_MATCH")
            if wanted and parse_etags(wanted).contains_weak(self.etag):
                start_response("304 Not Modified", _conditional_headers(self.headers))
                return [b""]
        start_response(self.status, [*self.headers])
        return [self.body]

    def size(self, key: CacheKey) -> int:
        """Bytes this entry holds as Python objects, its key included (counted once each)."""
        headers = sum(
            sys.getsizeof(pair) + sys.getsizeof(pair[0]) + sys.getsizeof(pair[1])
            for pair in self.headers
        )
        return (
            ENTRY_OVERHEAD
            + sys.getsizeof(key)
            + sum(sys.getsizeof(part) for part in key)
            + sys.getsizeof(self.status)
            + sys.getsizeof(self.headers)
            + headers
            + sys.getsizeof(self.body)
            + sys.getsizeof(self.etag)
        )


def _conditional_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    keep = {"etag", "cache-control", "vary", "expires"}
    return [(k, v) for k, v in headers if k.lower() in keep]


def _storable(status: str, headers: list[tuple[str, str]]) -> bool:
    if int(status.split(" ", 1)[0]) not in CACHEABLE_STATUSES:
        return False
    for name, value in headers:
        if name.lower() == "set-cookie":
            return False
        if name.lower() == "vary" and not parse_set_header(value.lower()) <= STORABLE_VARY:
            return False
    return True


class AnonymousPageCache:
    """WSGI middleware: serve anonymous public pages from memory while the version holds."""

    def __init__(
        self,
        app: WSGIApplication,
        cookie_names: tuple[str, ...],
        max_bytes: int,
        read_version: Callable[[], int | None],
        fixed_origin: bool,
    ) -> None:
        self.app, self.cookie_names, self.max_bytes = app, cookie_names, max_bytes
        self.read_version = read_version
        self.fixed_origin = fixed_origin  # PUBLIC_BASE_URL is set: URLs never use the request
        self.entries: dict[CacheKey, tuple[CachedResponse, int]] = {}
        self.size = 0
        self.lock = threading.Lock()
        _caches.append(self)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        if (
            environ.get("REQUEST_METHOD") != "GET"
            or not _public_path(environ.get("PATH_INFO", ""))
            or carries_credentials(environ, self.cookie_names)
        ):
            return self.app(environ, start_response)
        version = self.read_version()
        if version is None:
            return self.app(environ, start_response)
        environ["QUERY_STRING"] = _view_query(environ)
        key = self._key(environ)
        found = self.entries.get(key)
        if found is not None and found[0].version == version:
            return self._serve_hit(found[0], environ, start_response, started)
        environ[VERSION_KEY] = version
        environ[CACHE_STATUS_KEY] = "miss"
        return self._render_and_store(key, version, environ, start_response)

    def _key(self, environ: WSGIEnvironment) -> CacheKey:
        """What the page is built from (see the module's docstring)."""
        origin = "" if self.fixed_origin else effective_origin(environ)
        script = environ.get("SCRIPT_NAME", "")
        return (origin, script, environ.get("PATH_INFO", ""), environ["QUERY_STRING"])

    def _serve_hit(
        self,
        entry: CachedResponse,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        started: float,
    ) -> Iterable[bytes]:
        """The stored page with this request's own id, logged as Flask logs the others."""
        rid = request_id_for(environ)
        status: list[str] = []

        def respond(line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status.append(line)
            headers += [(REQUEST_ID_HEADER, rid), ("X-Dispatch-Cache", "hit")]
            return start_response(line, headers, exc_info)

        body = entry.serve(environ, respond)
        log_request(
            {
                "request_id": rid,
                "method": "GET",
                "path": environ.get("PATH_INFO", ""),
                "status": int(status[0].split(" ", 1)[0]),
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "user_id": None,
                "remote_addr": environ.get("REMOTE_ADDR"),
                "cache": "hit",
            }
        )
        return body

    def _render_and_store(
        self,
        key: CacheKey,
        version: int,
        environ: WSGIEnvironment,
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        captured: list[Any] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured[:] = [status, headers]
            return start_response(status, headers, exc_info)

        result = self.app(environ, capture)
        if not environ.get(PUBLIC_KEY) or not captured:
            return result
        status, headers = captured
        try:
            body = b"".join(result)
        finally:
            close: Callable[[], None] | None = getattr(result, "close", None)
            if close is not None:
                close()
        if _storable(status, headers):
            kept = tuple((k, v) for k, v in headers if k.lower() in STORED_HEADERS)
            quoted = next((v for k, v in kept if k.lower() == "etag"), None)
            etag = unquote_etag(quoted)[0] if quoted else None
            self._store(key, CachedResponse(version, status, kept, body, etag))
        return [body]

    def _store(self, key: CacheKey, entry: CachedResponse) -> None:
        with self.lock:
            old = self.entries.pop(key, None)
            if old is not None:
                self.size -= old[1]
                if old[0].version > entry.version:  # a slower render of an older version
                    entry = old[0]
            size = entry.size(key)
            self.entries[key] = (entry, size)
            self.size += size
            while self.size > self.max_bytes and self.entries:
                oldest = next(iter(self.entries))  # insertion order: first in, first out
                self.size -= self.entries.pop(oldest)[1]

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.size = 0


def effective_origin(environ: WSGIEnvironment) -> str:
    """The origin `url_for(_external=True)` writes: request.host_url's scheme and host."""
    scheme = environ.get("wsgi.url_scheme", "http")
    server = (environ.get("SERVER_NAME", ""), int(environ.get("SERVER_PORT") or 0) or None)
    return f"{scheme}://{get_host(scheme, environ.get('HTTP_HOST'), server)}"


def _canonical_number(value: str) -> str:
    """A number as the view's schema reads it (`01`, ` 1`, `+1`, a full-width one: all
    `1`), so spellings of one page share an entry; anything else as it came."""
    if len(value) > 32:
        return value
    try:
        return str(int(value))
    except ValueError:
        return value


def _view_query(environ: WSGIEnvironment) -> str:
    """The query string cut down to the parameters the view reads: the first value of
    each, numbers written canonically (`page=01` is `page=1`)."""
    wanted = QUERY_PARAMETERS.get(environ.get("PATH_INFO", ""), ())
    raw = environ.get("QUERY_STRING", "")
    if not wanted or not raw:
        return ""
    args: dict[str, str] = {}
    for name, value in parse_qsl(raw, keep_blank_values=True, errors="replace"):
        if name in wanted:
            args.setdefault(name, value)  # the first, as the view's request.args.to_dict()
    kept: list[tuple[str, str]] = []
    for name in wanted:
        value = args.get(name)
        if value is None:
            continue
        kept.append((name, _canonical_number(value)))
    return urlencode(kept)


def clear_all_caches() -> None:
    """Forget every cached page in this process (tests roll catalog versions back)."""
    for cache in _caches:
        cache.clear()
    renders.clear()


def _cache_headers(app: Flask, response: Response) -> Response:
    """Public and validated for anonymous public answers; private and unstored otherwise."""
    public = is_public() and not carries_credentials(request.environ, _cookie_names(app))
    if public and response.status_code in CACHEABLE_STATUSES:
        response.cache_control.public = True
        response.cache_control.max_age = app.config["PUBLIC_CACHE_MAX_AGE"]
        response.vary.update(("Cookie", "Authorization"))
        if response.status_code == 200:
            response.set_etag(hashlib.sha256(response.get_data()).hexdigest()[:32])
            response.make_conditional(request)
        request.environ[PUBLIC_KEY] = True
    elif "Cache-Control" not in response.headers:
        response.cache_control.private = True
        response.cache_control.no_store = True
    return response


def _cookie_names(app: Flask) -> tuple[str, ...]:
    return (
        str(app.config.get("SESSION_COOKIE_NAME") or "session"),
        str(app.config.get("REMEMBER_COOKIE_NAME") or "remember_token"),
    )


def register_public_cache(app: Flask) -> None:
    app.after_request(lambda response: _cache_headers(app, response))
    # Public pages carry no CSRF token: it would create a session (a cookie) per visitor.
    app.context_processor(lambda: {"public_page": is_public()})
    if app.config["PUBLIC_CACHE_ENABLED"]:
        # Tests run each case in a transaction that is never committed: they read the
        # version through the session that sees it.
        reader = read_catalog_version if app.testing else CommittedVersionReader()
        cache = AnonymousPageCache(
            app.wsgi_app,
            _cookie_names(app),
            app.config["PUBLIC_CACHE_MAX_BYTES"],
            reader,
            fixed_origin=bool(app.config.get("PUBLIC_BASE_URL")),
        )
        app.extensions["public_cache"] = cache
        app.wsgi_app = cache  # type: ignore[method-assign]
        # An owner's article JSON, from the render cache through the read gate.
        from dispatch_pay.catalog.owner_reads import OwnerReads

        app.wsgi_app = OwnerReads(  # type: ignore[method-assign]
            app.wsgi_app, fixed_origin=bool(app.config.get("PUBLIC_BASE_URL")), testing=app.testing
        )
        # A reader's full page, kept by the view, through the read gate.
        from dispatch_pay.catalog.owner_pages import OwnerPages

        app.wsgi_app = OwnerPages(app.wsgi_app, app, testing=app.testing)  # type: ignore[method-assign]
