"""``revops journeys errors``: each journey's error rate, the view behind the 1% alert.

Failed send steps over all send steps each journey started in the window (default the alert's
window, ``REVOPS_JOURNEY_ERROR_RATE_WINDOW_MINUTES``), flagged against the alert threshold
(``REVOPS_JOURNEY_ERROR_RATE_THRESHOLD``, 1%). The same numbers are on the gateway's
``/metrics`` (``revops_journey_error_rate``) and drive ``gateway.metrics.ErrorRateWatch``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from pydantic import BaseModel
from rich.table import Table

from starter.common import console, open_store, settings
from starter.output import JsonFlag, Moment, emit
from store.metrics import journey_error_rates

__all__ = ["JourneyErrors", "register"]


class JourneyErrorLine(BaseModel):
    """One journey in the window."""

    journey: str
    steps: int
    failed: int
    rate: float
    over_threshold: bool


class JourneyErrors(BaseModel):
    """Every journey with send steps in the window."""

    since: Moment
    threshold: float
    min_steps: int
    journeys: list[JourneyErrorLine]


def _print(view: JourneyErrors) -> None:
    if not view.journeys:
        console.print(f"No journey send steps since {view.since:%Y-%m-%d %H:%M} UTC.")
        return
    table = Table("journey", "send steps", "failed", "error rate", "alert")
    for line in view.journeys:
        flag = f"over {view.threshold:.1%}" if line.over_threshold else ""
        table.add_row(line.journey, str(line.steps), str(line.failed), f"{line.rate:.2%}", flag)
    console.print(f"Since {view.since:%Y-%m-%d %H:%M} UTC (alerts from {view.min_steps} steps):")
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add ``errors`` to the journeys command group."""

    @app.command("errors")
    def errors(
        minutes: Annotated[
            float | None,
            typer.Option(min=1, help="Window in minutes (default: the alert's window)."),
        ] = None,
        as_json: JsonFlag = False,
    ) -> None:
        """Failed over all send steps per journey in the window, against the alert threshold."""
        current = settings()
        window = minutes or current.journey_error_rate_window_minutes
        since = datetime.now(UTC) - timedelta(minutes=window)
        threshold, minimum = (
            current.journey_error_rate_threshold,
            current.journey_error_rate_min_steps,
        )
        lines = [
            JourneyErrorLine(
                journey=row.journey,
                steps=row.steps,
                failed=row.failed,
                rate=round(row.rate, 6),
                over_threshold=row.steps >= minimum and row.rate > threshold,
            )
            for row in journey_error_rates(open_store(current), since)
        ]
        view = JourneyErrors(since=since, threshold=threshold, min_steps=minimum, journeys=lines)
        emit(view, as_json, _print)
