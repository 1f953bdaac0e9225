"""``revops scoring``: backtest a candidate scoring model and make synthetic history.

Mounted by ``starter.cli`` as a sub-app. Exit codes follow the CLI's: 0 success, 2 bad
arguments or an invalid model/list file (the message names the file and field).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from analysis.backtest import (
    SQL_OUTCOME_EVENT,
    BacktestReport,
    GateOutcome,
    Memberships,
    memberships_for,
    parse_thresholds,
    run,
    write_csv,
)
from analysis.synth import generate
from definitions import LISTS, SCORING, read_file
from revops.errors import ConfigError
from scoring.model import ScoringModel
from starter.output import JsonFlag, emit

__all__ = ["scoring_app"]

scoring_app = typer.Typer(
    help="Scoring models: backtest, synthetic history, deploy and roll back.",
    no_args_is_help=True,
)
console = Console()
err = Console(stderr=True, soft_wrap=True)  # messages stay one line: greppable

_DEFAULT_LISTS = Path("config/lists.yaml")
_BAR_FROM = 50_000  # events; shorter runs finish before a bar is worth drawing


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]{message}[/red]", highlight=False)
    return typer.Exit(2)


def _load_model(path: Path) -> ScoringModel:
    try:
        return read_file(SCORING, path)
    except ConfigError as exc:
        raise _fail(str(exc)) from exc


def _load_memberships(model: ScoringModel, path: Path | None) -> tuple[Memberships | None, str]:
    """Segment gates need list memberships; without a lists file every contact is default."""
    chosen = path or (_DEFAULT_LISTS if _DEFAULT_LISTS.exists() else None)
    if chosen is None:
        return None, "no lists file: every contact judged by the default gate"
    try:
        lists = read_file(LISTS, chosen)
    except ConfigError as exc:
        raise _fail(str(exc)) from exc
    missing = sorted(model.lists_used - {d.name for d in lists.lists})
    if missing:
        raise _fail(f"{chosen}: the model uses list {missing[0]!r}, which is not defined there")
    return memberships_for(model, lists), f"segments from {chosen}, traits only"


class _JsonLines:
    """The records of a JSONL file; lines that are not JSON objects are counted, not fatal."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.bad_lines = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        with self.path.open("rb") as handle:
            for line in handle:
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    record = None
                if isinstance(record, dict):
                    yield record
                else:
                    self.bad_lines += 1


def _export_stored_events() -> Path:
    """The store's event log as the gateway's JSONL (opaque contact ids as user ids)."""
    from sqlalchemy import select

    from starter.common import open_store, settings
    from store.schema import EventRow

    store = open_store(settings())
    target = Path(tempfile.mkstemp(prefix="revops-events-", suffix=".jsonl")[1])
    query = (
        select(EventRow)
        .where(EventRow.contact_id.is_not(None))
        .order_by(EventRow.timestamp, EventRow.id)
        .execution_options(yield_per=5000)
    )
    with store._sessions() as session, target.open("w", encoding="utf-8") as out:
        for row in session.scalars(query):
            record = {
                "type": "identify" if row.type == "identify" else "track",
                "userId": row.contact_id,
                "event": row.name,
                "properties": row.properties,
                "traits": row.traits,
                "timestamp": row.timestamp.isoformat(),
                "messageId": row.message_id,
            }
            out.write(json.dumps(record, default=str) + "\n")
    err.print(f"Replaying the stored event log ({target}).")
    return target


def _count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


def _progress() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )


class BacktestView(BaseModel):
    """What ``scoring backtest`` reports: the replay's figures and how segments were judged."""

    report: BacktestReport
    segments: str
    unreadable_lines: int


@scoring_app.command()
def backtest(
    model: Annotated[Path, typer.Option("--model", help="Candidate scoring model (YAML).")],
    events: Annotated[
        Path | None, typer.Option("--events", help="Event history, one JSON record a line.")
    ] = None,
    thresholds: Annotated[
        str, typer.Option("--thresholds", help="start:stop:step (stop included) or a,b,c.")
    ] = "40:90:5",
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Also write the report.")] = None,
    lists: Annotated[
        Path | None,
        typer.Option("--lists", help="List definitions for segment gates [config/lists.yaml]."),
    ] = None,
    outcome_event: Annotated[
        str, typer.Option("--outcome-event", help="The event that marks a lead SQL.")
    ] = SQL_OUTCOME_EVENT,
    as_json: JsonFlag = False,
) -> None:
    """Replay history against MODEL: MQLs and MQL-to-SQL conversion per threshold."""
    candidate = _load_model(model)
    if events is None:
        events = _export_stored_events()
    if not events.is_file():
        raise _fail(f"{events}: no such file")
    try:
        levels = parse_thresholds(thresholds)
    except ValueError as exc:
        raise _fail(f"--thresholds: {exc}") from exc
    memberships, segments_note = _load_memberships(candidate, lists)
    records = _JsonLines(events)
    report = _replay(candidate, records, levels, memberships, outcome_event)
    view = BacktestView(report=report, segments=segments_note, unreadable_lines=records.bad_lines)
    emit(view, as_json, _print_report)
    if csv_out is not None:
        with csv_out.open("w", encoding="utf-8", newline="") as handle:
            write_csv(report, handle)
        (err if as_json else console).print(f"Report written to {csv_out}")


