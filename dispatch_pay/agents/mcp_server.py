"""The MCP server: the agent's view of the store, over the same services as the HTTP API.

Tools: `search_articles`, `get_offer`, `buy_and_read` and `library`. Each call runs as
one request would: in the Flask app, one transaction (committed when the tool
succeeds, rolled back otherwise), with the caller's agent token resolved afresh, so
a token revoked a moment ago buys nothing. Refusals the HTTP API answers with an
error (402 `budget_exceeded`, 409 `price_changed`, ...) come back as tool errors whose
text is the same JSON error body; unknown tools and unknown arguments are JSON-RPC
`invalid params` errors.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from flask import Flask
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, CallToolResult, TextContent
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from dispatch_pay.accounts.services import token_for_secret
from dispatch_pay.catalog import services as catalog
from dispatch_pay.catalog.gate import Access, entitled_article_ids, read_access
from dispatch_pay.catalog.offers import offer_for
from dispatch_pay.catalog.schemas import FullArticleSchema, TeaserSchema
from dispatch_pay.catalog.text_view import article_markdown, verification_summary
from dispatch_pay.errors import DomainError, not_found
from dispatch_pay.inputs import UNSAFE_TEXT, load, unsafe_text_fields
from dispatch_pay.money import Money
from dispatch_pay.request_log import configure_logging
from dispatch_pay.wallet import checkout
from dispatch_pay.wallet.budgets import budget_view, spent_today
from dispatch_pay.wallet.schemas import ExpectedPriceSchema, money
from models import ApiToken, db

SecretSource = Callable[[Context], str | None]
TEASER = TeaserSchema()
FULL = FullArticleSchema()
INSTRUCTIONS = (
    "A store of verified dispatches (articles) sold one by one from the reader's prepaid "
    "wallet. Search, check an offer, then buy_and_read with the price you were shown as "
    "expected_price. Purchases stay within the agent token's budget (a maximum price per "
    "article and a daily limit); buying an article you own never charges again. Every "
    "answer carries the verifier's summary: weigh what you read by it."
)


class Price(BaseModel):
    """Money in minor units: {"amount": 39, "currency": "usd"} is $0.39."""

    model_config = ConfigDict(extra="forbid")

    amount: StrictInt
    currency: str = Field(max_length=3)


def build_server(
    app: Flask, secret_of: SecretSource, base_url: Callable[[Context], str]
) -> MCPServer:
    """The MCP server for `app`; `secret_of` finds the caller's agent token in a call."""
    server = _server_without_its_logging()
    server.middleware.append(StrictToolCalls(server))

    def run(ctx: Context, work: Callable[[ApiToken], dict[str, Any]]) -> CallToolResult:
        """One tool call as one request: the app, the caller's token, one transaction.

        A refusal is a tool result with `is_error` whose text (and structured content)
        is the HTTP API's error body, so the agent reads the same codes either way.
        """
        with app.test_request_context("/mcp", base_url=base_url(ctx)):
            try:
                token = agent_token(secret_of(ctx))
                result = work(token)
                db.session.commit()
                return tool_result(result)
            except DomainError as exc:
                db.session.rollback()
                return tool_result(exc.body(), is_error=True)
            except BaseException:
                db.session.rollback()
                raise
            finally:
                db.session.remove()

    @server.tool()
    def search_articles(
        ctx: Context, query: str = "", max_price: Price | None = None, limit: int = 10
    ) -> CallToolResult:
        """Find published articles whose title or teaser mentions `query`, priced at most
        `max_price` (minor units) if given. Teasers, prices and verification summaries."""

        def work(token: ApiToken) -> dict[str, Any]:
            cap = None
            if max_price is not None:  # the API's own money rule: a 422's fields, never a 500
                price = load(ExpectedPriceSchema(), max_price.model_dump())
                cap = (price["amount"], price["currency"])
            found = catalog.search_published(query[:200], cap, max(1, min(limit, 50)))
            owned = entitled_article_ids(token.user, [a.id for a in found])
            return {"articles": [{**TEASER.dump(a), "owned": a.id in owned} for a in found]}

        return run(ctx, work)

    @server.tool()
    def get_offer(ctx: Context, slug: str) -> CallToolResult:
        """What an article costs, whether you own it, and whether the token's budget covers it."""

        def work(token: ApiToken) -> dict[str, Any]:
            article = catalog.find_article(slug)
            access = read_access(token.user, article)
            if access is Access.HIDDEN:
                raise not_found("article")
            budget = budget_view(token, spent_today([token.id])[token.id])
            return {
                "article": TEASER.dump(article),
                "owned": access is Access.FULL,
                "offer": offer_for(article),
                "budget": budget,
            }

        return run(ctx, work)

    @server.tool()
    def buy_and_read(ctx: Context, slug: str, expected_price: Price) -> CallToolResult:
        """Buy an article from the reader's wallet at `expected_price` (the price you were
        shown) and read it: the full text as Markdown with the verifier's report. Owned
        already: the text again, nothing charged."""

        def work(token: ApiToken) -> dict[str, Any]:
            price = load(ExpectedPriceSchema(), expected_price.model_dump())
            result = checkout.buy(
                token.user,
                catalog.find_article(slug),
                agent_token=token,
                expected_price=Money(price["amount"], price["currency"]),
            )
            article = catalog.article_for_reader(token.user, slug)
            return {
                "charged": result.created,
                "purchase": {
                    "id": result.purchase.id,
                    "price": money(result.purchase.amount, result.purchase.currency),
                    "created_at": result.purchase.created_at.isoformat(),
                },
                "wallet": {"balance": money(result.wallet.balance, result.wallet.currency)},
                "article": FULL.dump(article),
                "verification_summary": verification_summary(article),
                "markdown": article_markdown(article),
            }

        return run(ctx, work)

    @server.tool()
    def library(ctx: Context, include_text: bool = False) -> CallToolResult:
        """The articles the reader owns, newest first, with their verification summaries
        (and their full Markdown text with `include_text`)."""

        def work(token: ApiToken) -> dict[str, Any]:
            items = []
            for item in catalog.library(token.user):
                entry = {
                    **TEASER.dump(item.article),
                    "acquired_at": item.acquired_at.isoformat(),
                    "source": item.source,
                }
                if include_text:
                    entry["markdown"] = article_markdown(item.article)
                items.append(entry)
            return {"articles": items}

        return run(ctx, work)

    return server


