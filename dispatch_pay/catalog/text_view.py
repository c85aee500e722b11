"""An article as Markdown for machines: a small front matter, then the exact body.

The body after the front matter is byte for byte the Markdown the manifest's
`text_sha256` covers, so an agent can check what it bought.
"""

from __future__ import annotations

import json

from dispatch_pay.catalog.offers import absolute_url
from dispatch_pay.catalog.schemas import shown_revision
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
