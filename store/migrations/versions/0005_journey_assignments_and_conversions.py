"""journey assignments and conversions

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "journey_assignments",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("enrollment_id", sa.String(length=128), nullable=False),
        sa.Column("contact_id", sa.String(length=32), nullable=False),
        sa.Column("journey", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("step_id", sa.String(length=64), nullable=False),
        sa.Column("variant", sa.String(length=32), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("enrollment_id", "step_id", name="uq_journey_assignment"),
    )
    op.create_index(
        op.f("ix_journey_assignments_contact_id"),
        "journey_assignments",
        ["contact_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_journey_assignments_journey"), "journey_assignments", ["journey"], unique=False
    )
    op.create_table(
        "journey_conversions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("enrollment_id", sa.String(length=128), nullable=False),
        sa.Column("contact_id", sa.String(length=32), nullable=False),
        sa.Column("journey", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("goal_step", sa.String(length=64), nullable=False),
        sa.Column("converted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("enrollment_id"),
    )
    op.create_index(
        op.f("ix_journey_conversions_contact_id"),
        "journey_conversions",
        ["contact_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_journey_conversions_journey"), "journey_conversions", ["journey"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_journey_conversions_journey"), table_name="journey_conversions")
    op.drop_index(op.f("ix_journey_conversions_contact_id"), table_name="journey_conversions")
    op.drop_table("journey_conversions")
    op.drop_index(op.f("ix_journey_assignments_journey"), table_name="journey_assignments")
    op.drop_index(op.f("ix_journey_assignments_contact_id"), table_name="journey_assignments")
    op.drop_table("journey_assignments")
