"""handoff sla records, routing state and routing decisions

Revision ID: 0006
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0004"
branch_labels = None
depends_on = None


def _id() -> sa.Column[int]:
    return sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        autoincrement=True,
        nullable=False,
    )


def _json(name: str) -> sa.Column[object]:
    return sa.Column(
        name,
        sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "routing_decisions",
        _id(),
        sa.Column("handoff_id", sa.String(length=128), nullable=False),
        sa.Column("step", sa.String(length=16), nullable=False),
        sa.Column("contact_id", sa.String(length=32), nullable=False),
        sa.Column("rep_id", sa.String(length=128), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("team", sa.String(length=128), nullable=True),
        sa.Column("config_version", sa.String(length=64), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        _json("trace"),
        _json("decision"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("handoff_id", "step", name="uq_routing_decision_step"),
    )
    op.create_index(
        op.f("ix_routing_decisions_contact_id"), "routing_decisions", ["contact_id"], unique=False
    )
    op.create_index(
        op.f("ix_routing_decisions_rep_id"), "routing_decisions", ["rep_id"], unique=False
    )
    op.create_table(
        "routing_state",
        sa.Column("name", sa.String(length=64), nullable=False),
        _json("cursors"),
        _json("open_leads"),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "sla_records",
        _id(),
        sa.Column("handoff_id", sa.String(length=128), nullable=False),
        sa.Column("contact_id", sa.String(length=32), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("policy", sa.String(length=128), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("mql_date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("owner", sa.String(length=128), nullable=True),
        sa.Column("team", sa.String(length=128), nullable=True),
        sa.Column("first_contact_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("responded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sla_met", sa.Boolean(), nullable=True),
        sa.Column("reminders", sa.Integer(), nullable=False),
        sa.Column("breaches", sa.Integer(), nullable=False),
        sa.Column("escalations", sa.Integer(), nullable=False),
        sa.Column("reassignments", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("outcome_reason", sa.Text(), nullable=True),
        _json("turns"),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("handoff_id"),
    )
    op.create_index(op.f("ix_sla_records_contact_id"), "sla_records", ["contact_id"], unique=False)
    op.create_index(op.f("ix_sla_records_mql_date"), "sla_records", ["mql_date"], unique=False)
    op.create_index(op.f("ix_sla_records_owner"), "sla_records", ["owner"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_sla_records_owner"), table_name="sla_records")
    op.drop_index(op.f("ix_sla_records_mql_date"), table_name="sla_records")
    op.drop_index(op.f("ix_sla_records_contact_id"), table_name="sla_records")
    op.drop_table("sla_records")
    op.drop_table("routing_state")
    op.drop_index(op.f("ix_routing_decisions_rep_id"), table_name="routing_decisions")
    op.drop_index(op.f("ix_routing_decisions_contact_id"), table_name="routing_decisions")
    op.drop_table("routing_decisions")