def _server_without_its_logging() -> MCPServer:
    """The SDK's server, minus the logging it sets up for itself.

    Building it calls `logging.basicConfig` with a console handler at INFO: where nothing
    had configured the root logger (gunicorn), every call was printed, and so was the text
    of every exception, SQL statement parameters included. Our logs are JSON lines that
    carry an exception's type and frames only: the root logger is put back as it was, and
    the SDK's warnings and errors go through our formatter.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    server = MCPServer("dispatch_pay", instructions=INSTRUCTIONS, log_level="WARNING")
    root.handlers[:] = handlers
    root.setLevel(level)
    configure_logging("mcp", logging.WARNING)
    return server


def tool_result(body: dict[str, Any], *, is_error: bool = False) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=json.dumps(body))],
        structured_content=body,
        is_error=is_error,
    )


def agent_token(secret: str | None) -> ApiToken:
    """The live agent token with this secret, or the contract's 401/403 as a DomainError."""
    token = token_for_secret(secret) if secret else None
    if token is None:
        raise DomainError("invalid_token", "The API token is invalid or revoked.", status=401)
    if not token.is_agent:
        raise DomainError(
            "agent_token_required", "The MCP server takes agent tokens only.", status=403
        )
    return token


def bearer_secret(headers: Any) -> str | None:
    if headers is None:
        return None
    scheme, _, secret = str(headers.get("authorization") or "").partition(" ")
    return secret.strip() if scheme.lower() == "bearer" and secret.strip() else None


class StrictToolCalls:
    """Unknown tools and unknown argument names are JSON-RPC `invalid params` errors.

    (The SDK would ignore extra arguments; an agent that misspells `expected_price`
    must hear about it, not buy at whatever the price is.)
    """

    def __init__(self, server: MCPServer) -> None:
        self.server = server

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        if ctx.method == "tools/call" and isinstance(ctx.params, dict):
            name = ctx.params.get("name")
            tools = {tool.name: tool for tool in await self.server.list_tools()}
            schema = tools[name].input_schema if name in tools else None
            if schema is None:
                raise MCPError(code=INVALID_PARAMS, message=f"Unknown tool: {name!s:.100}")
            arguments = ctx.params.get("arguments") or {}
            if not isinstance(arguments, dict):
                raise MCPError(code=INVALID_PARAMS, message="Tool arguments must be an object.")
            unknown = sorted(set(arguments) - set(schema.get("properties", {})))
            if unknown:
                names = ", ".join(str(u)[:50] for u in unknown[:5])
                raise MCPError(code=INVALID_PARAMS, message=f"Unknown arguments: {names}")
            try:  # text no database column can hold (NUL, lone surrogates), as in the API
                unsafe = unsafe_text_fields(arguments)
            except DomainError as exc:
                raise MCPError(code=INVALID_PARAMS, message=exc.message) from exc
            if unsafe:
                names = ", ".join(sorted(unsafe))
                raise MCPError(code=INVALID_PARAMS, message=f"{UNSAFE_TEXT} ({names})")
        return await call_next(ctx)


def public_base_url(app: Flask, ctx: Context) -> str:
    """Where links in answers point: PUBLIC_BASE_URL, else the host the client called."""
    configured = app.config.get("PUBLIC_BASE_URL")
    if configured:
        return str(configured)
    host = (ctx.headers or {}).get("host") or "localhost"
    return f"http://{host}"
