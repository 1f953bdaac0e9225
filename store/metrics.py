"""What the store says about the running system, for metrics, the error-rate view and alerts.

Read when Prometheus scrapes (``gateway/metrics.py``) and by ``revops journeys errors``:
outbox depth and its oldest item's age, handoffs by SLA state and breaches, and each
journey's send steps and failures in a recent window. Each query rides an index (outbox
pending, sends by creation time, the small SLA table), so a scrape every 15 s costs little.

A journey step counts as failed when its send's last attempt raised (the ledger's ``failed``
status: the journey recorded the step as failed, or Temporal is retrying it); the rate is
failed over all send steps the journey started in the window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import case, func, select

from store.effects import SendRow
from store.repo import Store
from store.schema import OutboxRow
from store.sla import SlaRow

__all__ = ["JourneyErrorRate", "StoreSnapshot", "journey_error_rates", "snapshot"]

FAILED = "failed"


@dataclass(frozen=True)
class JourneyErrorRate:
    """One journey's send steps in a window: how many, how many failed, and the rate."""

    journey: str
    steps: int
    failed: int

    @property
    def rate(self) -> float:
        """Failed over all steps (0 without steps)."""
        return self.failed / self.steps if self.steps else 0.0


@dataclass(frozen=True)
class StoreSnapshot:
    """The store-derived gauges at one moment."""

    outbox_pending: int
    outbox_oldest_seconds: float
    sla_open: dict[str, int] = field(default_factory=dict)
    sla_breaches: int = 0
    journeys: list[JourneyErrorRate] = field(default_factory=list)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def journey_error_rates(store: Store, since: datetime) -> list[JourneyErrorRate]:
    """Each journey's send steps created since ``since`` and how many failed, by name."""
    failed = func.sum(case((SendRow.status == FAILED, 1), else_=0))
    query = (
        select(SendRow.journey, func.count(), failed)
        .where(SendRow.created_at >= since, SendRow.journey.is_not(None))
        .group_by(SendRow.journey)
        .order_by(SendRow.journey)
    )
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [JourneyErrorRate(str(j), int(n), int(f or 0)) for j, n, f in rows]


def snapshot(store: Store, now: datetime, since: datetime) -> StoreSnapshot:
    """Outbox, SLA and journey facts now (journeys over the window from ``since``)."""
    pending = select(func.count(), func.min(OutboxRow.created_at)).where(
        OutboxRow.delivered_at.is_(None)
    )
    open_slas = (
        select(SlaRow.state, func.count()).where(SlaRow.outcome.is_(None)).group_by(SlaRow.state)
    )
    with store.engine.connect() as conn:
        count, oldest = conn.execute(pending).one()
        states = {str(state): int(n) for state, n in conn.execute(open_slas).all()}
        breaches = conn.execute(select(func.coalesce(func.sum(SlaRow.breaches), 0))).scalar()
    age = max((now - _aware(oldest)).total_seconds(), 0.0) if oldest is not None else 0.0
    return StoreSnapshot(
        outbox_pending=int(count or 0),
        outbox_oldest_seconds=age,
        sla_open=states,
        sla_breaches=int(breaches or 0),
        journeys=journey_error_rates(store, since),
    )
