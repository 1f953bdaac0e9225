"""Tables of the store: the record Temporal should not keep.

The event log (unique messageId), identities, the outbox that feeds contact workflows, and the
history the workflows decide (stages). Personal data lives here only, never in workflow state.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Base",
    "ContactRow",
    "EventRow",
    "IdentityRow",
    "OutboxRow",
    "StageHistoryRow",
]

JsonType = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """Declarative base of every table."""


class ContactRow(Base):
    """A known contact. ``contact_id`` is opaque; ``user_id`` and ``email`` stay here."""

    __tablename__ = "contacts"

    contact_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    email: Mapped[str | None] = mapped_column(String(320))
    traits: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    account_id: Mapped[str | None] = mapped_column(String(255), index=True)
    consent: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    stage: Mapped[str | None] = mapped_column(String(32))
    merged_into: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class IdentityRow(Base):
    """One id (user id or anonymous id) that resolves to a contact."""

    __tablename__ = "identities"
    __table_args__ = (UniqueConstraint("kind", "value", name="uq_identity_kind_value"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(255))
    contact_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("contacts.contact_id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class EventRow(Base):
    """Every accepted event, once (unique ``message_id``)."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_contact_ts", "contact_id", "timestamp"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(128), unique=True)
    type: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[str | None] = mapped_column(String(255))
    anonymous_id: Mapped[str | None] = mapped_column(String(255), index=True)
    contact_id: Mapped[str | None] = mapped_column(String(32))
    properties: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    traits: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    context: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OutboxRow(Base):
    """An event waiting to reach its contact's workflow; delivered in ``id`` order."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "delivered_at", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("events.id", ondelete="CASCADE"), unique=True
    )
    contact_id: Mapped[str] = mapped_column(String(32), index=True)
    bucket: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """``revops.ids.contact_bucket`` of the contact: its relay shard is ``bucket % shards``."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class StageHistoryRow(Base):
    """One lifecycle stage entered, written by the contact workflow (idempotently)."""

    __tablename__ = "stage_history"
    __table_args__ = (UniqueConstraint("contact_id", "stage", "entered_at", name="uq_stage_entry"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    contact_id: Mapped[str] = mapped_column(String(32), index=True)
    stage: Mapped[str] = mapped_column(String(32))
    entered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(Text)
    override: Mapped[bool] = mapped_column(default=False)
