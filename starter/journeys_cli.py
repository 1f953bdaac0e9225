"""``revops journeys``: validate, deploy, list, show, history, roll back, simulate, A/B tests.

Journeys follow the same definition life cycle as every other kind, run by the same code
(``starter.definitions_cli``; registry kind ``journey``, one name per journey), with two
additions: ``simulate`` runs a journey against simulated time in seconds, and ``ab-report``
reads its split tests. Deploying a new version never touches running enrollments: they finish
on the version they started with.

Exit codes: 0 done, 1 no such journey, 2 an invalid definition or argument (nothing stored),
3 the store is unreachable.
"""

from __future__ import annotations

import asyncio
import json
from datetime import time
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from pydantic import BaseModel
from rich.table import Table

from analysis.ab_test import ArmResult, SplitReport, read_split
from definitions import (
    JOURNEY,
    POLICIES,
    Definitions,
    from_registry,
    load_journey_library,
    read_file,
)
from journeys.definition import JourneyDefinition, journey_json_schema
from journeys.enrollment import Trigger
from journeys.program import Program, step_kind
from revops.errors import ConfigError, NotFound
from revops.logging import configure_logging
from revops.settings import Settings
from starter.common import console, fail, open_store, settings
from starter.definitions_cli import add_definition_commands
from starter.journey_errors import register as register_errors
from starter.journey_stats import register as register_stats
from starter.output import JsonFlag, Moment, emit
from starter.simulate import SimulationResult, load_timeline, simulate
from store.engagement import EngagementBook
from store.journeys import JourneyLog
from store.registry import Registry, diff_bodies

__all__ = ["journeys_app"]

Metric = Literal["conversions", "clicks"]

journeys_app = typer.Typer(
    help="Journeys: validate, deploy, roll back, simulate with time travel, A/B reports.",
    no_args_is_help=True,
)
add_definition_commands(journeys_app, JOURNEY)
register_stats(journeys_app)
register_errors(journeys_app)


# ---- helpers ------------------------------------------------------------------------------------


def _find(name: str, current: Settings, *, deployed: bool) -> JourneyDefinition:
    """A journey by path, by name in the library, or (``deployed``, or else) in the registry."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return read_file(JOURNEY, path)
    if not deployed:
        for journey in load_journey_library(current.journeys_dir):
            if journey.name == name:
                return journey
    row = Registry(open_store(current)).active(JOURNEY.name, name)
    if row is None:
        fail(f"no journey named {name!r} (not in {current.journeys_dir}, never deployed)", 1)
    return from_registry(row)


def _trigger(trigger: Trigger | None) -> str:
    if trigger is None:
        return "on request (enroll step, recycle)"
    if trigger.kind == "event":
        props = ", ".join(f"{k}={v}" for k, v in trigger.properties.items())
        return f"event {trigger.event}" + (f" ({props})" if props else "")
    if trigger.kind == "list_entered":
        return f"list {trigger.list}"
    return f"stage {trigger.stage}"


def _steps(journey: JourneyDefinition) -> list[StepLine]:
    program = Program.of(journey)
    return [
        StepLine(number=number, kind=step_kind(program.steps[step_id]), id=step_id)
        for step_id, number in program.numbers.items()
    ]


def _outline(steps: list[StepLine]) -> None:
    for step in steps:
        console.print(f"  {step.number:>3}. {step.kind:<9} {step.id}", highlight=False)


# ---- schema (validate, deploy, rollback, history: starter.definitions_cli) -------------------


@journeys_app.command("schema")
def schema(
    output: Annotated[
        Path | None, typer.Option(help="Where to write it (default config/journeys/schema.json).")
    ] = None,
) -> None:
    """Write the JSON Schema of journey files (editors validate YAML with it)."""
    target = output or settings().journeys_dir / "schema.json"
    target.write_text(schema_text(), encoding="utf-8")
    console.print(f"wrote {target}")


def schema_text() -> str:
    """The schema file's exact content (a test checks the committed file against it)."""
    return json.dumps(journey_json_schema(), indent=2, sort_keys=True) + "\n"


# ---- list / show --------------------------------------------------------------------------------


class JourneySummary(BaseModel):
    """One journey in ``journeys list``; ``deployed`` false means the library file is used."""

    name: str
    deployed: bool
    version: int
    trigger: Trigger | None
    priority: int | None
    category: str | None
    exclusivity_group: str | None
    steps: int


class JourneyList(BaseModel):
    """``journeys list``: every journey new enrollments would use now."""

    journeys: list[JourneySummary]


