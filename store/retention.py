"""Event retention: events older than the configured age become daily counts, then go.

The event log is the store's largest table and the one that says most about a person's
behaviour. A retention run (``workflows/retention.py``, on a Temporal Schedule) turns each old
event into a count in ``event_aggregates`` (day, type, name: no contact, no properties), then
deletes it, in batches, each batch one transaction. An event still waiting in the outbox is
kept until it is delivered. Each run is recorded in ``retention_runs`` with what it removed
(``revops retention report``). Contacts, stage history, scores, decisions and sends are not
touched: the workflows and reports read those, not the event log.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Integer, String, UniqueConstraint, delete, exists, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.retention import RetentionReport
from store.repo import Store
from store.schema import Base, BigId, EventRow, JsonType, OutboxRow

__all__ = ["EventAggregateRow", "Retention", "RetentionRunRow"]

_BATCH = 5000


class EventAggregateRow(Base):
    """How many events of one type and name there were on one day (UTC), once purged."""

    __tablename__ = "event_aggregates"
    __table_args__ = (UniqueConstraint("day", "type", "name", name="uq_event_aggregate"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    day: Mapped[str] = mapped_column(String(10))
    type: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(255))
    events: Mapped[int] = mapped_column(Integer, default=0)


class RetentionRunRow(Base):
    """One retention run: when, the cutoff, and what it removed."""

    __tablename__ = "retention_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ran_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    cutoff: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    events_removed: Mapped[int] = mapped_column(Integer, default=0)
    aggregate_rows: Mapped[int] = mapped_column(Integer, default=0)
    by_event: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _add_counts(session: Session, counts: Counter[tuple[str, str, str]]) -> int:
    """Add ``counts`` to the daily rows (insert the missing ones); rows touched."""
    for (day, kind, name), count in counts.items():
        row = session.scalar(
            select(EventAggregateRow).where(
                EventAggregateRow.day == day,
                EventAggregateRow.type == kind,
                EventAggregateRow.name == name,
            )
        )
        if row is None:
            session.add(EventAggregateRow(day=day, type=kind, name=name, events=count))
        else:
            row.events += count
    return len(counts)


class Retention:
    """Retention runs over one store."""

    def __init__(self, store: Store) -> None:
        self._sessions = store._sessions

    def _batch(self, cutoff: datetime, report: RetentionReport) -> int:
        """Aggregate and delete one batch of old, delivered events; how many went."""
        pending = exists().where(
            OutboxRow.event_id == EventRow.id, OutboxRow.delivered_at.is_(None)
        )
        query = (
            select(EventRow.id, EventRow.type, EventRow.name, EventRow.timestamp)
            .where(EventRow.timestamp < cutoff, ~pending)
            .order_by(EventRow.id)
            .limit(_BATCH)
        )
        with self._sessions.begin() as session:
            rows = session.execute(query).all()
            if not rows:
                return 0
            counts: Counter[tuple[str, str, str]] = Counter(
                (_aware(r.timestamp).date().isoformat(), r.type, r.name) for r in rows
            )
            report.aggregate_rows += _add_counts(session, counts)
            ids = [r.id for r in rows]
            session.execute(delete(OutboxRow).where(OutboxRow.event_id.in_(ids)))
            session.execute(delete(EventRow).where(EventRow.id.in_(ids)))
        for (_, _, name), count in counts.items():
            report.by_event[name] = report.by_event.get(name, 0) + count
        return len(rows)

    def purge(self, cutoff: datetime, now: datetime) -> RetentionReport:
        """Turn events older than ``cutoff`` into daily counts and delete them; the report."""
        report = RetentionReport(ran_at=now, cutoff=cutoff)
        while removed := self._batch(cutoff, report):
            report.events_removed += removed
        with self._sessions.begin() as session:
            session.add(
                RetentionRunRow(
                    ran_at=now,
                    cutoff=cutoff,
                    events_removed=report.events_removed,
                    aggregate_rows=report.aggregate_rows,
                    by_event=report.by_event,
                )
            )
        return report

    def runs(self, limit: int = 20) -> list[RetentionReport]:
        """Recent runs, newest first."""
        query = select(RetentionRunRow).order_by(RetentionRunRow.ran_at.desc()).limit(limit)
        with self._sessions() as session:
            return [
                RetentionReport(
                    ran_at=_aware(r.ran_at),
                    cutoff=_aware(r.cutoff),
                    events_removed=r.events_removed,
                    aggregate_rows=r.aggregate_rows,
                    by_event={str(k): int(v) for k, v in (r.by_event or {}).items()},
                )
                for r in session.scalars(query)
            ]

    def aggregates(self) -> list[EventAggregateRow]:
        """Every daily count, by day."""
        query = select(EventAggregateRow).order_by(EventAggregateRow.day, EventAggregateRow.name)
        with self._sessions() as session:
            return list(session.scalars(query))
