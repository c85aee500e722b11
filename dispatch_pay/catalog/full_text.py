"""The full article as readers get it (JSON and the page's parts), built once per version.

Callers pass an `ArticleRead` the read gate has already opened (`services.readable_article`
or `read_access(...) is Access.FULL`); see `render_cache` for why the key is safe.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import current_app, json, request
from markupsafe import Markup

from dispatch_pay.catalog.public_cache import effective_origin
from dispatch_pay.catalog.render_cache import RenderKey, render_key, renders
from dispatch_pay.catalog.schemas import FullArticleSchema, TeaserSchema
from dispatch_pay.catalog.services import ArticleRead
from dispatch_pay.verification.marking import claim_reviews, mark_quotes

T = TypeVar("T")
FULL = FullArticleSchema()
TEASER = TeaserSchema()


def origin_of(environ: Any, fixed_origin: bool) -> str:
    """What absolute URLs in a rendering depend on: nothing when PUBLIC_BASE_URL is set,
    else the effective origin and script root (as the public page cache keys them)."""
    if fixed_origin:
        return ""
    return effective_origin(environ) + environ.get("SCRIPT_NAME", "")


def origin() -> str:
    """This request's `origin_of`."""
    return origin_of(request.environ, bool(current_app.config.get("PUBLIC_BASE_URL")))


def _key(kind: str, read: ArticleRead) -> RenderKey:
    article = read.article
    shown = article.live_revision_id or article.latest_revision_id
    return render_key(kind, article.id, shown, read.version, origin())


def cached_render(kind: str, read: ArticleRead, build: Callable[[], T]) -> T:
    """Anything built from the article alone (never from the reader), kept per version."""
    return renders.get_or_build(_key(kind, read), build)


def full_dump(read: ArticleRead) -> dict[str, Any]:
    """FullArticleSchema's dump of the article (shared: callers copy before changing it)."""
    return renders.get_or_build(_key("dump", read), lambda: FULL.dump(read.article))


def full_json(read: ArticleRead) -> bytes:
    """The 200 body of `GET /api/v1/articles/<slug>`, serialised once."""

    def build() -> bytes:
        return (json.dumps(full_dump(read)) + "\n").encode()

    return renders.get_or_build(_key("json", read), build)


@dataclass(frozen=True)
class FullPage:
    """What the full article page is built from, apart from who is reading it."""

    teaser: dict[str, Any]
    full: dict[str, Any]
    body: Markup
    marked: Any
    review: list[dict[str, Any]] | None


def full_page(read: ArticleRead) -> FullPage:
    def build() -> FullPage:
        teaser = TEASER.dump(read.article)
        full = full_dump(read)
        report = full["verification"]
        body, marked = mark_quotes(full["body_html"], report.get("claims") or [])
        review = None
        if report.get("claims"):
            review = claim_reviews(report, teaser["url"], teaser["published_at"])
        return FullPage(teaser, full, body, marked, review)

    return renders.get_or_build(_key("page", read), build)