def _replay(
    model: ScoringModel,
    records: _JsonLines,
    levels: tuple[int, ...],
    memberships: Memberships | None,
    outcome_event: str,
) -> BacktestReport:
    """Run the backtest, with a progress bar on long histories (work = 2 x events)."""
    options: dict[str, Any] = {"outcome_event": outcome_event, "memberships": memberships}
    lines = _count_lines(records.path)
    if lines < _BAR_FROM:
        return run(model, records, levels, None, **options)
    with _progress() as bar:
        task = bar.add_task("Replaying history", total=2 * lines)
        return run(model, records, levels, lambda done: bar.update(task, completed=done), **options)


def _print_report(view: BacktestView) -> None:
    report, segments_note, bad_lines = view.report, view.segments, view.unreadable_lines
    console.print(
        f"Model {report.model_version}: {report.events:,} events, {report.contacts:,} contacts, "
        f"{report.sql_contacts:,} reached SQL ({segments_note})."
    )
    if report.skipped or bad_lines:
        err.print(f"[yellow]Skipped {report.skipped + bad_lines:,} unusable records.[/yellow]")
    table = Table(
        title="MQL volume and MQL-to-SQL conversion (healthy: 10%-35%)",
        caption="hand: MQLs by hand-raise; SQL: MQLs that became SQL; missed: SQLs not MQL first",
    )
    for column in ("gate", "MQLs", "hand", "SQL", "rate", "missed"):
        table.add_column(column, justify="left" if column == "gate" else "right", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    for row in (*report.thresholds, report.model_gate):
        table.add_row(*_cells(row))
    console.print(table)
    console.print(f"[dim]{report.meaning}[/dim]")


_VERDICTS = {None: "healthy", "no MQLs": "no MQLs", "too loose": "loose", "too tight": "tight"}


def _cells(row: GateOutcome) -> list[str]:
    rate = "-" if row.conversion is None else f"{row.conversion:.2%}"
    colour = "green" if row.healthy else "yellow"
    return [
        "model gate" if row.threshold is None else f"total >= {row.threshold}",
        f"{row.mqls:,}",
        f"{row.hand_raiser_mqls:,}",
        f"{row.converted:,}",
        rate,
        f"{row.sql_missed:,}",
        f"[{colour}]{_VERDICTS[row.flag]}[/{colour}]",
    ]


@scoring_app.command()
def synth(
    out: Annotated[Path, typer.Option("--out", help="Where to write the JSONL history.")],
    contacts: Annotated[int, typer.Option("--contacts", min=1, help="How many contacts.")] = 5_000,
    events: Annotated[int, typer.Option("--events", min=1, help="How many records.")] = 100_000,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same history.")] = 1,
    signals: Annotated[
        bool,
        typer.Option(
            "--signals",
            help="Add feature usage, replies, meetings, events, tech stacks, students.",
        ),
    ] = False,
) -> None:
    """Write a realistic synthetic history (identify/track records, SQL outcomes included)."""
    with out.open("w", encoding="utf-8") as handle:
        if events < _BAR_FROM:
            written = _write(handle, generate(contacts, events, seed, signals=signals), None)
        else:
            with _progress() as bar:
                task = bar.add_task("Generating", total=events)

                def tick(done: int) -> None:
                    bar.update(task, completed=done)

                written = _write(handle, generate(contacts, events, seed, signals=signals), tick)
    console.print(f"Wrote {written:,} records for up to {contacts:,} contacts to {out}.")


def _write(
    handle: TextIO, records: Iterable[dict[str, Any]], tick: Callable[[int], None] | None
) -> int:
    written = 0
    for record in records:
        handle.write(json.dumps(record, separators=(",", ":")) + "\n")
        written += 1
        if tick is not None and not written % 10_000:
            tick(written)
    return written


def _mount_life_cycle() -> None:
    # Imported here: starter.definitions_cli needs the store and Temporal client modules.
    from starter.definitions_cli import add_definition_commands

    add_definition_commands(scoring_app, SCORING)


_mount_life_cycle()
