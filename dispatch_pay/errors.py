"""Domain errors and the handlers that turn every failure into the contract's shape."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from models import db

log = logging.getLogger(__name__)


class DomainError(Exception):
    """A failure the client can understand; carries the contract's code and status."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int = 400,
        fields: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.fields = fields or {}
        self.extra = extra or {}
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        # `fields` is always there ({} when no field is at fault): clients need not probe.
        error: dict[str, Any] = {"code": self.code, "message": self.message, "fields": self.fields}
        return {"error": error, **self.extra}


def not_found(what: str = "resource") -> DomainError:
    return DomainError("not_found", f"No such {what}.", status=404)


def invalid_fields(
    fields: dict[str, Any], message: str = "Some fields are invalid."
) -> DomainError:
    return DomainError("invalid_fields", message, status=422, fields=fields)


HTTP_CODES = {
    400: ("malformed_request", "The request could not be understood."),
    401: ("not_authenticated", "Log in or send a valid API token."),
    403: ("forbidden", "You are not allowed to do that."),
    404: ("not_found", "Nothing is here."),
    405: ("method_not_allowed", "This method is not allowed here."),
    413: ("payload_too_large", "The request body is too large."),
    415: ("unsupported_media_type", "Send JSON."),
    429: ("too_many_requests", "Too many attempts; wait a moment and try again."),
    503: ("service_unavailable", "A service we depend on is unavailable."),
}


def wants_json() -> bool:
    if request.path.startswith(("/api/", "/webhooks/")):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and not request.accept_mimetypes.accept_html


def error_response(error: DomainError) -> Response:
    if wants_json():
        response = jsonify(error.body())
    else:
        response = Response(render_template("error.html", error=error), mimetype="text/html")
    response.status_code = error.status
    response.headers.update(error.headers)
    if error.status == 401 and request.path.startswith("/api/"):
        response.headers["WWW-Authenticate"] = 'Bearer realm="dispatch_pay"'
    return response


def _from_http(exc: HTTPException) -> DomainError:
    status = exc.code or 500
    code, message = HTTP_CODES.get(status, ("http_error", exc.description or "Request failed."))
    if status == 400 and exc.description and "CSRF" in exc.description:
        code, message = (
            "csrf_failed",
            "The form expired or was not sent by this site; reload and try again.",
        )
    return DomainError(code, message, status=status)


def register_errorhandlers(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def _domain(exc: DomainError) -> Response:
        db.session.rollback()
        return error_response(exc)

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError) -> Response:
        db.session.rollback()
        return error_response(
            DomainError(
                "csrf_failed",
                "The form expired or was not sent by this site; reload and try again.",
                status=400,
            )
        )

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        db.session.rollback()
        response = error_response(_from_http(exc))
        if exc.code == 405 and exc.get_response().headers.get("Allow"):
            response.headers["Allow"] = exc.get_response().headers["Allow"]
        return response

    @app.errorhandler(OperationalError)
    def _database_down(exc: OperationalError) -> Response:
        log.error("database unavailable: %s", type(exc.orig).__name__ if exc.orig else exc)
        db.session.rollback()
        return error_response(
            DomainError("database_unavailable", "The database is unavailable.", status=503)
        )

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        db.session.rollback()
        return error_response(
            DomainError("internal_error", "Something went wrong on our side.", status=500)
        )
