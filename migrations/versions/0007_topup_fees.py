"""top-ups record Stripe's fee with its currency and breakdown

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 14:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import models.base

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("topups", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fee_currency", sa.String(length=3), nullable=True))
        batch_op.add_column(sa.Column("fee_details", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("fee_recorded_at", models.base.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("topups", schema=None) as batch_op:
        batch_op.drop_column("fee_recorded_at")
        batch_op.drop_column("fee_details")
        batch_op.drop_column("fee_currency")
