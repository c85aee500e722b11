"""audit acknowledgements: an operator's append-only review of an event audit reported

Revision ID: 0015_audit_acks
Revises: 0014_saved_cards_auto_topup
Create Date: 2026-12-02 06:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import models.base

revision = "0015_audit_acks"
down_revision = "0014_saved_cards_auto_topup"
branch_labels = None
depends_on = None

MESSAGE = "audit acknowledgements are append-only"


def upgrade() -> None:
    op.create_table(
        "audit_acks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("webhook_event_id", sa.Integer(), nullable=False),
        sa.Column("acknowledged_by", sa.String(length=255), nullable=False),
        sa.Column("note", sa.String(length=2000), nullable=False),
        sa.Column("acknowledged_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "length(acknowledged_by) > 0", name=op.f("ck_audit_acks_acknowledged_by_not_empty")
        ),
        sa.CheckConstraint("length(note) > 0", name=op.f("ck_audit_acks_note_not_empty")),
        sa.ForeignKeyConstraint(
            ["webhook_event_id"],
            ["webhook_events.id"],
            name=op.f("fk_audit_acks_webhook_event_id_webhook_events"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_acks")),
        sa.UniqueConstraint("webhook_event_id", name=op.f("uq_audit_acks_webhook_event_id")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""
            CREATE FUNCTION audit_acks_append_only() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION '{MESSAGE}';
            END;
            $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            """
            CREATE TRIGGER audit_acks_append_only
            BEFORE UPDATE OR DELETE ON audit_acks
            FOR EACH ROW EXECUTE FUNCTION audit_acks_append_only()
            """
        )
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"""
                CREATE TRIGGER audit_acks_no_{action.lower()}
                BEFORE {action} ON audit_acks
                BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END
                """
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_acks_append_only ON audit_acks")
        op.execute("DROP FUNCTION audit_acks_append_only()")
    op.drop_table("audit_acks")  # SQLite drops the table's triggers with it
