"""/mcp on the same host and port as the app: the MCP SDK's ASGI app inside our WSGI app.

gunicorn serves WSGI; the SDK's Streamable HTTP transport is ASGI. A WSGI dispatcher
sends `/mcp` through a2wsgi's ASGIMiddleware and everything else to Flask. The SDK
runs stateless with JSON responses: every POST is answered in full, no stream stays
open, so a gthread worker thread is busy only for the call itself.

The ASGI side needs a running event loop and the SDK's session manager started in it
(normally an ASGI lifespan, which a2wsgi does not run). Both are started lazily, once
per process, so that forked gunicorn workers each get their own.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from a2wsgi import ASGIMiddleware
from flask import Flask
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

from dispatch_pay.agents.mcp_server import (
    agent_token,
    bearer_secret,
    build_server,
    public_base_url,
)
from dispatch_pay.errors import DomainError
from dispatch_pay.request_log import REQUEST_ID_HEADER, log_request, request_id_for
from models import db

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

MCP_PATH = "/mcp"
METHOD_NOT_ALLOWED = DomainError(
    "method_not_allowed", "The MCP endpoint takes POST requests only.", status=405
)


class McpMount:
    """WSGI: `/mcp` to the MCP server (agent tokens only), every other path to `inner`."""

    def __init__(self, app: Flask, inner: WSGIApplication) -> None:
        self.app = app
        self.inner = inner
        self.lock = threading.Lock()
        self.bridge: ASGIMiddleware | None = None

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").rstrip("/") != MCP_PATH:
            return self.inner(environ, start_response)
        # Flask never sees these requests: they get their request line (and id) here.
        line = _RequestLine(environ, start_response)
        if environ.get("REQUEST_METHOD") != "POST":
            # Stateless JSON mode has no stream to GET and no session to DELETE; the SDK
            # would hold a GET open, a worker thread each (the spec allows 405 here).
            return line.logged(_error(METHOD_NOT_ALLOWED, line.start_response))
        refusal = self.refusal(environ)
        if refusal is not None:
            return line.logged(_error(refusal, line.start_response))
        # a2wsgi types the WSGI callables its own way; they are the same protocol.
        bridge = self.asgi()
        return line.logged(bridge(environ, line.start_response))  # type: ignore[arg-type]

    def refusal(self, environ: WSGIEnvironment) -> DomainError | None:
        """401 without a live token, 403 for a token that is not an agent's."""
        secret = bearer_secret({"authorization": environ.get("HTTP_AUTHORIZATION", "")})
        with self.app.app_context():
            try:
                agent_token(secret)
                db.session.commit()  # at most a last_used_at, every few minutes
            except DomainError as exc:
                db.session.rollback()
                return exc
            finally:
                db.session.remove()
        return None

    def asgi(self) -> ASGIMiddleware:
        with self.lock:
            if self.bridge is None:
                self.bridge = _start_bridge(self.app)
            return self.bridge


def _start_bridge(app: Flask) -> ASGIMiddleware:
    server = build_server(
        app,
        secret_of=lambda ctx: bearer_secret(ctx.headers),
        base_url=lambda ctx: public_base_url(app, ctx),
    )
    asgi_app = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        stateless_http=True,
        json_response=True,
        # Every call needs an agent token as bearer, which a page a DNS-rebinding
        # attacker serves cannot know; and the public host is the operator's to choose.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="mcp-event-loop", daemon=True).start()
    started = threading.Event()
    asyncio.run_coroutine_threadsafe(_serve_sessions(server, started), loop)
    if not started.wait(timeout=30):
        raise RuntimeError("the MCP session manager did not start")
    return ASGIMiddleware(asgi_app, loop=loop)  # type: ignore[arg-type]  # Starlette is ASGI


async def _serve_sessions(server: MCPServer, started: threading.Event) -> None:
    """The SDK's session manager, for the life of the process (in place of a lifespan)."""
    async with server.session_manager.run():
        started.set()
        await asyncio.Event().wait()


class _RequestLine:
    """The request line Flask would log, for a request answered outside Flask."""

    def __init__(self, environ: WSGIEnvironment, start_response: StartResponse) -> None:
        self.environ = environ
        self.outer = start_response
        self.request_id = request_id_for(environ)
        self.started = time.perf_counter()
        self.status = 0

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Any:
        self.status = int(status.split(" ", 1)[0])
        headers = [(k, v) for k, v in headers if k.lower() != REQUEST_ID_HEADER.lower()]
        headers.append((REQUEST_ID_HEADER, self.request_id))
        return self.outer(status, headers, exc_info)

    def logged(self, body: Iterable[bytes]) -> Iterator[bytes]:
        try:
            yield from body
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
            log_request(
                {
                    "request_id": self.request_id,
                    "method": self.environ.get("REQUEST_METHOD", ""),
                    "path": MCP_PATH,
                    "status": self.status or 500,
                    "duration_ms": round((time.perf_counter() - self.started) * 1000, 2),
                    "user_id": None,
                    "remote_addr": self.environ.get("REMOTE_ADDR"),
                    "cache": "bypass",
                }
            )


def _error(error: DomainError, start_response: StartResponse) -> list[bytes]:
    body = json.dumps(error.body()).encode()
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
    ]
    if error.status == 401:
        headers.append(("WWW-Authenticate", 'Bearer realm="dispatch_pay"'))
    if error.status == 405:
        headers.append(("Allow", "POST"))
    reason = {401: "UNAUTHORIZED", 403: "FORBIDDEN", 405: "METHOD NOT ALLOWED"}.get(
        error.status, "ERROR"
    )
    start_response(f"{error.status} {reason}", headers)
    return [body]


def mount_mcp(app: Flask) -> None:
    app.wsgi_app = McpMount(app, app.wsgi_app)  # type: ignore[method-assign]


__all__ = ["MCP_PATH", "McpMount", "mount_mcp"]
