"""scores lists demand states

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "demand_states",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("contact_id", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=64), nullable=False),
        sa.Column("previous", sa.String(length=64), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("contact_id", "state", "at", name="uq_demand_state_at"),
    )
    op.create_index(
        op.f("ix_demand_states_contact_id"), "demand_states", ["contact_id"], unique=False
    )
    op.create_table(
        "list_memberships",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("contact_id", sa.String(length=32), nullable=False),
        sa.Column("list_name", sa.String(length=128), nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("left_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("contact_id", "list_name", "entered_at", name="uq_membership_entry"),
    )
    op.create_index(
        op.f("ix_list_memberships_contact_id"), "list_memberships", ["contact_id"], unique=False
    )
    op.create_index(
        "ix_memberships_list_open", "list_memberships", ["list_name", "left_at"], unique=False
    )
    op.create_table(
        "score_history",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("contact_id", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fit", sa.Float(), nullable=False),
        sa.Column("engagement", sa.Float(), nullable=False),
        sa.Column("engagement_recent", sa.Float(), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column(
            "top_behaviours",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("cause", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("contact_id", "at", name="uq_score_at"),
    )
    op.create_index(
        op.f("ix_score_history_contact_id"), "score_history", ["contact_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_score_history_contact_id"), table_name="score_history")
    op.drop_table("score_history")
    op.drop_index("ix_memberships_list_open", table_name="list_memberships")
    op.drop_index(op.f("ix_list_memberships_contact_id"), table_name="list_memberships")
    op.drop_table("list_memberships")
    op.drop_index(op.f("ix_demand_states_contact_id"), table_name="demand_states")
    op.drop_table("demand_states")
