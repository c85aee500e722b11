"""Structured logs: one JSON object per line on stderr, one line per request.

Each request gets an id (a well-formed X-Request-ID from the proxy, or a new one), echoed
in the response header and stamped on every log line written while it runs. A request
line carries only method, path (never the query string), status, duration, user id and
what the public page cache did (`hit`, `miss` or `bypass`): never a body, a header, a
cookie, a token, a password or a key. Pages served from the cache never reach Flask; the
cache logs their line itself through `log_request`, with an id of their own.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import traceback
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, g, has_request_context, request
from sqlalchemy import inspect

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

PACKAGE_LOGGER = "dispatch_pay"
REQUEST_ID_HEADER = "X-Request-ID"
# Ids a proxy may hand us; anything else (too long, odd characters) is replaced, so a
# client cannot inject text into the logs through the header.
VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Set in the WSGI environ by the public page cache: "hit", "miss" (rendered, maybe stored).
CACHE_STATUS_KEY = "dispatch_pay.cache_status"

log = logging.getLogger(f"{PACKAGE_LOGGER}.request")


def request_id() -> str | None:
    return g.get("request_id") if has_request_context() else None


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = request_id()
        if rid:
            entry["request_id"] = rid
        entry.update(getattr(record, "fields", {}))
        if record.exc_info and record.exc_info[0] is not None:
            # The type and the traceback's frames, not the exception's text: database
            # errors put statement parameters (emails, token digests) into their message.
            entry["exception"] = record.exc_info[0].__name__
            entry["traceback"] = _frames(record)
        return json.dumps(entry, default=str)


def _frames(record: logging.LogRecord) -> list[str]:
    tb = record.exc_info[2] if record.exc_info else None
    return [f"{f.filename}:{f.lineno} in {f.name}" for f in traceback.extract_tb(tb)]


class StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (so test capture and reloaders work)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_logging(name: str = PACKAGE_LOGGER, level: int = logging.INFO) -> None:
    """JSON lines on stderr for every logger under `name` (ours, by default); idempotent."""
    logger = logging.getLogger(name)
    if any(isinstance(h, StderrHandler) for h in logger.handlers):
        return
    handler = StderrHandler()
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def _current_user_id() -> int | None:
    """The caller's id without touching the database (identity of a loaded instance)."""
    user = g.get("api_user") or g.get("_login_user")
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    identity = inspect(user).identity
    return int(identity[0]) if identity else None


def request_id_for(environ: WSGIEnvironment) -> str:
    """This request's id: the proxy's X-Request-ID when well formed, else a new one."""
    incoming = environ.get("HTTP_X_REQUEST_ID", "")
    return incoming if VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex


def log_request(fields: dict[str, Any]) -> None:
    level = logging.ERROR if int(fields["status"]) >= 500 else logging.INFO
    log.log(level, "request", extra={"fields": fields})


def register_request_logging(app: Flask) -> None:
    configure_logging()

    @app.before_request
    def _start() -> None:
        g.request_id = request_id_for(request.environ)
        g.request_started = time.perf_counter()

    @app.after_request
    def _finish(response: Response) -> Response:
        rid = g.get("request_id") or uuid.uuid4().hex
        response.headers[REQUEST_ID_HEADER] = rid
        started = g.get("request_started")
        duration = (time.perf_counter() - started) * 1000 if started else None
        fields = {
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "duration_ms": round(duration, 2) if duration is not None else None,
            "user_id": _current_user_id(),
            "remote_addr": request.remote_addr,
            "cache": request.environ.get(CACHE_STATUS_KEY, "bypass"),
        }
        log_request(fields)
        return response
