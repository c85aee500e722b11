"""statuses of top-ups, purchases' refunders and disputes are CHECKed enums

Revision ID: 0008_status_enums
Revises: 0007
Create Date: 2026-12-02 03:30:00

The values are those of the Python enums in models/wallet.py (TopUpStatus, RefundedBy,
DisputeStatus, DisputeOutcome); ledger kinds and purchase statuses had their CHECKs
already. Rows written before are already within these values: the code never wrote
others (a status Stripe adds later is not stored).
"""

from __future__ import annotations

from alembic import op

revision = "0008_status_enums"
down_revision = "0007"
branch_labels = None
depends_on = None

TOPUP_STATUSES = (
    "'requires_payment_method', 'requires_confirmation', 'requires_action', 'processing', "
    "'requires_capture', 'succeeded', 'failed', 'canceled'"
)
CHECKS = {
    "topups": [("status_known", f"status IN ({TOPUP_STATUSES})")],
    "purchases": [("refunded_by_known", "refunded_by IN ('reader', 'publisher')")],
    "disputes": [
        ("status_known", "status IN ('open', 'closed')"),
        ("outcome_known", "outcome IN ('won', 'lost')"),
    ],
}


def upgrade() -> None:
    for table, checks in CHECKS.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name, condition in checks:
                batch_op.create_check_constraint(op.f(f"ck_{table}_{name}"), condition)


def downgrade() -> None:
    for table, checks in CHECKS.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name, _condition in checks:
                batch_op.drop_constraint(op.f(f"ck_{table}_{name}"), type_="check")
