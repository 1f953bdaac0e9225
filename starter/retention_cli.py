"""``revops retention``: the event retention schedule, a run now, and the report of runs.

Events older than ``REVOPS_EVENT_RETENTION_DAYS`` (or ``--days``) become daily counts and are
deleted (``store/retention.py``) by ``RetentionWorkflow``, which a Temporal Schedule starts
(daily by default). docs/privacy.md, "Retention".
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Annotated

import typer
from pydantic import BaseModel
from rich.table import Table
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from models.retention import RetentionReport, RetentionRequest
from revops.durations import parse_duration
from revops.settings import Settings
from revops.temporal import connect
from starter.common import console, fail, open_store, run_async, settings
from starter.output import JsonFlag, emit
from store.retention import Retention
from workflows.retention import RETENTION_SCHEDULE_ID, RetentionWorkflow

__all__ = ["retention_app", "retention_schedule"]

retention_app = typer.Typer(help="Event retention: schedule, run, report.", no_args_is_help=True)

Days = Annotated[
    int | None,
    typer.Option("--days", min=1, help="Age in days (default REVOPS_EVENT_RETENTION_DAYS)."),
]


class RetentionRuns(BaseModel):
    """``revops retention report``: recent runs, newest first."""

    runs: list[RetentionReport]


def _days(current: Settings, days: int | None) -> int:
    chosen = days or current.event_retention_days
    if chosen is None:
        fail("give --days or set REVOPS_EVENT_RETENTION_DAYS", 2)
    return chosen


def retention_schedule(client: Client, current: Settings, days: int, every: timedelta) -> Schedule:
    """The schedule: a RetentionWorkflow every ``every``, one at a time."""
    return Schedule(
        action=ScheduleActionStartWorkflow(
            RetentionWorkflow.run,
            RetentionRequest(older_than_days=days),
            id=f"{RETENTION_SCHEDULE_ID}-run",
            task_queue=current.task_queue,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


@retention_app.command("schedule")
def schedule(
    days: Days = None,
    every: Annotated[str, typer.Option("--every", help="How often (1d, 12h, ...).")] = "1d",
) -> None:
    """Create (or update) the Temporal Schedule that purges old events."""
    current = settings()
    chosen = _days(current, days)
    try:
        interval = parse_duration(every)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--every") from exc

    async def _apply() -> str:
        client = await connect(current)
        wanted = retention_schedule(client, current, chosen, interval)
        try:
            await client.create_schedule(RETENTION_SCHEDULE_ID, wanted)
            return "created"
        except ScheduleAlreadyRunningError:

            def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
                return ScheduleUpdate(schedule=wanted)

            await client.get_schedule_handle(RETENTION_SCHEDULE_ID).update(replace)
            return "updated"

    done = run_async(_apply())
    console.print(
        f"schedule {RETENTION_SCHEDULE_ID} {done}: every {every}, events older than {chosen} days"
    )


def _print_report(view: RetentionReport) -> None:
    console.print(
        f"removed {view.events_removed} events older than {view.cutoff:%Y-%m-%d %H:%M} UTC "
        f"into {view.aggregate_rows} daily counts"
    )
    for name, count in sorted(view.by_event.items(), key=lambda kv: -kv[1])[:10]:
        console.print(f"  {count:>8}  {name}", highlight=False)


@retention_app.command("run")
def run_now(days: Days = None, as_json: JsonFlag = False) -> None:
    """Run the retention once now (what the schedule does) and print its report."""
    current = settings()
    chosen = _days(current, days)

    async def _run() -> RetentionReport:
        client = await connect(current)
        return await client.execute_workflow(
            RetentionWorkflow.run,
            RetentionRequest(older_than_days=chosen),
            id=f"{RETENTION_SCHEDULE_ID}-manual-{int(time.time())}",
            task_queue=current.task_queue,
        )

    emit(run_async(_run()), as_json, _print_report)


def _print_runs(view: RetentionRuns) -> None:
    table = Table(
        "ran at (UTC)", "cutoff", "events removed", "daily counts", title="retention runs"
    )
    for run in view.runs:
        table.add_row(
            f"{run.ran_at:%Y-%m-%d %H:%M}",
            f"{run.cutoff:%Y-%m-%d %H:%M}",
            str(run.events_removed),
            str(run.aggregate_rows),
        )
    console.print(table)


@retention_app.command("report")
def report(as_json: JsonFlag = False) -> None:
    """What the recent retention runs removed (newest first)."""
    store = open_store(settings())
    emit(RetentionRuns(runs=Retention(store).runs()), as_json, _print_runs)
