"""agent tokens: a token kind with a per-article and daily budget; purchases name the agent

Revision ID: 0011_agent_tokens
Revises: 0010_accounts_mail_sessions
Create Date: 2026-12-02 03:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_agent_tokens"
down_revision = "0010_accounts_mail_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        # Existing tokens, and rows written by bulk loaders, are readers' own tokens.
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="reader")
        )
        batch_op.add_column(sa.Column("max_price_amount", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("daily_limit_amount", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("budget_currency", sa.String(length=3), nullable=True))
        batch_op.create_check_constraint(
            op.f("ck_api_tokens_kind_known"), "kind IN ('reader', 'agent')"
        )
        batch_op.create_check_constraint(
            op.f("ck_api_tokens_agent_budget_set"),
            "kind = 'reader' OR (max_price_amount >= 0 AND daily_limit_amount >= 0"
            " AND budget_currency IS NOT NULL)",
        )
    with op.batch_alter_table("purchases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("agent_token_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            op.f("fk_purchases_agent_token_id_api_tokens"),
            "api_tokens",
            ["agent_token_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_index(
            "ix_purchases_agent_token_id_created_at", ["agent_token_id", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("purchases", schema=None) as batch_op:
        batch_op.drop_index("ix_purchases_agent_token_id_created_at")
        batch_op.drop_constraint(op.f("fk_purchases_agent_token_id_api_tokens"), type_="foreignkey")
        batch_op.drop_column("agent_token_id")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_api_tokens_agent_budget_set"), type_="check")
        batch_op.drop_constraint(op.f("ck_api_tokens_kind_known"), type_="check")
        batch_op.drop_column("budget_currency")
        batch_op.drop_column("daily_limit_amount")
        batch_op.drop_column("max_price_amount")
        batch_op.drop_column("kind")
