"""outbox.bucket: the contact's hash bucket, so relays can split the outbox into shards

Revision ID: outbox_bucket
Revises: accounts
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from revops.ids import contact_bucket

revision = "outbox_bucket"
down_revision = "accounts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("bucket", sa.Integer(), nullable=False, server_default="0"))
    # Pending items get their real bucket; delivered ones are never read by a relay again.
    outbox = sa.table(
        "outbox",
        sa.column("contact_id", sa.String()),
        sa.column("bucket", sa.Integer()),
        sa.column("delivered_at", sa.DateTime()),
    )
    connection = op.get_bind()
    pending = connection.execute(
        sa.select(outbox.c.contact_id).where(outbox.c.delivered_at.is_(None)).distinct()
    ).scalars()
    for contact_id in list(pending):
        connection.execute(
            sa.update(outbox)
            .where(outbox.c.contact_id == contact_id, outbox.c.delivered_at.is_(None))
            .values(bucket=contact_bucket(contact_id))
        )


def downgrade() -> None:
    op.drop_column("outbox", "bucket")
