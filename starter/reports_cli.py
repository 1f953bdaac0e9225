"""``revops reports``: reports sales and RevOps read together, starting with SLA attainment.

``revops reports sla [--since DATE] [--target 0.8] [--json]`` reads the handoff SLA records
from the store (``store.sla``) and prints attainment per team and per rep, the median and p90
time to first touch, and flags every team under the target as a capacity problem.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

import typer
from rich.table import Table

from revops.errors import ConfigError
from revops.handoff import load_handoff_settings
from revops.sla_report import SlaLine, SlaReport, sla_report
from starter.common import console, fail, open_store, settings
from store.sla import SlaBook

__all__ = ["reports_app"]

reports_app = typer.Typer(help="Reports: SLA attainment and speed-to-lead.", no_args_is_help=True)


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(
            f"{value!r} is not a date (YYYY-MM-DD)", param_hint="--since"
        ) from exc
    return datetime.combine(day, time(0), tzinfo=UTC)


@reports_app.command("sla")
def reports_sla(
    since: Annotated[
        str | None, typer.Option(help="Only handoffs whose MQL is on or after this date (UTC).")
    ] = None,
    target: Annotated[
        float | None,
        typer.Option(help="Attainment below this is a capacity problem (default: handoff.yaml)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """SLA attainment per team and rep, time to first touch, capacity problems flagged."""
    start = _since(since)
    if target is not None and not 0 < target <= 1:
        raise typer.BadParameter("must be between 0 and 1, e.g. 0.8", param_hint="--target")
    current = settings()
    if target is None:
        try:
            target = load_handoff_settings(current.config_dir / "handoff.yaml").attainment_target
        except ConfigError as exc:
            fail(str(exc), 2)
    records = SlaBook(open_store(current)).records(since=start)
    report = sla_report(records, datetime.now(UTC), target=target, since=start)
    if as_json:
        print(json.dumps(report.model_dump(mode="json"), indent=2))
        return
    _print(report)


def _duration(value: timedelta | None) -> str:
    if value is None:
        return "-"
    minutes = value.total_seconds() / 60
    if minutes < 90:
        return f"{minutes:.0f}m"
    hours = minutes / 60
    return f"{hours:.1f}h" if hours < 48 else f"{hours / 24:.1f}d"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _table(title: str, label: str, lines: list[SlaLine], target: float) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(label)
    for column in ("turns", "met", "breached", "open", "attainment", "median 1st touch"):
        table.add_column(column, justify="right")
    table.add_column("p90 1st touch", justify="right")
    table.add_column("")
    for line in lines:
        flag = f"[red]capacity problem (< {target:.0%})[/red]" if line.capacity_problem else ""
        table.add_row(
            line.name,
            str(line.turns),
            str(line.met),
            str(line.breached),
            str(line.open),
            _percent(line.attainment),
            _duration(line.median_first_touch),
            _duration(line.p90_first_touch),
            flag,
        )
    return table


def _print(report: SlaReport) -> None:
    window = f"since {report.since:%Y-%m-%d}" if report.since else "all time"
    overall = report.overall
    console.print(
        f"SLA attainment, {window}: {report.handoffs} handoffs, "
        f"{_percent(overall.attainment)} met ({overall.met} of {overall.met + overall.breached} "
        f"decided, {overall.open} open); first touch median {_duration(overall.median_first_touch)}"
        f", p90 {_duration(overall.p90_first_touch)}",
        highlight=False,
    )
    console.print(_table("Per team", "team", report.teams, report.target))
    console.print(_table("Per rep", "rep", report.reps, report.target))
    flagged = [line.name for line in report.teams if line.capacity_problem]
    if flagged:
        console.print(
            f"[red]Capacity problem:[/red] {', '.join(flagged)} under {report.target:.0%} "
            "attainment: add reps or capacity, or route fewer leads there.",
            highlight=False,
        )
