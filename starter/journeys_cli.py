"""``revops journeys``: validate, deploy, list, show, roll back, simulate and read A/B tests.

Journeys follow the same definition life cycle as every other kind (the registry, kind
``journey``, one name per journey), with two additions: ``simulate`` runs a journey against
simulated time in seconds, and ``ab-report`` reads its split tests. Deploying a new version
never touches running enrollments: they finish on the version they started with.

Exit codes: 0 done, 1 no such journey, 2 an invalid definition or argument (nothing stored),
3 the store is unreachable.
"""

from __future__ import annotations

import asyncio
import json
from datetime import time
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from revops.ab_test import ArmResult, SplitReport, read_split
from revops.errors import ConfigError, NotFound, ValidationFailed
from revops.journey_program import Program, step_kind
from revops.journeys import (
    JOURNEY_KIND,
    JourneyDefinition,
    active_journeys,
    deployable_body,
    from_registry,
    journey_json_schema,
    load_journey,
    load_journey_library,
    parse_journey,
)
from revops.logging import configure_logging
from revops.policies import Policies, load_policies, parse_policies
from revops.settings import Settings
from revops.yamlio import read_yaml
from rules import compile_rules
from starter.common import console, fail, open_store, operator, settings
from starter.simulate import SimulationResult, load_timeline, simulate
from store.journeys import JourneyLog
from store.registry import Registry, diff_bodies
from store.repo import Store

__all__ = ["journeys_app"]

journeys_app = typer.Typer(
    help="Journeys: validate, deploy, roll back, simulate with time travel, A/B reports.",
    no_args_is_help=True,
)


# ---- helpers ------------------------------------------------------------------------------------


def _files(paths: list[Path]) -> list[Path]:
    """Files as given; a directory means its ``*.yaml`` files."""
    found: list[Path] = []
    for path in paths:
        found += sorted(path.glob("*.yaml")) if path.is_dir() else [path]
    return found


def _policies(store: Store | None, current: Settings) -> Policies:
    row = Registry(store).active("policies", "default") if store is not None else None
    if row is not None:
        return parse_policies(row.body, f"deployed policies v{row.version}")
    return load_policies(current.config_dir / "policies.yaml")


def _check_compiles(journeys: list[JourneyDefinition], policies: Policies) -> None:
    """Priorities, categories and exclusivity groups must make sense together."""
    latest = {j.name: j for j in journeys}
    compile_rules([j.enrollment for j in latest.values()], policies)


