"""publication settings (default price) and the price history of articles

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 13:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import models.base

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "publication_settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("default_price_amount", sa.Integer(), nullable=False),
        sa.Column("default_price_currency", sa.String(length=3), nullable=False),
        sa.Column("updated_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("id = 1", name=op.f("ck_publication_settings_single_row")),
        sa.CheckConstraint(
            "default_price_amount >= 0",
            name=op.f("ck_publication_settings_default_price_not_negative"),
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["users.id"],
            name=op.f("fk_publication_settings_updated_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_publication_settings")),
    )
    op.create_table(
        "price_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("changed_by_id", sa.Integer(), nullable=True),
        sa.Column("old_amount", sa.Integer(), nullable=False),
        sa.Column("old_currency", sa.String(length=3), nullable=False),
        sa.Column("new_amount", sa.Integer(), nullable=False),
        sa.Column("new_currency", sa.String(length=3), nullable=False),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["article_id"],
            ["articles.id"],
            name=op.f("fk_price_changes_article_id_articles"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["changed_by_id"],
            ["users.id"],
            name=op.f("fk_price_changes_changed_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_price_changes")),
    )
    op.create_index(
        "ix_price_changes_article_id_id", "price_changes", ["article_id", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_price_changes_article_id_id", table_name="price_changes")
    op.drop_table("price_changes")
    op.drop_table("publication_settings")
