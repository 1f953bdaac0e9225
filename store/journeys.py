"""What journeys leave in the store: A/B split assignments, goal conversions, unsubscribes.

Workflows keep a journey's live position; the store keeps what reports need afterwards. An
assignment row per (enrollment, split step) says which variant a contact got and when one of
its sends went out; a conversion row per enrollment says which goal it reached. Every write is
idempotent (unique keys, "set if still empty"), because activities may run more than once.

The send-time check also reads the contact's event log here (bounces, spam complaints, sales
outreach), and the one-click unsubscribe endpoint records its consent change here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Integer, String, UniqueConstraint, case, func, select, update
from sqlalchemy.orm import Mapped, mapped_column

from analysis.holdout import HoldoutReport, holdout_report
from audience.consent import Consent
from store.repo import Store, insert_ignore
from store.schema import Base, BigId, ContactRow, EventRow

__all__ = [
    "BOUNCE_EVENT",
    "COMPLAINT_EVENT",
    "SALES_OUTREACH_EVENTS",
    "AssignmentRow",
    "ConversionRow",
    "DeliverabilityFacts",
    "JourneyLog",
    "VariantStats",
    "is_hard_bounce",
    "summarise",
]


class AssignmentRow(Base):
    """The variant one enrollment got at one split step."""

    __tablename__ = "journey_assignments"
    __table_args__ = (UniqueConstraint("enrollment_id", "step_id", name="uq_journey_assignment"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    enrollment_id: Mapped[str] = mapped_column(String(128))
    contact_id: Mapped[str] = mapped_column(String(32), index=True)
    journey: Mapped[str] = mapped_column(String(128), index=True)
    version: Mapped[int] = mapped_column(Integer)
    step_id: Mapped[str] = mapped_column(String(64))
    variant: Mapped[str] = mapped_column(String(32))
    assigned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ConversionRow(Base):
    """An enrollment that reached a goal."""

    __tablename__ = "journey_conversions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    enrollment_id: Mapped[str] = mapped_column(String(128), unique=True)
    contact_id: Mapped[str] = mapped_column(String(32), index=True)
    journey: Mapped[str] = mapped_column(String(128), index=True)
    version: Mapped[int] = mapped_column(Integer)
    goal_step: Mapped[str] = mapped_column(String(64))
    converted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class VariantStats:
    """One variant of one split: contacts assigned, contacts who got a send, and how many of
    those converted."""

    step_id: str
    variant: str
    assigned: int
    sent: int
    converted: int


@dataclass(frozen=True)
class DeliverabilityFacts:
    """What the event log says about sending to a contact."""

    hard_bounced: bool = False
    spam_complaint: bool = False
    last_sales_activity_at: datetime | None = None


BOUNCE_EVENT = "Email Bounced"
COMPLAINT_EVENT = "Spam Complaint"
SALES_OUTREACH_EVENTS = frozenset({"Sales Email Sent", "Sales Call Logged", "Meeting Booked"})


def is_hard_bounce(properties: dict[str, Any]) -> bool:
    """A bounce suppresses the address when it is hard: unless its provider said soft (or
    transient), or when the gateway marked it ``suppress`` (the soft bounce that reached the
    limit in a row, gateway/feedback.py)."""
    suppress = properties.get("suppress")
    if isinstance(suppress, bool):
        return suppress
    kind = str(properties.get("type") or properties.get("bounce_type") or "hard").lower()
    return kind not in ("soft", "transient")


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class JourneyLog:
    """Journey records over the store's engine."""

    def __init__(self, store: Store) -> None:
        self._sessions = store._sessions

    def assigned(
        self,
        enrollment_id: str,
        contact_id: str,
        journey: str,
        version: int,
        step: str,
        variant: str,
        at: datetime,
    ) -> None:
        """Record a split assignment once."""
        row = {
            "enrollment_id": enrollment_id,
            "contact_id": contact_id,
            "journey": journey,
            "version": version,
            "step_id": step,
            "variant": variant,
            "assigned_at": at,
            "sent_at": None,
        }
        with self._sessions.begin() as session:
            insert_ignore(session, AssignmentRow, [row])

    def variant_sent(self, enrollment_id: str, step: str, at: datetime) -> None:
        """Mark that the contact got a send of its variant (the first one counts)."""
        with self._sessions.begin() as session:
            session.execute(
                update(AssignmentRow)
                .where(
                    AssignmentRow.enrollment_id == enrollment_id,
                    AssignmentRow.step_id == step,
                    AssignmentRow.sent_at.is_(None),
                )
                .values(sent_at=at)
            )

    def converted(
        self,
        enrollment_id: str,
        contact_id: str,
        journey: str,
        version: int,
        goal: str,
        at: datetime,
    ) -> None:
        """Record a goal conversion once per enrollment."""
        row = {
            "enrollment_id": enrollment_id,
            "contact_id": contact_id,
            "journey": journey,
            "version": version,
            "goal_step": goal,
            "converted_at": at,
        }
        with self._sessions.begin() as session:
            insert_ignore(session, ConversionRow, [row])

    def holdout_counts(self, journey: str, step: str = "holdout") -> dict[str, tuple[int, int]]:
        """Per holdout group (``enrolled``, ``held_out``): enrollments assigned, and how many
        of them reached a goal (sent or not: the held out never get anything)."""
        query = (
            select(
                AssignmentRow.variant,
                func.count(AssignmentRow.id),
                func.count(ConversionRow.id),
            )
            .outerjoin(ConversionRow, ConversionRow.enrollment_id == AssignmentRow.enrollment_id)
            .where(AssignmentRow.journey == journey, AssignmentRow.step_id == step)
            .group_by(AssignmentRow.variant)
        )
        with self._sessions() as session:
            rows = session.execute(query).all()
        return {str(r[0]): (int(r[1]), int(r[2] or 0)) for r in rows}

    def holdout(self, journey: str) -> HoldoutReport | None:
        """Goal conversion enrolled vs held out, lift and interval (None: no holdout yet)."""
        counts = self.holdout_counts(journey)
        if not counts:
            return None
        return holdout_report(counts.get("enrolled", (0, 0)), counts.get("held_out", (0, 0)))

    def holdout_journeys(self, step: str = "holdout") -> list[str]:
        """Journeys that have recorded holdout assignments, by name."""
        query = (
            select(AssignmentRow.journey)
            .where(AssignmentRow.step_id == step)
            .distinct()
            .order_by(AssignmentRow.journey)
        )
        with self._sessions() as session:
            return list(session.scalars(query))

    def variant_stats(self, journey: str) -> list[VariantStats]:
        """Per split step and variant: assigned, sent, and converted among those sent."""
        converted = (
            select(func.count(ConversionRow.id))
            .where(ConversionRow.enrollment_id == AssignmentRow.enrollment_id)
            .correlate(AssignmentRow)
            .scalar_subquery()
        )
        converted_after_send = case((AssignmentRow.sent_at.is_not(None), converted), else_=0)
        query = (
            select(
                AssignmentRow.step_id,
                AssignmentRow.variant,
                func.count(AssignmentRow.id),
                func.count(AssignmentRow.sent_at),
                func.sum(converted_after_send),
            )
            .where(AssignmentRow.journey == journey)
            .group_by(AssignmentRow.step_id, AssignmentRow.variant)
            .order_by(AssignmentRow.step_id, AssignmentRow.variant)
        )
        with self._sessions() as session:
            rows = session.execute(query).all()
        return [VariantStats(r[0], r[1], int(r[2]), int(r[3]), int(r[4] or 0)) for r in rows]

    def conversions(self, journey: str | None = None) -> list[ConversionRow]:
        """Conversions, oldest first (optionally of one journey)."""
        query = select(ConversionRow).order_by(ConversionRow.id)
        if journey is not None:
            query = query.where(ConversionRow.journey == journey)
        with self._sessions() as session:
            return list(session.scalars(query))

    def deliverability(self, contact_id: str) -> DeliverabilityFacts:
        """Hard bounces, spam complaints and the latest sales outreach in the event log."""
        names = [BOUNCE_EVENT, COMPLAINT_EVENT, *SALES_OUTREACH_EVENTS]
        query = select(EventRow.name, EventRow.properties, EventRow.timestamp).where(
            EventRow.contact_id == contact_id, EventRow.name.in_(names)
        )
        with self._sessions() as session:
            rows = session.execute(query).all()
        return summarise(
            (name, properties or {}, _aware(timestamp)) for name, properties, timestamp in rows
        )

    def unsubscribe(self, contact_id: str, at: datetime) -> bool:
        """Set the contact's stored consent to unsubscribed; False for an unknown contact."""
        with self._sessions.begin() as session:
            row = session.get(ContactRow, contact_id)
            if row is None:
                return False
            consent = Consent.model_validate(row.consent or {})
            consent.subscribed = False
            consent.unsubscribed_at = consent.unsubscribed_at or at
            row.consent = consent.model_dump(mode="json")
            row.updated_at = at
        return True


def summarise(events: Iterable[tuple[str, dict[str, Any], datetime]]) -> DeliverabilityFacts:
    """Deliverability facts from (name, properties, time) triples."""
    bounced = complained = False
    last_sales: datetime | None = None
    for name, properties, at in events:
        bounced = bounced or (name == BOUNCE_EVENT and is_hard_bounce(properties))
        complained = complained or name == COMPLAINT_EVENT
        if name in SALES_OUTREACH_EVENTS and (last_sales is None or at > last_sales):
            last_sales = at
    return DeliverabilityFacts(bounced, complained, last_sales)