class StepLine(BaseModel):
    """One step of a journey version, numbered in the order the program runs it."""

    number: int
    kind: str
    id: str


class JourneyVersion(BaseModel):
    """One deployed version; ``diff`` is the unified diff from the version before it."""

    version: int
    deployed_at: Moment
    author: str
    comment: str
    active: bool
    diff: str | None


class JourneyDetail(BaseModel):
    """``journeys show``: the versions with their diffs and the steps of one version."""

    name: str
    deployed: bool
    versions: list[JourneyVersion]
    shown_version: int
    steps: list[StepLine]


@journeys_app.command("list")
def list_journeys(as_json: JsonFlag = False) -> None:
    """Every journey: deployed versions, and library files never deployed."""
    current = settings()
    definitions = Definitions.of(open_store(current), current)
    defaults = definitions.get(POLICIES).priorities
    lines = []
    for active in definitions.catalog().values():
        journey = active.model
        priority = journey.priority
        if priority is None:
            priority = defaults.get(journey.category or "")
        lines.append(
            JourneySummary(
                name=journey.name,
                deployed=active.version is not None,
                version=journey.version,
                trigger=journey.trigger,
                priority=priority,
                category=journey.category,
                exclusivity_group=journey.exclusivity_group,
                steps=Program.of(journey).size,
            )
        )
    emit(JourneyList(journeys=lines), as_json, _print_list)


def _print_list(view: JourneyList) -> None:
    table = Table()
    table.add_column("journey", no_wrap=True)
    for column in ("version", "trigger", "priority", "group", "steps"):
        table.add_column(column)
    for line in view.journeys:
        table.add_row(
            line.name,
            f"v{line.version}" if line.deployed else "file",
            _trigger(line.trigger),
            f"{line.priority} {line.category or ''}".strip(),
            line.exclusivity_group or "-",
            str(line.steps),
        )
    console.print(table)


