"""``revops journeys stats NAME``: campaign metrics per step and A/B variant.

Sent, delivered, opened and clicked (unique: distinct emails a person opened or clicked;
machine prefetches and link scanners left out), bounced, complained, unsubscribed and goal
conversions (enrollments that got the step and reached the journey's goal), counted by one
SQL aggregation in the store (``store.engagement``); for a journey with a ``holdout``, goal
conversion of the enrolled against the held out with the lift and its confidence interval.
Delivered, bounced and complained come from the provider's event webhook; opened and clicked
from our tracking or the provider.
"""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import BaseModel
from rich.table import Table

from analysis.holdout import HoldoutReport
from starter.common import console, fail, open_store, settings
from starter.output import JsonFlag, emit
from store.engagement import EngagementBook, StepStats
from store.journeys import JourneyLog

__all__ = ["JourneyStats", "StepMetrics", "register"]


class StepMetrics(BaseModel):
    """One step (and variant) of a journey."""

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
    """Every human open, repeats included."""
    machine_opens: int
    clicks: int
    """Every human click, repeats included."""
    open_rate: float
    click_rate: float


class JourneyStats(BaseModel):
    """A journey's campaign metrics."""

    journey: str
    steps: list[StepMetrics]
    holdout: HoldoutReport | None = None
    """Goal conversion of the enrolled against the held out (journeys with a ``holdout``)."""


def _metrics(row: StepStats) -> StepMetrics:
    def share(count: int) -> float:
        return round(count / row.sent, 4) if row.sent else 0.0

    return StepMetrics(**row.__dict__, open_rate=share(row.opened), click_rate=share(row.clicked))


def _print(view: JourneyStats) -> None:
    table = Table(
        "step",
        "variant",
        "sent",
        "delivered",
        "opened",
        "clicked",
        "bounced",
        "complaints",
        "unsubscribed",
        "conversions",
        title=f"{view.journey}: campaign metrics (unique opens and clicks)",
    )
    for line in view.steps:
        table.add_row(
            line.step,
            line.variant or "",
            str(line.sent),
            str(line.delivered),
            f"{line.opened} ({line.open_rate:.0%})",
            f"{line.clicked} ({line.click_rate:.0%})",
            str(line.bounced),
            str(line.complained),
            str(line.unsubscribed),
            str(line.conversions),
        )
    console.print(table)
    if view.holdout is not None:
        _print_holdout(view.holdout)


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _print_holdout(report: HoldoutReport) -> None:
    table = Table("group", "contacts", "converted", "conversion", title="holdout: goal conversion")
    for name, group in (("enrolled", report.enrolled), ("held out", report.held_out)):
        table.add_row(name, str(group.contacts), str(group.converted), _rate(group.rate))
    console.print(table)
    if report.lift is None or report.ci_low is None or report.ci_high is None:
        console.print("lift: not yet measurable (a group is empty)")
        return
    verdict = "significant" if report.significant else "not significant"
    console.print(
        f"lift: {report.lift * 100:+.1f} points ({report.confidence:.0%} CI "
        f"{report.ci_low * 100:+.1f} to {report.ci_high * 100:+.1f}; {verdict})",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Add ``stats`` to the journeys command group."""

    @app.command("stats")
    def stats(
        name: Annotated[str, typer.Argument(help="The journey's name.")],
        as_json: JsonFlag = False,
    ) -> None:
        """Sent, delivered, unique opens and clicks, bounces, complaints, unsubscribes and
        goal conversions per step and A/B variant."""
        store = open_store(settings())
        rows = EngagementBook(store).stats(name)
        holdout = JourneyLog(store).holdout(name)
        if not rows and holdout is None:
            fail(f"journey {name}: no emails sent yet", 1)
        view = JourneyStats(journey=name, steps=[_metrics(r) for r in rows], holdout=holdout)
        emit(view, as_json, _print)