def _find(name: str, current: Settings, *, deployed: bool) -> JourneyDefinition:
    """A journey by path, by name in the library, or (``deployed``, or else) in the registry."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return load_journey(path)
    if not deployed:
        for journey in load_journey_library(current.journeys_dir):
            if journey.name == name:
                return journey
    row = Registry(open_store(current)).active(JOURNEY_KIND, name)
    if row is None:
        fail(f"no journey named {name!r} (not in {current.journeys_dir}, never deployed)", 1)
    return from_registry(row)


def _trigger(journey: JourneyDefinition) -> str:
    trigger = journey.trigger
    if trigger.kind == "event":
        props = ", ".join(f"{k}={v}" for k, v in trigger.properties.items())
        return f"event {trigger.event}" + (f" ({props})" if props else "")
    if trigger.kind == "list_entered":
        return f"list {trigger.list}"
    return f"stage {trigger.stage}"


def _outline(journey: JourneyDefinition) -> None:
    program = Program.of(journey)
    for step_id, number in program.numbers.items():
        step = program.steps[step_id]
        console.print(f"  {number:>3}. {step_kind(step):<9} {step_id}", highlight=False)


# ---- validate / deploy / rollback / schema ---------------------------------------------------


@journeys_app.command("validate")
def validate(
    paths: Annotated[list[Path], typer.Argument(help="Journey files or directories.")],
) -> None:
    """Check journey files without deploying; exit 2 with every error found."""
    current = settings()
    errors: list[str] = []
    journeys: list[JourneyDefinition] = []
    files = _files(paths)
    for path in files:
        try:
            journeys.append(load_journey(path))
        except ConfigError as exc:
            errors.append(str(exc))
    if not errors:
        try:
            _check_compiles(journeys, _policies(None, current))
        except ConfigError as exc:
            errors.append(str(exc))
    if errors:
        fail("\n".join(errors), 2)
    console.print(f"{len(files)} journey file(s) valid")


@journeys_app.command("deploy")
def deploy(
    path: Annotated[Path, typer.Argument(help="The journey file.")],
    comment: Annotated[str, typer.Option(help="Why (kept in the change log).")] = "",
) -> None:
    """Deploy a new version; new enrollments get it, running ones keep theirs."""
    current = settings()
    try:
        data = read_yaml(path)
        journey = parse_journey(data, str(path))
    except ConfigError as exc:
        fail(str(exc), 2)
    store = open_store(current)
    registry = Registry(store)
    try:
        others = active_journeys(registry.active_all(JOURNEY_KIND), current.journeys_dir)
        _check_compiles([*others, journey], _policies(store, current))
    except ConfigError as exc:
        fail(str(exc), 2)
    body = deployable_body(data)
    result = registry.deploy(JOURNEY_KIND, journey.name, body, author=operator(), comment=comment)
    if not result.changed:
        console.print(f"journey {journey.name}: unchanged, v{result.version} stays active")
        return
    console.print(result.diff or "(first version)", highlight=False)
    console.print(
        f"journey {journey.name}: v{result.version} deployed; "
        "running enrollments stay on the version they started with"
    )


@journeys_app.command("rollback")
def rollback(name: Annotated[str, typer.Argument(help="The journey's name.")]) -> None:
    """Make the previous version active again (for new enrollments)."""
    store = open_store(settings())
    try:
        row = Registry(store).rollback(JOURNEY_KIND, name, author=operator())
    except NotFound as exc:
        fail(str(exc), 1)
    except ValidationFailed as exc:
        fail(str(exc), 2)
    console.print(f"journey {name}: rolled back to v{row.version}")


@journeys_app.command("schema")
def schema(
    output: Annotated[
        Path | None, typer.Option(help="Where to write it (default journeys/schema.json).")
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


@journeys_app.command("list")
def list_journeys() -> None:
    """Every journey: deployed versions, and library files never deployed."""
    current = settings()
    store = open_store(current)
    deployed = {row.name: row for row in Registry(store).active_all(JOURNEY_KIND)}
    defaults = _policies(store, current).priorities
    table = Table()
    table.add_column("journey", no_wrap=True)
    for column in ("version", "trigger", "priority", "group", "steps"):
        table.add_column(column)
    for journey in active_journeys(deployed.values(), current.journeys_dir):
        priority = journey.priority
        if priority is None:
            priority = defaults.get(journey.category or "")
        table.add_row(
            journey.name,
            f"v{journey.version}" if journey.name in deployed else "file",
            _trigger(journey),
            f"{priority} {journey.category or ''}".strip(),
            journey.exclusivity_group or "-",
            str(Program.of(journey).size),
        )
    console.print(table)


@journeys_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="The journey's name.")],
    version: Annotated[int | None, typer.Option(help="Outline this version.")] = None,
) -> None:
    """Versions, the diff between consecutive versions, and the steps of one version."""
    current = settings()
    store = open_store(current)
    registry = Registry(store)
    rows = registry.versions(JOURNEY_KIND, name)
    if not rows:
        journey = _find(name, current, deployed=False)
        console.print(f"journey {name}: not deployed; the library file defines:")
        _outline(journey)
        return
    active = registry.active(JOURNEY_KIND, name)
    table = Table("version", "deployed", "by", "comment", "active")
    for row in rows:
        is_active = "yes" if active is not None and row.version == active.version else ""
        when = row.created_at.isoformat(timespec="seconds")
        table.add_row(f"v{row.version}", when, row.author, row.comment, is_active)
    console.print(table)
    for before, after in pairwise(rows):
        label = f"journey/{name} v{after.version}"
        console.print(diff_bodies(before.body, after.body, label) or "(no change)", highlight=False)
    chosen = version or (active.version if active else rows[-1].version)
    try:
        shown = from_registry(registry.get(JOURNEY_KIND, name, chosen))
    except NotFound as exc:
        fail(str(exc), 1)
    console.print(f"steps of v{chosen}:")
    _outline(shown)


# ---- A/B --------------------------------------------------------------------------------------


@journeys_app.command("ab-report")
def ab_report(
    name: Annotated[str, typer.Argument(help="The journey's name.")],
    confidence: Annotated[float, typer.Option(min=0.5, max=0.999)] = 0.95,
    min_sample: Annotated[int, typer.Option(min=1, help="Sends per variant needed.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Per-variant sends and goal conversions; a winner only when significant."""
    store = open_store(settings())
    stats = JourneyLog(store).variant_stats(name)
    if not stats:
        fail(f"journey {name}: no split assignments recorded yet", 1)
    steps: dict[str, list[ArmResult]] = {}
    for s in stats:
        steps.setdefault(s.step_id, []).append(
            ArmResult(s.variant, s.assigned, s.sent, s.converted)
        )
    reports = [
        read_split(step, arms, confidence=confidence, min_sample=min_sample)
        for step, arms in steps.items()
    ]
    if as_json:
        print(json.dumps({"journey": name, "splits": [_report_json(r) for r in reports]}))
        return
    for report in reports:
        _print_report(name, report)


def _report_json(report: SplitReport) -> dict[str, Any]:
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
                "converted": a.converted,
                "rate": a.rate,
            }
            for a in report.arms
        ],
    }


def _print_report(name: str, report: SplitReport) -> None:
    table = Table(
        "variant", "assigned", "sends", "conversions", "rate", title=f"{name}: {report.step}"
    )
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
