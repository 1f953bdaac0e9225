"""What every revenue report is asked for: a period, a segment, and when it was made.

``revops reports ...`` and the dashboard build one ``ReportWindow`` from their options and
pass it to the store's report queries; each report view echoes it back, so a JSON document or
a chart says which period and segment its numbers are for. ``rate`` and ``seconds_text`` are
the arithmetic and wording the reports share.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, model_validator

__all__ = ["EPOCH", "ReportWindow", "rate", "seconds_text"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""The lower bound of "all time"."""


class ReportWindow(BaseModel):
    """The period ``[since, until)`` (``since`` None: all time) and an optional segment."""

    model_config = ConfigDict(frozen=True)

    since: datetime | None = None
    until: datetime
    segment: str | None = None
    generated_at: datetime

    @model_validator(mode="after")
    def _ordered(self) -> ReportWindow:
        if self.since is not None and self.since >= self.until:
            raise ValueError("since must be before until")
        return self

    @property
    def start(self) -> datetime:
        """The lower bound to query with (the epoch for all time)."""
        return self.since or EPOCH


def rate(part: int | float, whole: int | float) -> float | None:
    """``part / whole`` rounded to 4 places; None when there is nothing to divide by."""
    return round(part / whole, 4) if whole else None


def seconds_text(seconds: float | None) -> str:
    """A duration for people: ``45s``, ``12m``, ``5.5h``, ``3.2d``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    if seconds < 90:
        return f"{seconds:.0f}s"
    minutes = seconds / 60
    if minutes < 90:
        return f"{minutes:.0f}m"
    hours = minutes / 60
    return f"{hours:.1f}h" if hours < 48 else f"{hours / 24:.1f}d"
