"""top-ups carry a random reference that their PaymentIntents repeat in metadata

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 13:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("topups", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reference", sa.String(length=32), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_topups_reference"), ["reference"])


def downgrade() -> None:
    with op.batch_alter_table("topups", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_topups_reference"), type_="unique")
        batch_op.drop_column("reference")
