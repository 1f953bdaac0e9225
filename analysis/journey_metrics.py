"""Journey performance and list sizes over time: the views the store's aggregates fill.

A journey's numbers come from three records: the send ledger (what went out, per journey and
step), the engagement events the email tracking produces ("Email Opened" / "Email Clicked"
with ``journey`` and ``step`` properties) and the goal conversions journeys record, plus the
pipeline and revenue attribution credits to the journey. Rates are over contacts, not sends:
``open_rate`` is contacts who opened over contacts sent to.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel

__all__ = [
    "JourneyLine",
    "JourneysReport",
    "ListSeries",
    "ListSizes",
    "StepLine",
]


class JourneyLine(BaseModel):
    """One journey's sends, engagement, goal conversions and attributed pipeline."""

    journey: str
    sends: int
    recipients: int
    opens: int
    openers: int
    clicks: int
    clickers: int
    open_rate: float | None
    click_rate: float | None
    conversions: int
    pipeline: float
    revenue: float


class StepLine(BaseModel):
    """One step of one journey: sends, opens and clicks."""

    journey: str
    step: str
    sends: int
    opens: int
    clicks: int


class JourneysReport(BaseModel):
    """Every journey with activity in the period, most sends first."""

    generated_at: datetime
    since: datetime | None
    until: datetime
    segment: str | None
    model: str
    journeys: list[JourneyLine]
    steps: list[StepLine]

    def csv_rows(self) -> list[dict[str, Any]]:
        """One row per journey."""
        return [line.model_dump(mode="json") for line in self.journeys]


class ListSeries(BaseModel):
    """Members of one list at the end of each day."""

    list_name: str
    members: list[int]


class ListSizes(BaseModel):
    """List sizes over the days of a period (the dashboard's chart)."""

    days: list[date]
    lists: list[ListSeries]