@journeys_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="The journey's name.")],
    version: Annotated[int | None, typer.Option(help="Outline this version.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Versions, the diff between consecutive versions, and the steps of one version."""
    current = settings()
    store = open_store(current)
    registry = Registry(store)
    rows = registry.versions(JOURNEY.name, name)
    if not rows:
        journey = _find(name, current, deployed=False)
        view = JourneyDetail(
            name=name,
            deployed=False,
            versions=[],
            shown_version=journey.version,
            steps=_steps(journey),
        )
        emit(view, as_json, _print_detail)
        return
    active = registry.active(JOURNEY.name, name)
    diffs = {
        after.version: diff_bodies(before.body, after.body, f"journey/{name} v{after.version}")
        for before, after in pairwise(rows)
    }
    versions = [
        JourneyVersion(
            version=row.version,
            deployed_at=row.created_at,
            author=row.author,
            comment=row.comment,
            active=active is not None and row.version == active.version,
            diff=diffs.get(row.version),
        )
        for row in rows
    ]
    chosen = version or (active.version if active else rows[-1].version)
    try:
        shown = from_registry(registry.get(JOURNEY.name, name, chosen))
    except NotFound as exc:
        fail(str(exc), 1)
    view = JourneyDetail(
        name=name, deployed=True, versions=versions, shown_version=chosen, steps=_steps(shown)
    )
    emit(view, as_json, _print_detail)


def _print_detail(view: JourneyDetail) -> None:
    if not view.deployed:
        console.print(f"journey {view.name}: not deployed; the library file defines:")
        _outline(view.steps)
        return
    table = Table("version", "deployed", "by", "comment", "active")
    for line in view.versions:
        when = line.deployed_at.isoformat(timespec="seconds")
        active = "yes" if line.active else ""
        table.add_row(f"v{line.version}", when, line.author, line.comment, active)
    console.print(table)
    for line in view.versions[1:]:
        console.print(line.diff or "(no change)", highlight=False)
    console.print(f"steps of v{view.shown_version}:")
    _outline(view.steps)


# ---- A/B --------------------------------------------------------------------------------------


@journeys_app.command("ab-report")
def ab_report(
    name: Annotated[str, typer.Argument(help="The journey's name.")],
    confidence: Annotated[float, typer.Option(min=0.5, max=0.999)] = 0.95,
    min_sample: Annotated[int, typer.Option(min=1, help="Sends per variant needed.")] = 100,
    metric: Annotated[
        Metric, typer.Option(help="Success is a goal conversion, or a click on the email.")
    ] = "conversions",
    as_json: JsonFlag = False,
) -> None:
    """Per-variant sends, goal conversions and clicks; a winner only when significant."""
    store = open_store(settings())
    stats = JourneyLog(store).variant_stats(name)
    if not stats:
        fail(f"journey {name}: no split assignments recorded yet", 1)
    clicks = {(c.step, c.variant): c.clicked for c in EngagementBook(store).variant_clicks(name)}
    steps: dict[str, list[ArmResult]] = {}
    clicked: dict[tuple[str, str], int] = {}
    for s in stats:
        clicked[s.step_id, s.variant] = clicks.get((s.step_id, s.variant), 0)
        wins = s.converted if metric == "conversions" else clicked[s.step_id, s.variant]
        steps.setdefault(s.step_id, []).append(ArmResult(s.variant, s.assigned, s.sent, wins))
    converted = {(s.step_id, s.variant): s.converted for s in stats}
    reports = [
        read_split(step, arms, confidence=confidence, min_sample=min_sample)
        for step, arms in steps.items()
    ]
    if as_json:
        document = {
            "journey": name,
            "metric": metric,
            "splits": [_report_json(r, converted, clicked) for r in reports],
        }
        print(json.dumps(document))
        return
    for report in reports:
        _print_report(name, report, metric)


def _report_json(
    report: SplitReport,
    converted: dict[tuple[str, str], int],
    clicked: dict[tuple[str, str], int],
) -> dict[str, Any]:
    return {
        "step": report.step,
        "winner": report.winner,
        "p_value": report.p_value,
        "verdict": report.verdict,
        "variants": [
            {
                "variant": a.variant,
                "assigned": a.assigned,
                "sent": a.sent,
                "converted": converted[report.step, a.variant],
                "clicked": clicked[report.step, a.variant],
                "rate": a.rate,
            }
            for a in report.arms
        ],
    }


def _print_report(name: str, report: SplitReport, metric: str) -> None:
    what = "conversions" if metric == "conversions" else "clickers"
    table = Table("variant", "assigned", "sends", what, "rate", title=f"{name}: {report.step}")
    for arm in report.arms:
        table.add_row(
            arm.variant, str(arm.assigned), str(arm.sent), str(arm.converted), f"{arm.rate:.1%}"
        )
    console.print(table)
    console.print(report.verdict, highlight=False)


# ---- simulate ---------------------------------------------------------------------------------


@journeys_app.command("simulate")
def simulate_command(
    name: Annotated[str, typer.Argument(help="A journey name, or a journey file.")],
    events: Annotated[
        Path | None, typer.Option("--events", help="A timeline YAML of what the contact does.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per step.")] = False,
    start_at: Annotated[str, typer.Option(help="Local time the journey starts at.")] = "10:00",
    deployed: Annotated[
        bool, typer.Option("--deployed", help="Use the deployed version, not the library file.")
    ] = False,
) -> None:
    """Run the journey for a synthetic contact in simulated time; nothing is really sent."""
    current = settings()
    configure_logging(current.log_format, "WARNING")
    try:
        starts = time.fromisoformat(start_at)
    except ValueError:
        fail(f"--start-at {start_at!r} is not a time like 10:00", 2)
    try:
        timeline = load_timeline(events) if events is not None else None
        journey = _find(name, current, deployed=deployed)
        result = asyncio.run(
            simulate(journey, timeline, config_dir=current.config_dir, start_at=starts)
        )
    except ConfigError as exc:
        fail(str(exc), 2)
    _print_simulation(result, as_json)


def _print_simulation(result: SimulationResult, as_json: bool) -> None:
    if as_json:
        for step in result.steps:
            line = step.model_dump(mode="json")
            print(json.dumps(line), flush=True)
        return
    started = f"{result.started_at:%Y-%m-%d %H:%M}"
    table = Table(title=f"{result.journey} v{result.version}, simulated from {started} UTC")
    for column in ("day", "when (UTC)", "step", "outcome"):
        table.add_column(column, no_wrap=True)
    table.add_column("subject / detail")
    for step in result.steps:
        table.add_row(
            f"{step.day:g}",
            f"{step.at:%a %m-%d %H:%M}",
            step.step,
            step.outcome,
            step.subject or step.detail,
        )
    console.print(table)
    console.print(
        f"outcome {result.outcome}: {len(result.emails)} email(s), "
        f"{len(result.http_posts)} HTTP post(s), in {result.elapsed_seconds:.1f} s of real time",
        highlight=False,
    )
