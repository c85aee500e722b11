"""gift links, gift reads, private feeds, wallet settings (daily cap); gift reads per site and article

Revision ID: 0013_readers_in_control
Revises: 0012_topup_money_checks
Create Date: 2026-12-02 04:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import models.base

revision = "0013_readers_in_control"
down_revision = "0012_topup_money_checks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy of `articles`, which other tables reference); the
    # values are checked by the input schemas (0..100).
    op.add_column("articles", sa.Column("gift_reads", sa.Integer(), nullable=True))
    op.add_column(
        "publication_settings",
        sa.Column("gift_reads", sa.Integer(), nullable=False, server_default="3"),
    )
    op.create_table(
        "gift_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("giver_id", sa.Integer(), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("reads_allowed", sa.Integer(), nullable=False),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "reads_allowed >= 0", name=op.f("ck_gift_links_reads_allowed_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["article_id"],
            ["articles.id"],
            name=op.f("fk_gift_links_article_id_articles"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["giver_id"], ["users.id"], name=op.f("fk_gift_links_giver_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gift_links")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_gift_links_token_hash")),
    )
    op.create_index(op.f("ix_gift_links_article_id"), "gift_links", ["article_id"])
    op.create_index(op.f("ix_gift_links_giver_id"), "gift_links", ["giver_id"])
    op.create_table(
        "gift_reads",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("gift_id", sa.Integer(), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("visitor", sa.String(length=80), nullable=False),
        sa.Column("reader_id", sa.Integer(), nullable=True),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["gift_id"],
            ["gift_links.id"],
            name=op.f("fk_gift_reads_gift_id_gift_links"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["article_id"],
            ["articles.id"],
            name=op.f("fk_gift_reads_article_id_articles"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["reader_id"], ["users.id"], name=op.f("fk_gift_reads_reader_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gift_reads")),
        sa.UniqueConstraint("gift_id", "visitor", name=op.f("uq_gift_reads_gift_id")),
    )
    op.create_index(op.f("ix_gift_reads_article_id"), "gift_reads", ["article_id"])
    op.create_table(
        "private_feeds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_private_feeds_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_private_feeds")),
        sa.UniqueConstraint("user_id", name=op.f("uq_private_feeds_user_id")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_private_feeds_secret_hash")),
    )
    op.create_table(
        "wallet_settings",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("daily_cap_amount", sa.Integer(), nullable=True),
        sa.Column("daily_cap_currency", sa.String(length=3), nullable=True),
        sa.Column("updated_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "daily_cap_amount >= 0", name=op.f("ck_wallet_settings_daily_cap_not_negative")
        ),
        sa.CheckConstraint(
            "(daily_cap_amount IS NULL) = (daily_cap_currency IS NULL)",
            name=op.f("ck_wallet_settings_daily_cap_whole"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_wallet_settings_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_wallet_settings")),
    )


def downgrade() -> None:
    op.drop_table("wallet_settings")
    op.drop_table("private_feeds")
    op.drop_index(op.f("ix_gift_reads_article_id"), table_name="gift_reads")
    op.drop_table("gift_reads")
    op.drop_index(op.f("ix_gift_links_giver_id"), table_name="gift_links")
    op.drop_index(op.f("ix_gift_links_article_id"), table_name="gift_links")
    op.drop_table("gift_links")
    with op.batch_alter_table("publication_settings") as batch_op:
        batch_op.drop_column("gift_reads")
    with op.batch_alter_table("articles") as batch_op:
        batch_op.drop_column("gift_reads")
