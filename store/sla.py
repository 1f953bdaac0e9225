"""SLA records of sales handoffs: one row per handoff, for the SLA report and audits.

The handoff workflow writes its whole record after every change (assignment, reminder, breach,
escalation, reassignment, first touch, outcome) through an activity. A write carries the
workflow's ``revision``; a row only moves forward, so a retried or late activity attempt can
never overwrite a newer record with an older one. ``mql_date`` and ``first_contact_date`` are
the two dates the MQL SLA compliance report is built from.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, Integer, String, Text, select, update
from sqlalchemy.orm import Mapped, mapped_column

from handoff.contract import SlaRecord, TurnRecord
from store.repo import Store, insert_ignore
from store.report_extract import ReportContactRow
from store.schema import Base, BigId, JsonType

__all__ = ["SlaBook", "SlaRow"]


class SlaRow(Base):
    """The SLA of one handoff as its workflow last recorded it."""

    __tablename__ = "sla_records"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    handoff_id: Mapped[str] = mapped_column(String(128), unique=True)
    contact_id: Mapped[str] = mapped_column(String(32), index=True)
    trigger: Mapped[str] = mapped_column(String(16))
    policy: Mapped[str | None] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(16))
    mql_date: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    assigned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    owner: Mapped[str | None] = mapped_column(String(128), index=True)
    team: Mapped[str | None] = mapped_column(String(128))
    first_contact_date: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    responded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deadline: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sla_met: Mapped[bool | None] = mapped_column(Boolean)
    reminders: Mapped[int] = mapped_column(Integer, default=0)
    breaches: Mapped[int] = mapped_column(Integer, default=0)
    escalations: Mapped[int] = mapped_column(Integer, default=0)
    reassignments: Mapped[int] = mapped_column(Integer, default=0)
    outcome: Mapped[str | None] = mapped_column(String(32))
    outcome_reason: Mapped[str | None] = mapped_column(Text)
    turns: Mapped[list[dict[str, Any]]] = mapped_column(JsonType, default=list)
    revision: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


_DATES = ("mql_date", "assigned_at", "first_contact_date", "responded_at", "deadline")


class SlaBook:
    """SLA records over the store's engine."""

    def __init__(self, store: Store) -> None:
        self._sessions = store._sessions

    def record(self, record: SlaRecord) -> bool:
        """Store ``record`` unless a newer revision is there already; True when written."""
        values: dict[str, Any] = record.model_dump(mode="python")
        values["turns"] = [turn.model_dump(mode="json") for turn in record.turns]
        values["updated_at"] = datetime.now(UTC)
        with self._sessions.begin() as session:
            if insert_ignore(session, SlaRow, [values]) == 1:
                return True
            result = session.execute(
                update(SlaRow)
                .where(SlaRow.handoff_id == record.handoff_id, SlaRow.revision <= record.revision)
                .values(**{k: v for k, v in values.items() if k != "handoff_id"})
            )
            return bool(getattr(result, "rowcount", 0))

    def get(self, handoff_id: str) -> SlaRecord | None:
        """One handoff's record, or None."""
        with self._sessions() as session:
            row = session.scalar(select(SlaRow).where(SlaRow.handoff_id == handoff_id))
        return _record(row) if row is not None else None

    def sources(self, since: datetime | None = None) -> dict[str, str]:
        """Each handed-off contact's first-touch channel (the reports' ``report_contacts``
        extract: bring it current first, ``ReportBook.refresh``); contacts without one are
        left out."""
        query = select(SlaRow.contact_id, ReportContactRow.channel).join(
            ReportContactRow, ReportContactRow.contact_id == SlaRow.contact_id
        )
        if since is not None:
            query = query.where(SlaRow.mql_date >= since)
        with self._sessions() as session:
            return {contact: channel for contact, channel in session.execute(query)}

    def owner_of(self, contact_id: str) -> str | None:
        """The owner of the contact's latest handoff (None: never handed off)."""
        query = (
            select(SlaRow.owner)
            .where(SlaRow.contact_id == contact_id)
            .order_by(SlaRow.mql_date.desc(), SlaRow.id.desc())
            .limit(1)
        )
        with self._sessions() as session:
            return session.scalar(query)

    def records(self, since: datetime | None = None) -> list[SlaRecord]:
        """Every record with an MQL on or after ``since``, oldest MQL first."""
        query = select(SlaRow).order_by(SlaRow.mql_date, SlaRow.id)
        if since is not None:
            query = query.where(SlaRow.mql_date >= since)
        with self._sessions() as session:
            return [_record(row) for row in session.scalars(query)]


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _record(row: SlaRow) -> SlaRecord:
    data = {column: getattr(row, column) for column in SlaRecord.model_fields if column != "turns"}
    for name in _DATES:
        data[name] = _aware(data[name])
    data["turns"] = [TurnRecord.model_validate(turn) for turn in row.turns or []]
    return SlaRecord.model_validate(data)
