"""saved cards (the reader's Stripe Customer), auto top-up settings, auto top-ups

Revision ID: 0014_saved_cards_auto_topup
Revises: 0013_readers_in_control
Create Date: 2026-12-02 06:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import models.base

revision = "0014_saved_cards_auto_topup"
down_revision = "0013_readers_in_control"
branch_labels = None
depends_on = None

AUTO_TOPUP_COLUMNS = (
    "auto_topup_below",
    "auto_topup_amount",
    "auto_topup_monthly_limit",
)


def upgrade() -> None:
    op.create_table(
        "stripe_customers",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.String(length=255), nullable=False),
        sa.Column("payment_method_id", sa.String(length=255), nullable=True),
        sa.Column("card_brand", sa.String(length=20), nullable=True),
        sa.Column("card_last4", sa.String(length=4), nullable=True),
        sa.Column("card_saved_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("pending_setup_intent_id", sa.String(length=255), nullable=True),
        sa.Column("pending_payment_method_id", sa.String(length=255), nullable=True),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_stripe_customers_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_stripe_customers")),
        sa.UniqueConstraint("customer_id", name=op.f("uq_stripe_customers_customer_id")),
        sa.UniqueConstraint(
            "payment_method_id", name=op.f("uq_stripe_customers_payment_method_id")
        ),
    )
    # wallet_settings is referenced by no other table: SQLite's batch copy is harmless.
    with op.batch_alter_table("wallet_settings") as batch_op:
        for name in AUTO_TOPUP_COLUMNS:
            batch_op.add_column(sa.Column(name, sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("auto_topup_currency", sa.String(length=3), nullable=True))
        batch_op.add_column(
            sa.Column("auto_topup_disabled_reason", sa.String(length=100), nullable=True)
        )
        batch_op.create_check_constraint(
            op.f("ck_wallet_settings_auto_topup_amounts"),
            "auto_topup_below >= 0 AND auto_topup_amount > 0 "
            "AND auto_topup_monthly_limit >= auto_topup_amount",
        )
        batch_op.create_check_constraint(
            op.f("ck_wallet_settings_auto_topup_whole"),
            "(auto_topup_currency IS NULL) = (auto_topup_amount IS NULL) "
            "AND (auto_topup_currency IS NULL) = (auto_topup_below IS NULL) "
            "AND (auto_topup_currency IS NULL) = (auto_topup_monthly_limit IS NULL)",
        )
    # Plain ADD COLUMN (topups is referenced by other tables: no batch copy).
    op.add_column(
        "topups",
        sa.Column("auto", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    with op.batch_alter_table("topups") as batch_op:
        batch_op.drop_column("auto")
    with op.batch_alter_table("wallet_settings") as batch_op:
        batch_op.drop_constraint(op.f("ck_wallet_settings_auto_topup_whole"), type_="check")
        batch_op.drop_constraint(op.f("ck_wallet_settings_auto_topup_amounts"), type_="check")
        batch_op.drop_column("auto_topup_disabled_reason")
        batch_op.drop_column("auto_topup_currency")
        for name in reversed(AUTO_TOPUP_COLUMNS):
            batch_op.drop_column(name)
    op.drop_table("stripe_customers")
