"""History the contact workflows decide: scores, list memberships, demand states.

Workflows hold the live state; these tables keep the record for reports, list counts and
``revops contacts why``. Every write is idempotent (unique keys), because activities may retry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    DateTime,
    Float,
    Index,
    String,
    Text,
    UniqueConstraint,
    func,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.changes import ContactChanges, DemandStateEntry, ListChange, ScoreSnapshot
from store.repo import Store, insert_ignore
from store.schema import Base, BigId, ContactRow, EventRow, JsonType

__all__ = [
    "DemandStateRow",
    "History",
    "ListFreshness",
    "ListMembershipRow",
    "ScoreHistoryRow",
]


class ScoreHistoryRow(Base):
    """Scores after a change, with the model version and the behaviours behind them."""

    __tablename__ = "score_history"
    __table_args__ = (UniqueConstraint("contact_id", "at", name="uq_score_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    contact_id: Mapped[str] = mapped_column(String(32), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    fit: Mapped[float] = mapped_column(Float)
    engagement: Mapped[float] = mapped_column(Float)
    engagement_recent: Mapped[float] = mapped_column(Float)
    model_version: Mapped[str] = mapped_column(String(64))
    top_behaviours: Mapped[list[str]] = mapped_column(JsonType, default=list)
    cause: Mapped[str] = mapped_column(Text, default="")


class ListMembershipRow(Base):
    """One stay of a contact on a list: entered, and left (null while a member)."""

    __tablename__ = "list_memberships"
    __table_args__ = (
        UniqueConstraint("contact_id", "list_name", "entered_at", name="uq_membership_entry"),
        Index("ix_memberships_list_open", "list_name", "left_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    contact_id: Mapped[str] = mapped_column(String(32), index=True)
    list_name: Mapped[str] = mapped_column(String(128))
    entered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    left_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(Text, default="")


class DemandStateRow(Base):
    """A demand state entered (and where from, for the sales handoff)."""

    __tablename__ = "demand_states"
    __table_args__ = (UniqueConstraint("contact_id", "state", "at", name="uq_demand_state_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    contact_id: Mapped[str] = mapped_column(String(32), index=True)
    state: Mapped[str] = mapped_column(String(64))
    previous: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class ListFreshness:
    """Share of a list's members whose profile or events changed recently."""

    list_name: str
    members: int
    fresh: int

    @property
    def share(self) -> float:
        """Fresh members over all members (1.0 for an empty list)."""
        return self.fresh / self.members if self.members else 1.0


