"""Structured JSON logs: one object per line, a request id, and never a secret."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from dispatch_pay import create_app
from tests.conftest import test_config as app_config
from tests.support.factories import (
    PASSWORD,
    bearer,
    grant,
    make_agent_token,
    make_article,
    make_token,
    make_user,
)
from tests.support.web import csrf_token_from

PAID_TEXT = "The paid paragraph that only owners may read, marker 7f3a."


def log_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    parsed = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all(isinstance(p, dict) for p in parsed)
    return parsed


def request_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [e for e in log_lines(capsys) if e["logger"] == "dispatch_pay.request"]


def test_a_request_line_has_the_fields_and_echoes_a_valid_request_id(
    client: FlaskClient, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    response = client.get("/api/v1/articles?page=1", headers={"X-Request-ID": "lb-7d1c:42"})
    assert response.headers["X-Request-ID"] == "lb-7d1c:42"
    [entry] = request_lines(capsys)
    assert entry["request_id"] == "lb-7d1c:42"
    assert entry["method"] == "GET"
    assert entry["path"] == "/api/v1/articles"  # never the query string
    assert entry["status"] == 200
    assert entry["level"] == "info"
    assert isinstance(entry["duration_ms"], float | int) and entry["duration_ms"] >= 0
    assert entry["user_id"] is None
    assert datetime.fromisoformat(entry["time"]).tzinfo is not None


@pytest.mark.parametrize("incoming", [None, "", "has space", "x" * 129, "a\nb", "<script>"])
def test_a_missing_or_odd_request_id_is_replaced(
    client: FlaskClient, capsys: pytest.CaptureFixture[str], incoming: str | None
) -> None:
    capsys.readouterr()
    headers = {} if incoming is None else {"X-Request-ID": incoming}
    try:
        response = client.get("/healthz", headers=headers)
    except ValueError:  # Werkzeug refuses a newline in a header before we see it
        assert incoming and "\n" in incoming
        return
    rid = response.headers["X-Request-ID"]
    assert rid != incoming and len(rid) == 32 and rid.isalnum()
    [entry] = request_lines(capsys)
    assert entry["request_id"] == rid


def test_user_ids_are_logged_for_tokens_and_sessions(
    client: FlaskClient, capsys: pytest.CaptureFixture[str]
) -> None:
    user = make_user()
    token = make_token(user)
    capsys.readouterr()
    client.get("/api/v1/wallet", headers=bearer(token))
    [entry] = request_lines(capsys)
    assert entry["user_id"] == user.id and entry["status"] == 200


def test_no_secret_reaches_the_logs(
    app: Flask, client: FlaskClient, capsys: pytest.CaptureFixture[str]
) -> None:
    reader = make_user("reader-logs@example.com")
    token = make_token(reader)
    article = make_article(body=PAID_TEXT)
    grant(reader, article)
    capsys.readouterr()
    # A bearer token, the paid body in a response, a password in a form and in JSON.
    full = client.get(f"/api/v1/articles/{article.slug}", headers=bearer(token))
    assert PAID_TEXT in full.get_data(as_text=True)
    client.post("/api/v1/tokens", json={"email": reader.email, "password": PASSWORD})
    client.post("/api/v1/tokens", json={"email": reader.email, "password": "wrong-pass-91c"})
    client.post(
        "/api/v1/readers", json={"email": "new-logs@example.com", "password": "pw-4d2e-long"}
    )
    csrf = csrf_token_from(client, "/login")
    client.post("/login", data={"email": reader.email, "password": PASSWORD, "csrf_token": csrf})
    cookie = client.get_cookie("session", domain="dispatch.test")
    assert cookie is not None
    client.get("/wallet")
    client.post(
        "/api/v1/wallet/topups",
        json={"amount": 500, "currency": "usd", "payment_method": "pm_card_secret_77"},
        headers={**bearer(token), "Idempotency-Key": "idem-secret-55"},
    )
    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert len([e for e in lines if e["logger"] == "dispatch_pay.request"]) >= 7
    for secret in (
        token,
        PASSWORD,
        "wrong-pass-91c",
        "pw-4d2e-long",
        PAID_TEXT,
        "marker 7f3a",
        csrf,
        cookie.value,
        "pm_card_secret_77",
        "idem-secret-55",
        app.config["SECRET_KEY"],
        reader.password_hash,
    ):
        assert secret not in err, f"{secret[:12]}… was logged"


def test_an_unexpected_error_logs_its_type_and_frames_not_its_text(
    app: Flask, db_connection: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = create_app(app_config(app.config["DATABASE_URL"]), configure_database=False)

    @broken.get("/_boom")
    def _boom() -> str:
        raise ValueError("password=hunter2-secret")

    with broken.app_context():
        capsys.readouterr()
        response = broken.test_client().get(
            "/_boom", headers={"X-Request-ID": "boom-1", "Accept": "application/json"}
        )
    assert response.status_code == 500
    assert response.get_json()["error"]["code"] == "internal_error"
    entries = log_lines(capsys)
    err = json.dumps(entries)
    assert "hunter2-secret" not in err
    [failure] = [e for e in entries if e.get("exception")]
    assert failure["exception"] == "ValueError" and failure["request_id"] == "boom-1"
    assert failure["level"] == "error" and failure["traceback"]
    [entry] = [e for e in entries if e["logger"] == "dispatch_pay.request"]
    assert entry["status"] == 500 and entry["level"] == "error"


def test_mcp_requests_get_a_request_line_too(
    client: FlaskClient, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found by attack: /mcp is mounted outside Flask, so its calls (purchases by agents
    included) and its refusals left no request line at all."""
    reader = make_user()
    agent = make_agent_token(reader)
    capsys.readouterr()
    # A server reads every body; the line is written once the answer is sent.
    refused = client.post("/mcp", json={}, headers={"X-Request-ID": "mcp-refused-1"})
    assert refused.status_code == 401 and refused.get_json()["error"]["code"] == "invalid_token"
    wrong_method = client.get("/mcp", headers=bearer(agent))
    assert wrong_method.status_code == 405 and wrong_method.get_data()
    hello = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"},
        },
    }
    accepted = client.post(
        "/mcp",
        json=hello,
        headers={**bearer(agent), "Accept": "application/json, text/event-stream"},
    )
    assert accepted.status_code == 200 and accepted.get_json()["result"]["serverInfo"]
    lines = [e for e in request_lines(capsys) if e["path"] == "/mcp"]
    assert [(e["method"], e["status"]) for e in lines] == [
        ("POST", 401),
        ("GET", 405),
        ("POST", 200),
    ]
    assert lines[0]["request_id"] == "mcp-refused-1"
    assert refused.headers["X-Request-ID"] == "mcp-refused-1"
    assert all(e["remote_addr"] and e["duration_ms"] >= 0 for e in lines)
    assert agent not in json.dumps(lines)


def test_the_mcp_sdk_keeps_to_our_json_lines_and_never_logs_exception_text(
    app: Flask, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by attack: building the MCP server configured the root logger (as under
    gunicorn, where nothing else has) with a console handler that printed every MCP call
    and the text of exceptions, SQL statement parameters included."""
    from dispatch_pay.agents.mcp_server import build_server

    monkeypatch.setattr(logging.root, "handlers", [])  # a process where nothing set up logging
    monkeypatch.setattr(logging.root, "level", logging.WARNING)
    build_server(app, secret_of=lambda _ctx: None, base_url=lambda _ctx: "http://x")
    assert logging.root.handlers == [] and logging.root.level == logging.WARNING
    capsys.readouterr()
    sdk = logging.getLogger("mcp.server.mcpserver.server")
    sdk.info("Terminating session: None")  # chatter, once per call
    try:
        raise ValueError("[parameters: {'token_hash': 'digest-of-a-secret'}]")
    except ValueError:
        sdk.exception("Error executing tool search_articles")
    [entry] = log_lines(capsys)
    assert entry["logger"] == "mcp.server.mcpserver.server"
    assert entry["exception"] == "ValueError"
    assert "digest-of-a-secret" not in json.dumps(entry)
