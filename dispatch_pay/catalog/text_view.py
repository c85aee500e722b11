"""An article as Markdown for machines: a small front matter, then the exact body.

The body after the front matter is byte for byte the Markdown the manifest's
`text_sha256` covers, so an agent can check what it bought.
"""

from __future__ import annotations

import json

from dispatch_pay.catalog.schemas import shown_revision
from dispatch_pay.urls import absolute_url
from dispatch_pay.verification.schemas import summary_line
from models import Article

MARKDOWN_TYPE = "text/markdown"


def verification_summary(article: Article) -> str:
    revision = shown_revision(article)
    return summary_line(revision.report if revision is not None else None)


def article_markdown(article: Article) -> str:
    revision = shown_revision(article)
    body = revision.body_markdown if revision is not None else ""
    # JSON strings are valid YAML scalars: titles with colons or quotes stay one value.
    fields = {
        "title": article.title,
        "slug": article.slug,
        "url": absolute_url("catalog.article_page", slug=article.slug),
        "price": f"{article.price_amount} {article.price_currency}",
        "verification": verification_summary(article),
    }
    front = "\n".join(
        f"{key}: {json.dumps(value, ensure_ascii=False)}" for key, value in fields.items()
    )
    return f"---\n{front}\n---\n\n{body}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _link_text(text: str) -> str:
    """Text safe inside a Markdown link's brackets."""
    return _one_line(text).replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")


def llms_txt(site_name: str, articles: list[Article]) -> str:
    """The catalog for machines (llmstxt.org): teasers, prices, verification, how to buy.

    Teasers only: no byte of a paid text is ever in it.
    """
    api = absolute_url("catalog_api.list_articles")
    tokens = absolute_url("agents_api.create_agent_token")
    lines = [
        f"# {_one_line(site_name)}",
        "",
        "> Verified dispatches sold one by one from a prepaid wallet. Each article lists "
        "its price and what its verifier found; the full text is sold, the teaser is free.",
        "",
        "## How an agent buys",
        "",
        f"1. The reader creates an agent token at {tokens} (or on their account page) with a "
        "maximum price per article and a daily limit (UTC day).",
        "2. `GET` an article's API URL with `Authorization: Bearer <agent token>` "
        "(`Accept: text/markdown` for Markdown). Not owned yet: 402 with the offer in the "
        "body and in an x402 v2 `PAYMENT-REQUIRED` header (scheme `dispatch-wallet`).",
        "3. `POST <purchase_url>?include=article` with "
        '`{"expected_price": {"amount": <minor units>, "currency": "<code>"}}` buys and '
        "returns the full article in one request; buying again never charges twice. "
        "Over the token's budget: 402 `budget_exceeded`; price moved: 409 `price_changed`.",
        f"4. Or connect an MCP client to {absolute_url('catalog.front_page')}mcp "
        "(Streamable HTTP, the agent token as bearer): tools `search_articles`, `get_offer`, "
        "`buy_and_read`, `library`.",
        "",
        f"The catalog as JSON: {api}",
        "",
        "## Articles",
        "",
    ]
    for article in articles:
        url = absolute_url("catalog_api.get_article", slug=article.slug)
        price = f"{article.price_amount} {article.price_currency}"
        if article.is_free:
            price = "free"
        lines.append(
            f"- [{_link_text(article.title)}]({url}): {_one_line(article.teaser)} "
            f"Price: {price} (minor units). Verification: {verification_summary(article)}."
        )
    return "\n".join(lines) + "\n"
