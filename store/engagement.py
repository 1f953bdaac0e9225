"""What happened to each email after it left: deliveries, opens, clicks, bounces, complaints.

One row per observation, whether our own tracking saw it (the redirect, the open pixel) or a
provider's event webhook reported it, tied to the send ledger's row. Observations are stored
idempotently by a ``dedupe`` key (a provider's event id, so a webhook delivered twice counts
once); tracked opens and clicks have none, because every repeated open is a real one and is
counted. Machine traffic (mail privacy prefetches, link scanners) is kept but flagged, and the
campaign metrics leave it out of the unique opens and clicks.

The campaign metrics are one SQL aggregation per journey: per step and A/B variant, sends and
the distinct sends with each kind of observation, and the enrollments that reached a goal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import (
    Boolean,
    DateTime,
    Index,
    String,
    Text,
    and_,
    case,
    distinct,
    func,
    select,
    update,
)
from sqlalchemy.orm import Mapped, mapped_column

from store.effects import SendRow
from store.journeys import AssignmentRow, ConversionRow
from store.repo import Store, insert_ignore
from store.schema import Base, BigId

__all__ = [
    "ENGAGEMENT_KINDS",
    "EngagementBook",
    "EngagementKind",
    "EngagementRow",
    "Observation",
    "SentEmail",
    "StepStats",
    "VariantClicks",
    "bare_message_id",
]

EngagementKind = Literal["delivered", "opened", "clicked", "bounced", "complained", "unsubscribed"]
ENGAGEMENT_KINDS: tuple[EngagementKind, ...] = (
    "delivered",
    "opened",
    "clicked",
    "bounced",
    "complained",
    "unsubscribed",
)


class EngagementRow(Base):
    """One observation of one sent email."""

    __tablename__ = "email_engagement"
    __table_args__ = (Index("ix_email_engagement_send_kind", "send_id", "kind"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    send_id: Mapped[int] = mapped_column(BigId)
    contact_id: Mapped[str] = mapped_column(String(32), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    dedupe: Mapped[str | None] = mapped_column(String(160), unique=True)
    machine: Mapped[bool] = mapped_column(Boolean, default=False)
    url: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[str] = mapped_column(String(64), default="")
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class SentEmail:
    """The ledger's facts about one sent email, found by one of its ids."""

    send_id: int
    contact_id: str
    message_id: str
    marketing: bool
    journey: str | None
    step: str | None
    variant: str | None


@dataclass(frozen=True)
class Observation:
    """Something seen about a sent email (``source``: tracking or the provider's name)."""

    send_id: int
    contact_id: str
    kind: EngagementKind
    source: str
    at: datetime
    dedupe: str | None = None
    machine: bool = False
    url: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class StepStats:
    """Campaign metrics of one step (and variant) of a journey."""

    step: str
    variant: str | None
    sent: int
    delivered: int
    opened: int
    clicked: int
    bounced: int
    complained: int
    unsubscribed: int
    conversions: int
    opens: int
    machine_opens: int
    clicks: int


@dataclass(frozen=True)
class VariantClicks:
    """Per split step and variant: enrollments assigned, sent an email, and clicking one."""

    step: str
    variant: str
    assigned: int
    sent: int
    clicked: int


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def bare_message_id(message_id: str) -> str:
    """A Message-ID as stored: with its angle brackets, without surrounding space."""
    core = message_id.strip().strip("<>").strip()
    return f"<{core}>"


