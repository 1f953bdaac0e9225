"""privacy: erasure records, refused ids of erased people, suppressed addresses, the
history of consent per purpose, event retention (daily counts, runs)

Revision ID: privacy
Revises: ingest_rejected
Create Date: 2026-12-05

The erasure tables hold hashes and counts only: they keep the promises an erasure makes
(docs/privacy.md). ``consent_changes`` names its contact, so an erasure removes it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "privacy"
down_revision = "ingest_rejected"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_AT = sa.DateTime(timezone=True)
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "erasures",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("subject_hash", sa.String(length=64), nullable=False),
        sa.Column("erased_by", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requested_at", _AT, nullable=False),
        sa.Column("completed_at", _AT, nullable=True),
        sa.Column("contacts", sa.Integer(), nullable=False),
        sa.Column("rows_removed", _JSON, nullable=False),
        sa.Column("workflows_deleted", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subject_hash"),
    )
    op.create_table(
        "erased_ids",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("erased_at", _AT, nullable=False),
        sa.PrimaryKeyConstraint("id_hash"),
    )
    op.create_table(
        "suppressed_addresses",
        sa.Column("address_hash", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("created_at", _AT, nullable=False),
        sa.PrimaryKeyConstraint("address_hash"),
    )

    op.create_table(
        "consent_changes",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("contact_id", sa.String(length=32), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("at", _AT, nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("message_id", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_consent_changes_contact_id", "consent_changes", ["contact_id"])
    op.create_table(
        "event_aggregates",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("day", "type", "name", name="uq_event_aggregate"),
    )
    op.create_table(
        "retention_runs",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("ran_at", _AT, nullable=False),
        sa.Column("cutoff", _AT, nullable=False),
        sa.Column("events_removed", sa.Integer(), nullable=False),
        sa.Column("aggregate_rows", sa.Integer(), nullable=False),
        sa.Column("by_event", _JSON, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_retention_runs_ran_at", "retention_runs", ["ran_at"])


def downgrade() -> None:
    op.drop_index("ix_retention_runs_ran_at", table_name="retention_runs")
    op.drop_table("retention_runs")
    op.drop_table("event_aggregates")
    op.drop_index("ix_consent_changes_contact_id", table_name="consent_changes")
    op.drop_table("consent_changes")
    op.drop_table("suppressed_addresses")
    op.drop_table("erased_ids")
    op.drop_table("erasures")
