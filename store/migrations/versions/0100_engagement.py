"""engagement: Message-IDs and campaign columns on the send ledger, email observations

Revision ID: engagement
Revises: 0007
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "engagement"
down_revision = "0007"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("sends", sa.Column("message_id", sa.String(length=255), nullable=True))
    op.add_column("sends", sa.Column("provider_message_id", sa.String(length=255), nullable=True))
    op.add_column("sends", sa.Column("enrollment_id", sa.String(length=128), nullable=True))
    op.add_column("sends", sa.Column("journey", sa.String(length=128), nullable=True))
    op.add_column("sends", sa.Column("step", sa.String(length=64), nullable=True))
    op.add_column("sends", sa.Column("variant", sa.String(length=32), nullable=True))
    op.create_index("ix_sends_message_id", "sends", ["message_id"], unique=True)
    op.create_index(
        op.f("ix_sends_provider_message_id"), "sends", ["provider_message_id"], unique=False
    )
    op.create_index(op.f("ix_sends_journey"), "sends", ["journey"], unique=False)
    op.create_table(
        "email_engagement",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("send_id", _ID, nullable=False),
        sa.Column("contact_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("dedupe", sa.String(length=160), nullable=True),
        sa.Column("machine", sa.Boolean(), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("detail", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dedupe"),
    )
    op.create_index(
        op.f("ix_email_engagement_contact_id"), "email_engagement", ["contact_id"], unique=False
    )
    op.create_index(
        "ix_email_engagement_send_kind", "email_engagement", ["send_id", "kind"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_email_engagement_send_kind", table_name="email_engagement")
    op.drop_index(op.f("ix_email_engagement_contact_id"), table_name="email_engagement")
    op.drop_table("email_engagement")
    op.drop_index(op.f("ix_sends_journey"), table_name="sends")
    op.drop_index(op.f("ix_sends_provider_message_id"), table_name="sends")
    op.drop_index("ix_sends_message_id", table_name="sends")
    with op.batch_alter_table("sends") as batch:
        for column in (
            "variant",
            "step",
            "journey",
            "enrollment_id",
            "provider_message_id",
            "message_id",
        ):
            batch.drop_column(column)
