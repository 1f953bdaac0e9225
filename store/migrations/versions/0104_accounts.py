"""accounts: one row per account and per member, written by the account workflows

Revision ID: accounts
Revises: privacy
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "accounts"
down_revision = "privacy"
branch_labels = None
depends_on = None

_AT = sa.DateTime(timezone=True)
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("domain", sa.String(length=255), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("owner", sa.String(length=255), nullable=True),
        sa.Column("members", sa.Integer(), nullable=False),
        sa.Column("engaged", sa.Integer(), nullable=False),
        sa.Column("plays", sa.Integer(), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("facts", _JSON, nullable=False),
        sa.Column("updated_at", _AT, nullable=False),
        sa.PrimaryKeyConstraint("account_id"),
    )
    op.create_index(op.f("ix_accounts_domain"), "accounts", ["domain"], unique=False)
    op.create_table(
        "account_members",
        sa.Column("contact_id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=True),
        sa.Column("executive", sa.Boolean(), nullable=False),
        sa.Column("record", _JSON, nullable=False),
        sa.Column("joined_at", _AT, nullable=False),
        sa.PrimaryKeyConstraint("contact_id"),
    )
    op.create_index(
        op.f("ix_account_members_account_id"), "account_members", ["account_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_account_members_account_id"), table_name="account_members")
    op.drop_table("account_members")
    op.drop_index(op.f("ix_accounts_domain"), table_name="accounts")
    op.drop_table("accounts")
