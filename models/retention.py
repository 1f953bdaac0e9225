"""The retention run's contract: what to purge, and the report of what was removed."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

__all__ = ["RetentionReport", "RetentionRequest"]


class RetentionRequest(BaseModel):
    """Purge events older than ``older_than_days`` (counted back from the run's start)."""

    older_than_days: int = Field(ge=1)


class RetentionReport(BaseModel):
    """What one retention run removed: events by name, kept as daily counts."""

    ran_at: datetime
    cutoff: datetime
    events_removed: int = 0
    aggregate_rows: int = 0
    """Daily count rows (day, type, name) written or added to."""
    by_event: dict[str, int] = Field(default_factory=dict)
    """Events removed per event name."""
