"""top-ups remember the price shown for buy-after-top-up, Stripe's refunded amount, and
when Stripe was last asked about them

Revision ID: 0012_topup_money_checks
Revises: 0011_agent_tokens
Create Date: 2026-12-02 04:00:00

Issue 11: `buy_expected_amount` (item 5), `amount_refunded` (item 2: `audit` compares
credited top-ups with the refunds Stripe reported), `checked_at` (item 7: polls ask
Stripe about a top-up at most once every few seconds).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import models.base

revision = "0012_topup_money_checks"
down_revision = "0011_agent_tokens"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("topups") as batch:
        batch.add_column(sa.Column("buy_expected_amount", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("amount_refunded", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("checked_at", models.base.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("topups") as batch:
        batch.drop_column("checked_at")
        batch.drop_column("amount_refunded")
        batch.drop_column("buy_expected_amount")
