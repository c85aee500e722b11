"""Finding articles for readers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.orm import joinedload, selectinload

from dispatch_pay.catalog.gate import Access, Holdings, holdings_columns, read_access
from dispatch_pay.catalog.offers import payment_required_error
from dispatch_pay.errors import not_found
from models import (
    CATALOG_STATE_ID,
    STATUS_PUBLISHED,
    Article,
    ArticleRevision,
    CatalogState,
    Entitlement,
    GiftRead,
    User,
    db,
)


def _with_live_report() -> list[Any]:
    return [
        selectinload(Article.live_revision)
        .load_only(ArticleRevision.id, ArticleRevision.article_id)
        .selectinload(ArticleRevision.report)
    ]


def list_published(page: int = 1, per_page: int = 20) -> tuple[list[Article], bool]:
    """A page of published articles, newest first, and whether another page follows."""
    rows = list(
        db.session.scalars(
            select(Article)
            .where(Article.status == STATUS_PUBLISHED)
            .order_by(Article.published_at.desc(), Article.id.desc())
            .offset((page - 1) * per_page)
            .limit(per_page + 1)
            .options(*_with_live_report())
        )
    )
    return rows[:per_page], len(rows) > per_page


def all_published() -> list[Article]:
    return list(
        db.session.scalars(
            select(Article)
            .where(Article.status == STATUS_PUBLISHED)
            .order_by(Article.published_at.desc(), Article.id.desc())
        )
    )


def search_published(
    query: str, max_price: tuple[int, str] | None = None, limit: int = 10
) -> list[Article]:
    """Published articles whose title or teaser holds `query`, at most `max_price` (and in
    its currency), newest first."""
    pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    statement = select(Article).where(Article.status == STATUS_PUBLISHED)
    if query.strip():
        statement = statement.where(
            or_(
                Article.title.ilike(pattern, escape="\\"),
                Article.teaser.ilike(pattern, escape="\\"),
            )
        )
    if max_price is not None:
        amount, currency = max_price
        statement = statement.where(
            Article.price_amount <= amount, Article.price_currency == currency
        )
    return list(
        db.session.scalars(
            statement.order_by(Article.published_at.desc(), Article.id.desc())
            .limit(limit)
            .options(*_with_live_report())
        )
    )


def find_article(slug: str) -> Article:
    # The live text and its report come in the same query: every reader view needs them.
    article = db.session.scalar(
        select(Article)
        .where(Article.slug == slug)
        .options(joinedload(Article.live_revision).joinedload(ArticleRevision.report))
    )
    if article is None:
        raise not_found("article")
    return article


@dataclass(frozen=True)
class ArticleRead:
    """An article row, what the caller holds of it and the catalog version, read together."""

    article: Article
    holdings: Holdings | None
    version: int


_VERSION = select(CatalogState.version).where(CatalogState.id == CATALOG_STATE_ID).scalar_subquery()


# Built once: constructing a statement costs more than running it on the hot path.
_ANONYMOUS_READ = select(Article, _VERSION.label("version")).where(
    Article.slug == bindparam("slug")
)
_CALLER_READ = select(
    Article, _VERSION.label("version"), *holdings_columns(bindparam("caller_id"), Article.id)
).where(Article.slug == bindparam("slug"))


def article_with_holdings(user: User | None, slug: str) -> ArticleRead:
    """One statement: the article, what the caller holds of it, the catalog version.

    The revision and report are not loaded here: a reader view that finds its rendering
    in `render_cache` (keyed by the version read in this same statement) needs neither.
    """
    if user is None:
        row = db.session.execute(_ANONYMOUS_READ, {"slug": slug}).first()
    else:
        row = db.session.execute(_CALLER_READ, {"slug": slug, "caller_id": user.id}).first()
    if row is None:
        raise not_found("article")
    holdings = None
    if user is not None:
        holdings = Holdings(bool(row.entitled), bool(row.kept_gift), bool(row.gave_gifts))
    return ArticleRead(row[0], holdings, int(row.version or 0))


def readable_article(user: User | None, slug: str) -> ArticleRead:
    """The article in full through the read gate: 404 if hidden, a 402 offer if not owned."""
    read = article_with_holdings(user, slug)
    access = read_access(user, read.article, holdings=read.holdings)
    if access is Access.HIDDEN:
        raise not_found("article")
    if access is Access.TEASER:
        raise payment_required_error(read.article)
    return read


_ARTICLE_BY_SLUG = select(Article).where(Article.slug == bindparam("slug"))


def article_to_sell(slug: str) -> Article:
    """The article row alone (a purchase needs neither its text nor its report)."""
    article = db.session.scalar(_ARTICLE_BY_SLUG, {"slug": slug})
    if article is None:
        raise not_found("article")
    return article


def article_for_reader(user: User | None, slug: str) -> Article:
    """The article in full through the read gate: 404 if hidden, a 402 offer if not owned."""
    article = find_article(slug)
    access = read_access(user, article)
    if access is Access.HIDDEN:
        raise not_found("article")
    if access is Access.TEASER:
        raise payment_required_error(article)
    return article


@dataclass(frozen=True)
class LibraryItem:
    article: Article
    acquired_at: datetime
    source: str


def library(user: User) -> list[LibraryItem]:
    rows = db.session.execute(
        select(Article, Entitlement)
        .join(Entitlement, Entitlement.article_id == Article.id)
        .where(Entitlement.user_id == user.id, Article.live_revision_id.is_not(None))
        .order_by(Entitlement.created_at.desc(), Entitlement.id.desc())
        .options(*_with_live_report())
    ).all()
    items = [
        LibraryItem(article=article, acquired_at=ent.created_at, source=ent.source)
        for article, ent in rows
    ]
    return _with_kept_gifts(user, items)


def _with_kept_gifts(user: User, items: list[LibraryItem]) -> list[LibraryItem]:
    """Gifts a logged-in reader opened stay in their library while the gate lets them read."""
    owned = {item.article.id for item in items}
    reads = db.session.execute(
        select(Article, func.min(GiftRead.created_at))
        .join(GiftRead, GiftRead.article_id == Article.id)
        .where(GiftRead.reader_id == user.id, Article.id.not_in(owned))
        .group_by(Article.id)
        .options(*_with_live_report())
    ).all()
    kept = [
        LibraryItem(article=article, acquired_at=at, source="gift")
        for article, at in reads
        if read_access(user, article) is Access.FULL
    ]
    if not kept:
        return items
    return sorted(items + kept, key=lambda i: i.acquired_at, reverse=True)


def grant_entitlement(
    user: User, article: Article, source: str = "grant", note: str | None = None
) -> Entitlement:
    """Let a reader read an article in full (idempotent)."""
    existing = db.session.scalar(
        select(Entitlement).where(
            Entitlement.user_id == user.id, Entitlement.article_id == article.id
        )
    )
    if existing is not None:
        return existing
    entitlement = Entitlement(user_id=user.id, article_id=article.id, source=source, note=note)
    db.session.add(entitlement)
    db.session.flush()
    return entitlement
