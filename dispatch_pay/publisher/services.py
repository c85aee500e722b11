"""Creating, editing, publishing and unpublishing articles."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from dispatch_pay.catalog.markdown import normalise_text, render_markdown, text_sha256
from dispatch_pay.errors import DomainError
from dispatch_pay.verification.manifests import (
    lock_article,
    record_publication,
    record_unpublished,
)
from dispatch_pay.verification.services import publishable_revision
from models import (
    STATUS_DRAFT,
    STATUS_PUBLISHED,
    Article,
    ArticleRevision,
    PriceChange,
    PublicationSettings,
    User,
    db,
    utcnow,
)
from models.publisher import SETTINGS_ROW_ID


def slugify(title: str) -> str:
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")
    return slug[:100].strip("-") or "dispatch"


def _slug_exists(slug: str) -> bool:
    return db.session.scalar(select(Article.id).where(Article.slug == slug)) is not None


def _free_slug(base: str) -> str:
    slug, n = base, 2
    while _slug_exists(slug):
        slug, n = f"{base}-{n}", n + 1
    return slug


def _slug_taken(slug: str) -> DomainError:
    return DomainError(
        "slug_taken",
        f"The slug '{slug}' is already used.",
        status=409,
        fields={"slug": ["Already used by another article."]},
    )


def _add_revision(article: Article, body: str, author: User | None) -> ArticleRevision:
    number = (
        db.session.scalar(
            select(func.max(ArticleRevision.number)).where(ArticleRevision.article_id == article.id)
        )
        or 0
    ) + 1
    text = normalise_text(body)
    revision = ArticleRevision(
        article_id=article.id,
        number=number,
        body_markdown=text,
        body_html=render_markdown(text),
        body_sha256=text_sha256(text),
        author_id=author.id if author else None,
    )
    db.session.add(revision)
    db.session.flush()
    article.latest_revision = revision
    return revision


def create_article(author: User | None, data: dict[str, Any]) -> Article:
    price = data.get("price") or default_price()
    if "slug" in data:
        if _slug_exists(data["slug"]):
            raise _slug_taken(data["slug"])
        slug = data["slug"]
    else:
        slug = _free_slug(slugify(data["title"]))
    article = Article(
        slug=slug,
        title=data["title"].strip(),
        teaser=data["teaser"].strip(),
        price_amount=price["amount"],
        price_currency=price["currency"],
        status=STATUS_DRAFT,
        author_id=author.id if author else None,
        gift_reads=data.get("gift_reads"),
    )
    try:
        with db.session.begin_nested():
            db.session.add(article)
    except IntegrityError as exc:
        raise _slug_taken(slug) from exc
    _add_revision(article, data["body"], author)
    db.session.flush()
    return article


def update_article(article: Article, data: dict[str, Any], editor: User | None) -> Article:
    """Apply a partial edit. A new body becomes a new revision; the live text stays live."""
    if "slug" in data and data["slug"] != article.slug:
        if article.live_revision_id is not None:
            raise DomainError(
                "slug_locked",
                "A published article keeps its slug; links to it must not break.",
                status=409,
                fields={"slug": ["Cannot change once published."]},
            )
        if _slug_exists(data["slug"]):
            raise _slug_taken(data["slug"])
        article.slug = data["slug"]
    if "title" in data:
        article.title = data["title"].strip()
    if "teaser" in data:
        article.teaser = data["teaser"].strip()
    if "price" in data:
        set_price(article, data["price"]["amount"], data["price"]["currency"], editor)
    if "gift_reads" in data:
        article.gift_reads = data["gift_reads"]
    if "body" in data:
        digest = text_sha256(data["body"])
        latest = article.latest_revision
        if latest is None or latest.body_sha256 != digest:
            # Back to a text this article already had (an edit undone): that revision,
            # and the report bound to its hash, become current again.
            earlier = _revision_with_hash(article, digest)
            if earlier is not None:
                article.latest_revision = earlier
            else:
                _add_revision(article, data["body"], editor)
    article.updated_at = utcnow()
    db.session.flush()
    return article


def _revision_with_hash(article: Article, digest: str) -> ArticleRevision | None:
    return db.session.scalar(
        select(ArticleRevision)
        .where(ArticleRevision.article_id == article.id, ArticleRevision.body_sha256 == digest)
        .order_by(ArticleRevision.number.desc())
        .limit(1)
    )


def set_price(article: Article, amount: int, currency: str, changed_by: User | None) -> bool:
    """Change the price for future purchases and record who changed it from what.

    The one place a price changes (API, dashboard, bulk). Past purchases keep the
    amount they stored when they were made; nothing here touches them.
    Returns False when the price was already this one (nothing recorded).
    """
    if article.price_amount == amount and article.price_currency == currency:
        return False
    db.session.add(
        PriceChange(
            article_id=article.id,
            changed_by_id=changed_by.id if changed_by else None,
            old_amount=article.price_amount,
            old_currency=article.price_currency,
            new_amount=amount,
            new_currency=currency,
        )
    )
    article.price_amount = amount
    article.price_currency = currency
    article.updated_at = utcnow()
    db.session.flush()
    return True


def set_prices(
    slugs: list[str], amount: int, currency: str, changed_by: User | None
) -> list[Article]:
    """Give several articles one price; all or none (an unknown slug is a 404)."""
    articles = list(db.session.scalars(select(Article).where(Article.slug.in_(set(slugs)))))
    if len(articles) != len(set(slugs)):
        raise DomainError("not_found", "No such article.", status=404)
    for article in articles:
        set_price(article, amount, currency, changed_by)
    return articles


def price_history(article: Article) -> list[tuple[PriceChange, User | None]]:
    """The article's price changes, newest first, with who made each."""
    rows = db.session.execute(
        select(PriceChange, User)
        .outerjoin(User, User.id == PriceChange.changed_by_id)
        .where(PriceChange.article_id == article.id)
        .order_by(PriceChange.id.desc())
    ).all()
    return [(change, user) for change, user in rows]


