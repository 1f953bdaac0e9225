"""rejected_calls: the tracking API's dead-letter table (calls of a batch it refused); an
index of sends by creation time (the journey error-rate window)

Revision ID: ingest_rejected
Revises: crm
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "ingest_rejected"
down_revision = "crm"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "rejected_calls",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("path", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("field", sa.String(length=255), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("message_id", sa.String(length=128), nullable=True),
        sa.Column("call", _JSON, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_rejected_calls_received_at"), "rejected_calls", ["received_at"], unique=False
    )
    op.create_index(op.f("ix_sends_created_at"), "sends", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_sends_created_at"), table_name="sends")
    op.drop_index(op.f("ix_rejected_calls_received_at"), table_name="rejected_calls")
    op.drop_table("rejected_calls")
