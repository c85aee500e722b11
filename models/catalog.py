"""Articles, their body revisions, verifier reports and reading entitlements."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, utcnow

STATUS_DRAFT = "draft"
STATUS_PUBLISHED = "published"

VERDICTS = ("supported", "weak", "unverified", "contradicted")


class Article(Base):
    __tablename__ = "articles"
    __table_args__ = (
        CheckConstraint("status IN ('draft', 'published')", name="status_known"),
        CheckConstraint("price_amount >= 0", name="price_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(120), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    teaser: Mapped[str] = mapped_column(Text)
    price_amount: Mapped[int] = mapped_column(Integer)
    price_currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default=STATUS_DRAFT, index=True)
    published_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # The text readers get, and the newest text the editors wrote. They differ while
    # an edit of a published article waits for its own report.
    live_revision_id: Mapped[int | None] = mapped_column(
        ForeignKey("article_revisions.id", use_alter=True, name="fk_articles_live_revision")
    )
    latest_revision_id: Mapped[int | None] = mapped_column(
        ForeignKey("article_revisions.id", use_alter=True, name="fk_articles_latest_revision")
    )

    live_revision: Mapped[ArticleRevision | None] = relationship(
        foreign_keys=[live_revision_id], post_update=True
    )
    latest_revision: Mapped[ArticleRevision | None] = relationship(
        foreign_keys=[latest_revision_id], post_update=True
    )

    @property
    def is_published(self) -> bool:
        return self.status == STATUS_PUBLISHED

    @property
    def is_free(self) -> bool:
        return self.price_amount == 0


class ArticleRevision(Base):
    """One version of an article's body; never edited once written."""

    __tablename__ = "article_revisions"
    __table_args__ = (UniqueConstraint("article_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    body_markdown: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    body_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    report: Mapped[VerificationReport | None] = relationship(
        back_populates="revision", uselist=False
    )


class VerificationReport(Base):
    """The verifier's findings for exactly one revision's text (matched by its hash)."""

    __tablename__ = "verification_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    revision_id: Mapped[int] = mapped_column(
        ForeignKey("article_revisions.id", ondelete="CASCADE"), unique=True
    )
    body_sha256: Mapped[str] = mapped_column(String(64))
    verifier: Mapped[str] = mapped_column(String(200))
    checked_at: Mapped[datetime]
    claims: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    supported_count: Mapped[int] = mapped_column(Integer, default=0)
    weak_count: Mapped[int] = mapped_column(Integer, default=0)
    unverified_count: Mapped[int] = mapped_column(Integer, default=0)
    contradicted_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    revision: Mapped[ArticleRevision] = relationship(back_populates="report")

    @property
    def claim_count(self) -> int:
        return (
            self.supported_count + self.weak_count + self.unverified_count + self.contradicted_count
        )


class Entitlement(Base):
    """The right of one reader to read one article's full text."""

    __tablename__ = "entitlements"
    __table_args__ = (
        UniqueConstraint("user_id", "article_id"),
        CheckConstraint("source IN ('purchase', 'grant')", name="source_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), index=True
    )
    source: Mapped[str] = mapped_column(String(16))
    purchase_id: Mapped[int | None] = mapped_column(
        ForeignKey("purchases.id", ondelete="CASCADE"), default=None
    )
    note: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
