"""The send ledger (one row per idempotency key) and CRM tasks.

A send is claimed (row inserted, unique key) before the channel is called and marked sent
after; a retry that finds the key sent does nothing. Tasks are our CRM task records.

An email's row also keeps its Message-ID (derived from the key, so a retry reuses it), the
provider's own id once a provider event names it, and the journey, step, A/B variant and
enrollment that sent it: provider events and tracked clicks find their send here, and the
campaign metrics (``store.engagement``) group by these columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, Integer, String, Text, func, select, update
from sqlalchemy.orm import Mapped, mapped_column

from store.repo import Store, insert_ignore
from store.schema import Base, BigId, JsonType

__all__ = ["Claim", "Ledger", "SendOrigin", "SendRow", "TaskRow"]


class SendRow(Base):
    """One effect, by idempotency key."""

    __tablename__ = "sends"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    contact_id: Mapped[str] = mapped_column(String(32), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    marketing: Mapped[bool] = mapped_column(Boolean)
    summary: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    message_id: Mapped[str | None] = mapped_column(String(255), index=True, unique=True)
    provider_message_id: Mapped[str | None] = mapped_column(String(255), index=True)
    enrollment_id: Mapped[str | None] = mapped_column(String(128))
    journey: Mapped[str | None] = mapped_column(String(128), index=True)
    step: Mapped[str | None] = mapped_column(String(64))
    variant: Mapped[str | None] = mapped_column(String(32))


@dataclass(frozen=True)
class SendOrigin:
    """What an email's ledger row remembers about where it came from (all optional)."""

    message_id: str | None = None
    enrollment_id: str | None = None
    journey: str | None = None
    step: str | None = None
    variant: str | None = None


class TaskRow(Base):
    """A CRM task created for a rep or a manager."""

    __tablename__ = "crm_tasks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    contact_id: Mapped[str] = mapped_column(String(32), index=True)
    owner: Mapped[str] = mapped_column(String(128), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    details: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class Claim:
    """The ledger's answer to "may I send this key now?"."""

    proceed: bool
    status: str


class Ledger:
    """Send ledger and CRM tasks over the store's engine."""

    def __init__(self, store: Store) -> None:
        self._sessions = store._sessions

    def claim(
        self,
        key: str,
        contact_id: str,
        channel: str,
        marketing: bool,
        summary: str,
        origin: SendOrigin | None = None,
    ) -> Claim:
        """Claim ``key``; ``proceed`` is False when it was already sent."""
        now = datetime.now(UTC)
        origin = origin or SendOrigin()
        row = {
            "key": key,
            "contact_id": contact_id,
            "channel": channel,
            "marketing": marketing,
            "summary": summary,
            "status": "claimed",
            "attempts": 0,
            "detail": "",
            "created_at": now,
            "sent_at": None,
            "message_id": origin.message_id,
            "provider_message_id": None,
            "enrollment_id": origin.enrollment_id,
            "journey": origin.journey,
            "step": origin.step,
            "variant": origin.variant,
        }
        with self._sessions.begin() as session:
            insert_ignore(session, SendRow, [row])
            status = session.scalar(select(SendRow.status).where(SendRow.key == key)) or "claimed"
            session.execute(
                update(SendRow).where(SendRow.key == key).values(attempts=SendRow.attempts + 1)
            )
        return Claim(proceed=status != "sent", status=status)

    def finish(self, key: str, status: str, detail: str = "") -> None:
        """Mark a claimed key sent (or skipped) with a detail."""
        values: dict[str, Any] = {"status": status, "detail": detail[:2000]}
        if status == "sent":
            values["sent_at"] = datetime.now(UTC)
        with self._sessions.begin() as session:
            session.execute(update(SendRow).where(SendRow.key == key).values(**values))

    def create_task(self, key: str, contact_id: str, payload: dict[str, Any]) -> bool:
        """Create a CRM task once per key; returns True when it is new."""
        row = {"key": key, "contact_id": contact_id, "created_at": datetime.now(UTC), **payload}
        with self._sessions.begin() as session:
            return insert_ignore(session, TaskRow, [row]) == 1

    def sends(self, contact_id: str | None = None) -> list[SendRow]:
        """Sends, oldest first (optionally for one contact)."""
        query = select(SendRow).order_by(SendRow.id)
        if contact_id is not None:
            query = query.where(SendRow.contact_id == contact_id)
        with self._sessions() as session:
            return list(session.scalars(query))

    def recent_marketing_sends(self, contact_id: str, since: datetime) -> list[datetime]:
        """When marketing emails were sent to the contact since ``since`` (frequency cap)."""
        with self._sessions() as session:
            moments = session.scalars(
                select(SendRow.sent_at)
                .where(
                    SendRow.contact_id == contact_id,
                    SendRow.marketing.is_(True),
                    SendRow.channel == "email",
                    SendRow.status == "sent",
                    SendRow.sent_at >= since,
                )
                .order_by(SendRow.sent_at)
            ).all()
        return [m if m.tzinfo else m.replace(tzinfo=UTC) for m in moments if m is not None]

    def tasks(self, owner: str | None = None) -> list[TaskRow]:
        """CRM tasks, oldest first (optionally for one owner)."""
        query = select(TaskRow).order_by(TaskRow.id)
        if owner is not None:
            query = query.where(TaskRow.owner == owner)
        with self._sessions() as session:
            return list(session.scalars(query))

    def sent_count(self, channel: str) -> int:
        """How many effects of ``channel`` were sent."""
        with self._sessions() as session:
            return (
                session.scalar(
                    select(func.count())
                    .select_from(SendRow)
                    .where(SendRow.channel == channel, SendRow.status == "sent")
                )
                or 0
            )
