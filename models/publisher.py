"""The publication's own settings and the history of article prices."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow

SETTINGS_ROW_ID = 1


class PublicationSettings(Base):
    """One row (id 1) of publication-wide settings the publisher edits on the dashboard."""

    __tablename__ = "publication_settings"
    __table_args__ = (
        CheckConstraint("id = 1", name="single_row"),
        CheckConstraint("default_price_amount >= 0", name="default_price_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    default_price_amount: Mapped[int] = mapped_column(Integer)
    default_price_currency: Mapped[str] = mapped_column(String(3))
    # How many people one gift link lets read an article (an article may set its own).
    gift_reads: Mapped[int] = mapped_column(Integer, default=3, server_default="3")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )


class PriceChange(Base):
    """One change of an article's price: who, when, from what to what. Never edited."""

    __tablename__ = "price_changes"
    __table_args__ = (Index("ix_price_changes_article_id_id", "article_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"))
    changed_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    old_amount: Mapped[int] = mapped_column(Integer)
    old_currency: Mapped[str] = mapped_column(String(3))
    new_amount: Mapped[int] = mapped_column(Integer)
    new_currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