class EngagementBook:
    """Observations and campaign metrics over the store's engine."""

    def __init__(self, store: Store) -> None:
        self._sessions = store._sessions

    # ---- finding the send ----------------------------------------------------------------

    def find(
        self, *, message_id: str | None = None, provider_message_id: str | None = None
    ) -> SentEmail | None:
        """The sent email with this Message-ID (ours) or provider id, if the ledger has it."""
        if message_id:
            clause = SendRow.message_id == bare_message_id(message_id)
        elif provider_message_id:
            clause = SendRow.provider_message_id == provider_message_id
        else:
            return None
        query = select(
            SendRow.id,
            SendRow.contact_id,
            SendRow.message_id,
            SendRow.marketing,
            SendRow.journey,
            SendRow.step,
            SendRow.variant,
        ).where(clause)
        with self._sessions() as session:
            row = session.execute(query.limit(1)).first()
        if row is None or row[2] is None:
            return None
        return SentEmail(row[0], row[1], row[2], row[3], row[4], row[5], row[6])

    def find_many(self, message_ids: Sequence[str]) -> dict[str, SentEmail]:
        """Sent emails by Message-ID (as stored, with angle brackets), in one query."""
        wanted = sorted({bare_message_id(m) for m in message_ids})
        found: dict[str, SentEmail] = {}
        query = select(
            SendRow.id,
            SendRow.contact_id,
            SendRow.message_id,
            SendRow.marketing,
            SendRow.journey,
            SendRow.step,
            SendRow.variant,
        )
        with self._sessions() as session:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                for row in session.execute(query.where(SendRow.message_id.in_(chunk))):
                    key = str(row[2])
                    found[key] = SentEmail(row[0], row[1], key, row[3], row[4], row[5], row[6])
        return found

    def seen(self, dedupes: Sequence[str]) -> set[str]:
        """Which of these dedupe keys are stored already."""
        if not dedupes:
            return set()
        query = select(EngagementRow.dedupe).where(EngagementRow.dedupe.in_(list(dedupes)))
        with self._sessions() as session:
            return {d for d in session.scalars(query) if d is not None}

    def remember_provider_id(self, send_id: int, provider_message_id: str) -> None:
        """Keep the provider's id of a send, so its later events find it by that id alone."""
        with self._sessions.begin() as session:
            session.execute(
                update(SendRow)
                .where(SendRow.id == send_id, SendRow.provider_message_id.is_(None))
                .values(provider_message_id=provider_message_id[:255])
            )

    # ---- recording ---------------------------------------------------------------------------

    def record(self, observations: Sequence[Observation]) -> int:
        """Store observations (a repeated ``dedupe`` key is skipped); returns rows stored."""
        rows: list[dict[str, Any]] = [
            {
                "send_id": o.send_id,
                "contact_id": o.contact_id,
                "kind": o.kind,
                "source": o.source[:16],
                "dedupe": o.dedupe[:160] if o.dedupe else None,
                "machine": o.machine,
                "url": o.url,
                "detail": o.detail[:64],
                "at": o.at,
            }
            for o in observations
        ]
        if not rows:
            return 0
        with self._sessions.begin() as session:
            return insert_ignore(session, EngagementRow, rows)

    def observations(self, contact_id: str) -> list[EngagementRow]:
        """A contact's observations, oldest first."""
        query = (
            select(EngagementRow)
            .where(EngagementRow.contact_id == contact_id)
            .order_by(EngagementRow.at, EngagementRow.id)
        )
        with self._sessions() as session:
            return list(session.scalars(query))

    def soft_bounces_in_a_row(self, contact_id: str) -> int:
        """Soft bounces since the contact's last delivery, open or click (the latest run)."""
        rows = self.observations(contact_id)
        count = 0
        for row in rows:
            if row.kind == "bounced" and row.detail == "soft":
                count += 1
            elif row.kind in ("delivered", "opened", "clicked") and not row.machine:
                count = 0
        return count

    # ---- campaign metrics --------------------------------------------------------------------

    def stats(self, journey: str) -> list[StepStats]:
        """Per step and variant of ``journey``: sends and what came of them (SQL aggregation)."""
        e, s, c = EngagementRow, SendRow, ConversionRow

        def distinct_sends(kind: str, *, people_only: bool = False) -> Any:
            test = e.kind == kind
            if people_only:
                test = and_(test, e.machine.is_(False))
            return func.count(distinct(case((test, s.id))))

        def rows(kind: str, machine: bool) -> Any:
            return func.count(case((and_(e.kind == kind, e.machine.is_(machine)), e.id)))

        query = (
            select(
                s.step,
                s.variant,
                func.count(distinct(s.id)),
                distinct_sends("delivered"),
                distinct_sends("opened", people_only=True),
                distinct_sends("clicked", people_only=True),
                distinct_sends("bounced"),
                distinct_sends("complained"),
                distinct_sends("unsubscribed"),
                func.count(distinct(c.enrollment_id)),
                rows("opened", False),
                rows("opened", True),
                rows("clicked", False),
            )
            .select_from(s)
            .outerjoin(e, e.send_id == s.id)
            .outerjoin(c, c.enrollment_id == s.enrollment_id)
            .where(s.journey == journey, s.channel == "email", s.status == "sent")
            .group_by(s.step, s.variant)
            .order_by(func.min(s.id))
        )
        with self._sessions() as session:
            found = session.execute(query).all()
        return [StepStats(r[0] or "", r[1], *(int(v or 0) for v in r[2:])) for r in found]

    def variant_clicks(self, journey: str) -> list[VariantClicks]:
        """Per split step and variant: assigned, sent, and enrollments with a human click."""
        a, s, e = AssignmentRow, SendRow, EngagementRow
        clicked = (
            select(s.enrollment_id)
            .join(e, e.send_id == s.id)
            .where(s.journey == journey, e.kind == "clicked", e.machine.is_(False))
            .distinct()
            .subquery()
        )
        query = (
            select(
                a.step_id,
                a.variant,
                func.count(a.id),
                func.count(a.sent_at),
                func.count(case((a.sent_at.is_not(None), clicked.c.enrollment_id))),
            )
            .outerjoin(clicked, clicked.c.enrollment_id == a.enrollment_id)
            .where(a.journey == journey)
            .group_by(a.step_id, a.variant)
            .order_by(a.step_id, a.variant)
        )
        with self._sessions() as session:
            found = session.execute(query).all()
        return [VariantClicks(r[0], r[1], int(r[2]), int(r[3]), int(r[4] or 0)) for r in found]

    def first_seen(self, send_id: int, kind: str) -> datetime | None:
        """When a send was first observed as ``kind`` by a person (not a machine)."""
        query = select(func.min(EngagementRow.at)).where(
            EngagementRow.send_id == send_id,
            EngagementRow.kind == kind,
            EngagementRow.machine.is_(False),
        )
        with self._sessions() as session:
            moment = session.scalar(query)
        return _aware(moment) if moment is not None else None
