"""report summaries: funnel passes and spells, touchpoints, email and sales extracts,
opportunities; a covering index of journey sends

Revision ID: reports_summaries
Revises: 0005, 0006, engagement
Create Date: 2026-12-01

The summary tables start empty: the first report builds them (``ReportBook.refresh``) from the
stage history and the outbox, and they are kept current from then on.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "reports_summaries"
down_revision = ("0005", "0006", "engagement")  # engagement adds sends.journey and .step
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_AT = sa.DateTime(timezone=True)
_STAGES = ("subscriber", "lead", "mql", "sal", "sql", "opportunity", "customer", "evangelist")


def upgrade() -> None:
    op.create_index(
        "ix_sends_journey_report", "sends", ["journey", "step", "status", "sent_at", "contact_id"]
    )
    op.create_table(
        "report_spells",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("contact_id", sa.String(length=32), nullable=False),
        sa.Column("pass_no", sa.Integer(), nullable=False),
        sa.Column("stage_rank", sa.Integer(), nullable=False),
        sa.Column("entered_at", _AT, nullable=False),
        sa.Column("left_at", _AT, nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_report_spells_contact_id", "report_spells", ["contact_id"])
    op.create_index("ix_report_spells_stage_entered", "report_spells", ["stage_rank", "entered_at"])
    op.create_table(
        "report_passes",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("contact_id", sa.String(length=32), nullable=False),
        sa.Column("pass_no", sa.Integer(), nullable=False),
        sa.Column("started_at", _AT, nullable=False),
        sa.Column("last_at", _AT, nullable=False),
        sa.Column("cohort", sa.String(length=7), nullable=False),
        sa.Column("top_rank", sa.Integer(), nullable=False),
        sa.Column("entered_mask", sa.Integer(), nullable=False),
        sa.Column("recycled_at", _AT, nullable=True),
        *(sa.Column(f"reached_{stage}", _AT, nullable=True) for stage in _STAGES),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("contact_id", "pass_no", name="uq_report_pass"),
    )
    op.create_index("ix_report_passes_last_at", "report_passes", ["last_at"])
    op.create_table(
        "report_state",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("position", _ID, nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("updated_at", _AT, nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "report_touchpoints",
        sa.Column("event_id", _ID, autoincrement=False, nullable=False),
        sa.Column("contact_id", sa.String(length=32), nullable=False),
        sa.Column("at", _AT, nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("event", sa.String(length=255), nullable=False),
        sa.Column("channel", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=True),
        sa.Column("medium", sa.String(length=200), nullable=True),
        sa.Column("campaign", sa.String(length=200), nullable=True),
        sa.Column("journey", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_index("ix_report_touchpoints_contact_at", "report_touchpoints", ["contact_id", "at"])
    op.create_table(
        "report_email_events",
        sa.Column("event_id", _ID, autoincrement=False, nullable=False),
        sa.Column("contact_id", sa.String(length=32), nullable=False),
        sa.Column("at", _AT, nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("journey", sa.String(length=128), nullable=True),
        sa.Column("step", sa.String(length=128), nullable=True),
        sa.Column("variant", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_index(
        "ix_report_email_journey",
        "report_email_events",
        ["journey", "kind", "step", "at", "contact_id"],
    )
    op.create_table(
        "report_sales_events",
        sa.Column("event_id", _ID, autoincrement=False, nullable=False),
        sa.Column("contact_id", sa.String(length=32), nullable=False),
        sa.Column("at", _AT, nullable=False),
        sa.Column("activity", sa.String(length=32), nullable=False),
        sa.Column("opportunity_id", sa.String(length=200), nullable=True),
        sa.Column("amount", sa.Float(), nullable=True),
        sa.Column("stage", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("rep_id", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_index("ix_report_sales_events_contact_id", "report_sales_events", ["contact_id"])
    op.create_index("ix_report_sales_opportunity", "report_sales_events", ["opportunity_id"])
    op.create_table(
        "report_opportunities",
        sa.Column("key", sa.String(length=240), nullable=False),
        sa.Column("created_at", _AT, nullable=False),
        sa.Column("won_at", _AT, nullable=True),
        sa.Column("lost_at", _AT, nullable=True),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("primary_contact", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_report_opportunities_created_at", "report_opportunities", ["created_at"])
    op.create_index("ix_report_opportunities_won_at", "report_opportunities", ["won_at"])
    op.create_table(
        "report_opportunity_contacts",
        sa.Column("key", sa.String(length=240), nullable=False),
        sa.Column("contact_id", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("key", "contact_id"),
    )
    op.create_index(
        "ix_report_opportunity_contacts_contact_id",
        "report_opportunity_contacts",
        ["contact_id"],
    )
    op.create_table(
        "report_contacts",
        sa.Column("contact_id", sa.String(length=32), nullable=False),
        sa.Column("first_touch_at", _AT, nullable=False),
        sa.Column("channel", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=True),
        sa.Column("medium", sa.String(length=200), nullable=True),
        sa.Column("campaign", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("contact_id"),
    )


def downgrade() -> None:
    for table in (
        "report_contacts",
        "report_opportunity_contacts",
        "report_opportunities",
        "report_sales_events",
        "report_email_events",
        "report_touchpoints",
        "report_state",
        "report_passes",
        "report_spells",
    ):
        op.drop_table(table)
    op.drop_index("ix_sends_journey_report", table_name="sends")