class History:
    """Repository of decided history, over the store's engine."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._sessions = store._sessions

    def record(self, changes: ContactChanges) -> None:
        """Write one step's changes (idempotent: a retry writes nothing twice)."""
        if changes.stage_entries:
            self._store.record_stage_entries(changes.contact_id, changes.stage_entries)
        with self._sessions.begin() as session:
            if changes.score is not None:
                _record_score(session, changes.contact_id, changes.score)
            for change in changes.list_changes:
                _record_list_change(session, changes.contact_id, change)
            _record_demand_states(session, changes.contact_id, changes.demand_states)

    def scores(self, contact_id: str, limit: int = 20) -> list[ScoreHistoryRow]:
        """Recent score snapshots, newest first."""
        with self._sessions() as session:
            return list(
                session.scalars(
                    select(ScoreHistoryRow)
                    .where(ScoreHistoryRow.contact_id == contact_id)
                    .order_by(ScoreHistoryRow.at.desc())
                    .limit(limit)
                )
            )

    def list_counts(self) -> dict[str, int]:
        """Current member count per list."""
        with self._sessions() as session:
            rows = session.execute(
                select(ListMembershipRow.list_name, func.count())
                .where(ListMembershipRow.left_at.is_(None))
                .group_by(ListMembershipRow.list_name)
            ).all()
        return {name: int(count) for name, count in rows}

    def list_activity(self, list_name: str, limit: int = 20) -> list[ListMembershipRow]:
        """Recent entries and exits of one list, newest first."""
        moment = func.coalesce(ListMembershipRow.left_at, ListMembershipRow.entered_at)
        with self._sessions() as session:
            return list(
                session.scalars(
                    select(ListMembershipRow)
                    .where(ListMembershipRow.list_name == list_name)
                    .order_by(moment.desc(), ListMembershipRow.id.desc())
                    .limit(limit)
                )
            )

    def members(self, list_name: str) -> list[str]:
        """Contact ids currently on a list."""
        with self._sessions() as session:
            return list(
                session.scalars(
                    select(ListMembershipRow.contact_id).where(
                        ListMembershipRow.list_name == list_name,
                        ListMembershipRow.left_at.is_(None),
                    )
                )
            )

    def lists_of(self, contact_id: str) -> frozenset[str]:
        """The lists a contact is on now, as recorded (the send-time check reads these)."""
        with self._sessions() as session:
            return frozenset(
                session.scalars(
                    select(ListMembershipRow.list_name).where(
                        ListMembershipRow.contact_id == contact_id,
                        ListMembershipRow.left_at.is_(None),
                    )
                )
            )

    def demand_states(self, contact_id: str) -> list[DemandStateRow]:
        """Demand states entered, oldest first."""
        with self._sessions() as session:
            return list(
                session.scalars(
                    select(DemandStateRow)
                    .where(DemandStateRow.contact_id == contact_id)
                    .order_by(DemandStateRow.at, DemandStateRow.id)
                )
            )

    def freshness(
        self, now: datetime, window: timedelta = timedelta(days=90)
    ) -> list[ListFreshness]:
        """Per list: members whose profile or events were updated within ``window``."""
        since = now - window
        with self._sessions() as session:
            last_event = (
                select(EventRow.contact_id, func.max(EventRow.received_at).label("last"))
                .group_by(EventRow.contact_id)
                .subquery()
            )
            rows = session.execute(
                select(
                    ListMembershipRow.list_name,
                    ListMembershipRow.contact_id,
                    ContactRow.updated_at,
                    last_event.c.last,
                )
                .join(ContactRow, ContactRow.contact_id == ListMembershipRow.contact_id)
                .outerjoin(last_event, last_event.c.contact_id == ListMembershipRow.contact_id)
                .where(ListMembershipRow.left_at.is_(None))
            ).all()
        totals: dict[str, list[int]] = {}
        for list_name, _contact, updated, last in rows:
            counts = totals.setdefault(list_name, [0, 0])
            counts[0] += 1
            latest = max(_aware(t) for t in (updated, last) if t is not None)
            counts[1] += latest >= since
        return [ListFreshness(n, c[0], c[1]) for n, c in sorted(totals.items())]


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _record_score(session: Session, contact_id: str, score: ScoreSnapshot) -> None:
    row: dict[str, Any] = {"contact_id": contact_id, **score.model_dump()}
    insert_ignore(session, ScoreHistoryRow, [row])


def _record_list_change(session: Session, contact_id: str, change: ListChange) -> None:
    if change.entered:
        row = {
            "contact_id": contact_id,
            "list_name": change.list_name,
            "entered_at": change.at,
            "left_at": None,
            "reason": change.reason,
        }
        insert_ignore(session, ListMembershipRow, [row])
        return
    session.execute(
        update(ListMembershipRow)
        .where(
            ListMembershipRow.contact_id == contact_id,
            ListMembershipRow.list_name == change.list_name,
            ListMembershipRow.left_at.is_(None),
            ListMembershipRow.entered_at <= change.at,
        )
        .values(left_at=change.at)
    )


def _record_demand_states(
    session: Session, contact_id: str, entries: Sequence[DemandStateEntry]
) -> None:
    rows = [{"contact_id": contact_id, **e.model_dump()} for e in entries]
    insert_ignore(session, DemandStateRow, rows)
