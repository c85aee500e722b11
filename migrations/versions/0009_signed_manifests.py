"""signed verification manifests, their signing keys, and withdrawn articles

Revision ID: 0009_signed_manifests
Revises: 0008_status_enums
Create Date: 2026-12-02 03:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import models.base

revision = "0009_signed_manifests"
down_revision = "0008_status_enums"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signing_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("private_jwk", sa.Text(), nullable=False),
        sa.Column("public_jwk", sa.JSON(), nullable=False),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signing_keys")),
        sa.UniqueConstraint("kid", name=op.f("uq_signing_keys_kid")),
    )
    op.create_table(
        "manifests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("revision_id", sa.Integer(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("jws", sa.Text(), nullable=False),
        sa.Column("jws_sha256", sa.String(length=64), nullable=False),
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("change", sa.String(length=300), nullable=False),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["article_id"], ["articles.id"], name=op.f("fk_manifests_article_id_articles"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["revision_id"], ["article_revisions.id"],
            name=op.f("fk_manifests_revision_id_article_revisions"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manifests")),
        sa.UniqueConstraint("article_id", "sequence", name=op.f("uq_manifests_article_id")),
    )
    with op.batch_alter_table("articles", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_articles_status_known"), type_="check")
        batch_op.create_check_constraint(
            "status_known", "status IN ('draft', 'published', 'withdrawn')"
        )


def downgrade() -> None:
    op.execute("UPDATE articles SET status = 'draft' WHERE status = 'withdrawn'")
    with op.batch_alter_table("articles", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_articles_status_known"), type_="check")
        batch_op.create_check_constraint("status_known", "status IN ('draft', 'published')")
    op.drop_table("manifests")
    op.drop_table("signing_keys")
