"""A simple revenue forecast: the leads in the funnel now, at the conversion of the recent past.

For MQLs (MQL or SAL now) and SQLs (SQL or Opportunity now): how many there are, times the
share of the trailing window's passes that went from that stage to Customer, times the average
deal won in that window. Deliberately simple: recent leads have had less time to convert, so
it leans low when the window is short.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from analysis.report_window import ReportWindow, rate

__all__ = ["ForecastInput", "ForecastLine", "ForecastReport", "forecast_report"]


class ForecastInput(BaseModel):
    """One bucket as the store counts it: leads now, and the trailing window's outcomes."""

    stage: str
    current: int
    trailing_reached: int
    trailing_won: int


class ForecastLine(BaseModel):
    """Expected customers and revenue from one bucket."""

    stage: str
    current: int
    trailing_reached: int
    trailing_won: int
    conversion: float | None
    expected_customers: float
    expected_revenue: float


class ForecastReport(BaseModel):
    """Expected revenue from the leads in the funnel now."""

    generated_at: datetime
    since: datetime | None
    until: datetime
    segment: str | None
    deals_won: int
    average_deal_size: float | None
    lines: list[ForecastLine]
    expected_customers: float
    expected_revenue: float

    def csv_rows(self) -> list[dict[str, Any]]:
        """One row per bucket."""
        return [line.model_dump(mode="json") for line in self.lines]


def forecast_report(
    window: ReportWindow, buckets: list[ForecastInput], deals_won: int, won_amount: float
) -> ForecastReport:
    """Current leads x trailing conversion to customer x average deal size."""
    average = won_amount / deals_won if deals_won else None
    lines = []
    for bucket in buckets:
        exact = bucket.trailing_won / bucket.trailing_reached if bucket.trailing_reached else 0.0
        customers = bucket.current * exact
        lines.append(
            ForecastLine(
                **bucket.model_dump(),
                conversion=rate(bucket.trailing_won, bucket.trailing_reached),
                expected_customers=round(customers, 2),
                expected_revenue=round(customers * (average or 0.0), 2),
            )
        )
    return ForecastReport(
        generated_at=window.generated_at,
        since=window.since,
        until=window.until,
        segment=window.segment,
        deals_won=deals_won,
        average_deal_size=round(average, 2) if average is not None else None,
        lines=lines,
        expected_customers=round(sum(line.expected_customers for line in lines), 2),
        expected_revenue=round(sum(line.expected_revenue for line in lines), 2),
    )
