"""the CRM loop: the push queue, handoff tasks for the CRM, CRM ids, the sync's status

Revision ID: crm
Revises: reports_summaries
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "crm"
down_revision = "reports_summaries"
branch_labels = None
depends_on = None

_AT = sa.DateTime(timezone=True)
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "crm_queue",
        sa.Column("contact_id", sa.String(length=32), nullable=False),
        sa.Column("snapshot", _JSON, nullable=False),
        sa.Column("reasons", _JSON, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("queued_at", _AT, nullable=False),
        sa.Column("next_attempt_at", _AT, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("contact_id"),
    )
    op.create_index("ix_crm_queue_next_attempt_at", "crm_queue", ["next_attempt_at"])
    op.create_table(
        "crm_task_queue",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("contact_id", sa.String(length=32), nullable=False),
        sa.Column("task", _JSON, nullable=False),
        sa.Column("queued_at", _AT, nullable=False),
        sa.Column("pushed_at", _AT, nullable=True),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_crm_task_queue_contact_id", "crm_task_queue", ["contact_id"])
    op.create_index("ix_crm_task_queue_pushed_at", "crm_task_queue", ["pushed_at"])
    op.create_table(
        "crm_links",
        sa.Column("contact_id", sa.String(length=32), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("crm_id", sa.String(length=64), nullable=False),
        sa.Column("synced_at", _AT, nullable=False),
        sa.Column("pushes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("contact_id"),
    )
    op.create_index("ix_crm_links_crm_id", "crm_links", ["crm_id"])
    op.create_table(
        "crm_status",
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("last_sync_at", _AT, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", _AT, nullable=True),
        sa.Column("pushed", sa.Integer(), nullable=False),
        sa.Column("throttled", sa.Integer(), nullable=False),
        sa.Column("headroom", _JSON, nullable=False),
        sa.Column("cursor", _AT, nullable=True),
        sa.PrimaryKeyConstraint("provider"),
    )


def downgrade() -> None:
    op.drop_table("crm_status")
    op.drop_table("crm_links")
    op.drop_table("crm_task_queue")
    op.drop_table("crm_queue")
