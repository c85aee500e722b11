"""The MCP server on a live site: gunicorn (gthread), localstripe, the SDK's own client.

/mcp is served by the same gunicorn workers as the app. The client lists the tools,
buys within the agent token's budget, is refused beyond it, reads the library; bad
calls (unknown tools or arguments, negative or foreign prices, revoked or foreign
tokens, a reader's own token) get MCP errors and debit nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.support.live import LiveSite, running_site
from tests.support.servers import ROOT
from tests.support.stripe_helpers import card_top_up


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSite]:
    with running_site(tmp_path_factory.mktemp("mcp")) as live:
        yield live


def api(site: LiveSite) -> httpx2.Client:
    return httpx2.Client(base_url=site.base, timeout=30)


def new_reader(site: LiveSite, top_up: int = 500) -> str:
    with api(site) as http:
        email = f"agent-owner-{uuid.uuid4().hex}@example.com"  # id() can repeat after GC
        created = http.post("/api/v1/readers", json={"email": email, "password": "x" * 12})
        assert created.status_code == 201, created.text
        token = str(created.json()["token"])
        if top_up:
            card_top_up(http, site.stripe.base, token, top_up)
        return token


def agent_for(site: LiveSite, reader: str, max_price: int, daily_limit: int) -> tuple[str, int]:
    with api(site) as http:
        response = http.post(
            "/api/v1/agent-tokens",
            json={
                "name": "mcp test",
                "max_price": {"amount": max_price, "currency": "usd"},
                "daily_limit": {"amount": daily_limit, "currency": "usd"},
            },
            headers={"Authorization": f"Bearer {reader}"},
        )
        assert response.status_code == 201, response.text
        return str(response.json()["token"]), int(response.json()["agent_token"]["id"])


def balance(site: LiveSite, reader: str) -> int:
    with api(site) as http:
        wallet = http.get("/api/v1/wallet", headers={"Authorization": f"Bearer {reader}"})
        return int(wallet.json()["balance"]["amount"])


def catalog(site: LiveSite) -> list[dict[str, Any]]:
    with api(site) as http:
        return list(http.get("/api/v1/articles?per_page=100").json()["articles"])


async def session_calls(site: LiveSite, token: str, calls: list[tuple[str, dict[str, Any]]]) -> Any:
    """Open an MCP session with `token` as bearer, list the tools, make the calls."""
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(site.url("/mcp"), http_client=http)) as client,
    ):
        tools = await client.list_tools()
        results = []
        for name, arguments in calls:
            try:
                results.append(await client.call_tool(name, arguments))
            except MCPError as exc:
                results.append(exc)
        return tools, results


def run(site: LiveSite, token: str, *calls: tuple[str, dict[str, Any]]) -> Any:
    return anyio.run(session_calls, site, token, list(calls))


def structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    if result.structured_content is not None:
        return dict(result.structured_content)
    return dict(json.loads(result.content[0].text))


def tool_error(result: Any) -> dict[str, Any]:
    assert not isinstance(result, Exception), result
    assert result.is_error, result
    return dict(json.loads(result.content[0].text))


def test_an_agent_finds_buys_within_budget_is_refused_beyond_it_and_reads(site: LiveSite) -> None:
    reader = new_reader(site, 500)
    articles = sorted(
        (a for a in catalog(site) if a["price"]["amount"] > 0), key=lambda a: a["price"]["amount"]
    )
    cheap, dear = articles[0], articles[-1]
    assert cheap["price"]["amount"] < dear["price"]["amount"]
    token, _ = agent_for(site, reader, max_price=cheap["price"]["amount"], daily_limit=1000)
    word = cheap["title"].split()[0]

    tools, results = run(
        site,
        token,
        ("search_articles", {"query": word, "max_price": cheap["price"]}),
        ("get_offer", {"slug": cheap["slug"]}),
        ("buy_and_read", {"slug": cheap["slug"], "expected_price": cheap["price"]}),
        ("buy_and_read", {"slug": cheap["slug"], "expected_price": cheap["price"]}),
        ("buy_and_read", {"slug": dear["slug"], "expected_price": dear["price"]}),
        ("library", {}),
    )
    assert {t.name for t in tools.tools} >= {
        "search_articles",
        "get_offer",
        "buy_and_read",
        "library",
    }
    search, offer, bought, again, refused, library = results

    found = structured(search)["articles"]
    assert cheap["slug"] in [a["slug"] for a in found]
    assert all(a["verification"]["summary"] for a in found)
    assert all(a["price"]["amount"] <= cheap["price"]["amount"] for a in found)

    offered = structured(offer)
    assert offered["offer"]["price"] == cheap["price"] and offered["owned"] is False
    assert offered["budget"]["max_price"] == cheap["price"]

    first = structured(bought)
    assert first["charged"] is True
    assert first["verification_summary"] == cheap["verification"]["summary"]
    assert first["article"]["body_html"] and first["markdown"].startswith("---\n")
    assert first["wallet"]["balance"]["amount"] == 500 - cheap["price"]["amount"]
    assert structured(again)["charged"] is False

    assert tool_error(refused)["error"]["code"] == "budget_exceeded"
    owned = structured(library)["articles"]
    assert [a["slug"] for a in owned] == [cheap["slug"]]
    assert owned[0]["verification"]["summary"]
    assert balance(site, reader) == 500 - cheap["price"]["amount"]


def test_bad_calls_get_mcp_errors_and_debit_nothing(site: LiveSite) -> None:
    reader = new_reader(site, 500)
    article = next(a for a in catalog(site) if a["price"]["amount"] > 0)
    token, _ = agent_for(site, reader, max_price=1000, daily_limit=1000)
    price = article["price"]
    _, results = run(
        site,
        token,
        ("no_such_tool", {}),
        ("buy_and_read", {"slug": article["slug"], "expected_price": price, "max": 1}),
        ("buy_and_read", {"slug": article["slug"], "expected_price": {**price, "amount": -1}}),
        ("buy_and_read", {"slug": article["slug"], "expected_price": {**price, "currency": "eur"}}),
        ("buy_and_read", {"slug": article["slug"], "expected_price": {**price, "currency": "xyz"}}),
        ("buy_and_read", {"slug": article["slug"], "expected_price": {**price, "amount": "39"}}),
        ("buy_and_read", {"slug": article["slug"]}),
        ("buy_and_read", {"slug": "no-such-article", "expected_price": price}),
        ("get_offer", {"slug": "nul\x00byte"}),
        # Found by attack: an amount no database column holds was an unexpected tool error.
        ("search_articles", {"max_price": {"amount": 10**30, "currency": "usd"}}),
        ("search_articles", {"max_price": {"amount": -1, "currency": "usd"}}),
    )
    unknown_tool, unknown_arg, negative, foreign, bogus, string, missing, absent, nul = results[:9]
    for huge in results[9:]:
        assert tool_error(huge)["error"]["code"] == "invalid_fields"
    for protocol_error in (unknown_tool, unknown_arg, nul):
        assert isinstance(protocol_error, MCPError), protocol_error
        assert protocol_error.error.code == -32602
    assert tool_error(negative)["error"]["code"] == "invalid_fields"
    assert tool_error(foreign)["error"]["code"] == "price_changed"
    assert tool_error(bogus)["error"]["code"] == "invalid_fields"
    for invalid in (string, missing):
        assert invalid.is_error
    assert tool_error(absent)["error"]["code"] == "not_found"
    assert balance(site, reader) == 500


def test_only_a_live_agent_token_opens_mcp(site: LiveSite) -> None:
    reader = new_reader(site, 500)
    other = new_reader(site, 0)
    article = next(a for a in catalog(site) if a["price"]["amount"] > 0)
    token, token_id = agent_for(site, reader, max_price=1000, daily_limit=1000)
    others_agent, _ = agent_for(site, other, max_price=1000, daily_limit=1000)
    request = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    accept = {"Accept": "application/json, text/event-stream"}
    with api(site) as http:
        assert http.post("/mcp", json=request, headers=accept).status_code == 401
        assert (
            "Bearer" in http.post("/mcp", json=request, headers=accept).headers["WWW-Authenticate"]
        )
        bad = {**accept, "Authorization": "Bearer dp_not_a_token"}
        assert http.post("/mcp", json=request, headers=bad).status_code == 401
        own = {**accept, "Authorization": f"Bearer {reader}"}
        refused = http.post("/mcp", json=request, headers=own)
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "agent_token_required"
        # Stateless: no server-sent-event stream is ever held open (a worker thread each).
        agent = {"Accept": "text/event-stream", "Authorization": f"Bearer {token}"}
        for method in ("GET", "DELETE", "PUT"):
            answer = http.request(method, "/mcp", headers=agent, timeout=10)
            assert answer.status_code == 405
            assert answer.headers["Allow"] == "POST"
    # Another reader's agent buys for that reader, from that (empty) wallet only.
    _, [result] = run(
        site,
        others_agent,
        ("buy_and_read", {"slug": article["slug"], "expected_price": article["price"]}),
    )
    assert tool_error(result)["error"]["code"] == "insufficient_funds"
    with api(site) as http:
        revoked = http.delete(
            f"/api/v1/agent-tokens/{token_id}", headers={"Authorization": f"Bearer {reader}"}
        )
        assert revoked.status_code == 200
        gone = http.post(
            "/mcp", json=request, headers={**accept, "Authorization": f"Bearer {token}"}
        )
        assert gone.status_code == 401
    assert balance(site, reader) == 500


async def stdio_calls(site: LiveSite, token: str, *calls: tuple[str, dict[str, Any]]) -> Any:
    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "flask", "--app", "app", "mcp", "--token-env", "MY_AGENT_TOKEN"],
        env={**site.app_env(), "MY_AGENT_TOKEN": token},
        cwd=ROOT,
    )
    async with Client(server) as client:
        tools = await client.list_tools()
        return tools, [await client.call_tool(name, arguments) for name, arguments in calls]


def test_flask_mcp_serves_the_same_tools_over_stdio(site: LiveSite) -> None:
    reader = new_reader(site, 500)
    article = next(a for a in catalog(site) if a["price"]["amount"] > 0)
    token, _ = agent_for(site, reader, max_price=article["price"]["amount"], daily_limit=1000)
    tools, (bought, library) = anyio.run(
        stdio_calls,
        site,
        token,
        ("buy_and_read", {"slug": article["slug"], "expected_price": article["price"]}),
        ("library", {"include_text": True}),
    )
    assert {t.name for t in tools.tools} == {
        "search_articles",
        "get_offer",
        "buy_and_read",
        "library",
    }
    assert structured(bought)["charged"] is True
    [owned] = structured(library)["articles"]
    assert owned["slug"] == article["slug"] and owned["markdown"]
    assert balance(site, reader) == 500 - article["price"]["amount"]


def test_flask_mcp_refuses_to_start_without_an_agent_token(site: LiveSite) -> None:
    reader = new_reader(site, 0)
    for secret in ("", "dp_unknown", reader):
        result = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "app", "mcp", "--token-env", "T"],
            cwd=ROOT,
            env={**os.environ, **site.app_env(), "T": secret},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode != 0
        assert result.stdout == ""
        assert "T:" in result.stderr
