"""The retention activity: purge old events into daily counts (``store.retention``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio import activity

from models.retention import RetentionReport, RetentionRequest
from revops.logging import get_logger
from store.repo import Store
from store.retention import Retention

__all__ = ["RetentionActivities"]

log = get_logger(__name__)


class RetentionActivities:
    """Event retention over the store."""

    def __init__(self, store: Store) -> None:
        self._retention = Retention(store)

    @activity.defn(name="purge_old_events")
    def purge_old_events(self, request: RetentionRequest) -> RetentionReport:
        """Aggregate and delete events older than the request's age; idempotent (a retry
        finds fewer events, and counts are added only for events it deletes)."""
        now = datetime.now(UTC)
        cutoff = now - timedelta(days=request.older_than_days)
        report = self._retention.purge(cutoff, now)
        log.info("events_purged", removed=report.events_removed, cutoff=cutoff.isoformat())
        return report