def _settings() -> PublicationSettings | None:
    return db.session.get(PublicationSettings, SETTINGS_ROW_ID)


def default_price() -> dict[str, Any]:
    """The price new articles get: the publisher's setting, else the configured default."""
    settings = _settings()
    if settings is None:
        configured: dict[str, Any] = current_app.config["DEFAULT_ARTICLE_PRICE"]
        return dict(configured)
    return {"amount": settings.default_price_amount, "currency": settings.default_price_currency}


def _settings_for_update() -> PublicationSettings:
    settings = _settings()
    if settings is None:
        price = default_price()
        try:
            with db.session.begin_nested():
                settings = PublicationSettings(
                    id=SETTINGS_ROW_ID,
                    default_price_amount=price["amount"],
                    default_price_currency=price["currency"],
                )
                db.session.add(settings)
        except IntegrityError:  # another editor created the row first
            settings = db.session.get(PublicationSettings, SETTINGS_ROW_ID, populate_existing=True)
            assert settings is not None
    return settings


def set_gift_reads(reads: int, changed_by: User | None) -> PublicationSettings:
    """How many people one gift link lets read; links already given keep their number."""
    settings = _settings_for_update()
    settings.gift_reads = reads
    settings.updated_at = utcnow()
    settings.updated_by_id = changed_by.id if changed_by else None
    db.session.flush()
    return settings


def set_default_price(amount: int, currency: str, changed_by: User | None) -> None:
    """Set the price new articles get; existing articles keep theirs."""
    settings = _settings()
    if settings is None:
        try:
            with db.session.begin_nested():
                settings = PublicationSettings(
                    id=SETTINGS_ROW_ID, default_price_amount=amount, default_price_currency=currency
                )
                db.session.add(settings)
        except IntegrityError:  # another editor created the row first; ours wins below
            settings = db.session.get(PublicationSettings, SETTINGS_ROW_ID, populate_existing=True)
            assert settings is not None
    settings.default_price_amount = amount
    settings.default_price_currency = currency
    settings.updated_at = utcnow()
    settings.updated_by_id = changed_by.id if changed_by else None
    db.session.flush()


def publish_blocker(article: Article) -> DomainError | None:
    """Why the newest text may not be published now (the publish gate's own refusal)."""
    try:
        publishable_revision(article)
    except DomainError as exc:
        return exc
    return None


def publish(article: Article) -> Article:
    """Put the newest checked text on sale, and sign what changed into its manifest chain."""
    lock_article(article)  # a report attached at the same moment is seen, or comes after
    revision = publishable_revision(article)
    was_status, was_live = article.status, article.live_revision_id
    article.live_revision = revision
    article.status = STATUS_PUBLISHED
    if article.published_at is None:
        article.published_at = utcnow()
    article.updated_at = utcnow()
    db.session.flush()
    record_publication(article, was_status, was_live)
    return article


def unpublish(article: Article) -> Article:
    lock_article(article)
    was_status = article.status
    article.status = STATUS_DRAFT
    article.updated_at = utcnow()
    db.session.flush()
    record_unpublished(article, was_status)
    return article


def list_articles() -> list[Article]:
    """Every article, newest first, with the revisions and reports its listing shows."""
    return list(
        db.session.scalars(
            select(Article)
            .order_by(Article.created_at.desc(), Article.id.desc())
            .options(
                selectinload(Article.latest_revision).selectinload(ArticleRevision.report),
                selectinload(Article.live_revision),
            )
        )
    )


def revisions(article: Article) -> list[ArticleRevision]:
    return list(
        db.session.scalars(
            select(ArticleRevision)
            .where(ArticleRevision.article_id == article.id)
            .order_by(ArticleRevision.number.desc())
        )
    )
