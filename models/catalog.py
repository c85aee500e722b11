"""Articles, their body revisions, verifier reports and reading entitlements."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, mapped_column, relationship

from models.base import Base, utcnow

STATUS_DRAFT = "draft"
STATUS_PUBLISHED = "published"
# Taken off sale because its live report now contradicts the text; its buyers keep it.
STATUS_WITHDRAWN = "withdrawn"

VERDICTS = ("supported", "weak", "unverified", "contradicted")


class Article(Base):
    __tablename__ = "articles"
    __table_args__ = (
        CheckConstraint("status IN ('draft', 'published', 'withdrawn')", name="status_known"),
        CheckConstraint("price_amount >= 0", name="price_not_negative"),
        # The listing: published, newest first (status, published_at DESC, id DESC).
        Index("ix_articles_status_published_at_id", "status", "published_at", "id"),
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
    # How many people one gift link of this article lets read it; None: the site's number.
    gift_reads: Mapped[int | None] = mapped_column(Integer, default=None)
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


class SigningKey(Base):
    """An Ed25519 key that signs verification manifests; the newest one signs.

    The private half never leaves the database; the public halves of all keys, old
    ones included, are published so that every manifest ever signed still verifies.
    """

    __tablename__ = "signing_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    kid: Mapped[str] = mapped_column(String(64), unique=True)
    private_jwk: Mapped[str] = mapped_column(Text)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Manifest(Base):
    """One signed link of an article's append-only chain of published states."""

    __tablename__ = "manifests"
    __table_args__ = (UniqueConstraint("article_id", "sequence"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"))
    sequence: Mapped[int] = mapped_column(Integer)
    revision_id: Mapped[int] = mapped_column(ForeignKey("article_revisions.id", ondelete="CASCADE"))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    jws: Mapped[str] = mapped_column(Text)
    jws_sha256: Mapped[str] = mapped_column(String(64))
    kid: Mapped[str] = mapped_column(String(64))
    # What changed, in words readers see in the article's corrections.
    change: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


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


class CatalogState(Base):
    """One row whose version moves with every change anonymous readers could see.

    Per-process caches of anonymous pages are keyed by this version, so a change
    committed through any process invalidates every cached page in every process.
    """

    __tablename__ = "catalog_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=1)


CATALOG_STATE_ID = 1
# Writes to these change teasers, prices, listings, feeds, verification summaries,
# manifests or the published keys.
CATALOG_TYPES = (Article, ArticleRevision, VerificationReport, Manifest, SigningKey)
_BUMP_VERSION = text("UPDATE catalog_state SET version = version + 1 WHERE id = 1")


def bump_catalog_version(session: Session) -> None:
    """Move the catalog version in the caller's transaction (for writers that bypass the ORM)."""
    session.connection().execute(_BUMP_VERSION)


def _writes_catalog(session: Session) -> bool:
    if any(isinstance(obj, CATALOG_TYPES) for obj in session.new):
        return True
    if any(isinstance(obj, CATALOG_TYPES) for obj in session.deleted):
        return True
    return any(
        isinstance(obj, CATALOG_TYPES) and session.is_modified(obj, include_collections=False)
        for obj in session.dirty
    )


# Listening on the Session class (not on a call in each service) means no writer can
# forget it, including ones added later: any flush that writes an article, a revision
# or a report bumps the version in the same transaction, so the bump commits (or rolls
# back) together with the change it announces.
@event.listens_for(Session, "before_flush")
def _bump_on_flush(session: Session, _context: Any, _instances: Any) -> None:
    if _writes_catalog(session):
        bump_catalog_version(session)


@event.listens_for(Session, "do_orm_execute")
def _bump_on_bulk_write(state: ORMExecuteState) -> None:
    """ORM-enabled UPDATE/DELETE statements skip the flush; catch them here."""
    if not (state.is_update or state.is_delete):
        return
    mapper = state.bind_mapper
    if mapper is not None and issubclass(mapper.class_, CATALOG_TYPES):
        bump_catalog_version(state.session)
