"""The retention run a Temporal Schedule starts (``revops retention schedule``).

One activity does the work (``purge_old_events``: batches, each one transaction); the
workflow exists so the schedule, its history and its result (the report of what was removed)
live in Temporal beside the rest, with retries and overlap handled by the schedule.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.retention import RetentionActivities
    from models.retention import RetentionReport, RetentionRequest

__all__ = ["RETENTION_SCHEDULE_ID", "RetentionWorkflow"]

RETENTION_SCHEDULE_ID = "revops-retention"


@workflow.defn
class RetentionWorkflow:
    """Purge events older than the request's age; returns the report."""

    @workflow.run
    async def run(self, request: RetentionRequest) -> RetentionReport:
        """One run: the activity, retried on failure (each batch it finished stays done)."""
        return await workflow.execute_activity_method(
            RetentionActivities.purge_old_events,
            request,
            start_to_close_timeout=timedelta(hours=2),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=5), maximum_attempts=5),
            summary=f"purge events older than {request.older_than_days} days",
        )
