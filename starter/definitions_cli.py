"""``revops definitions``: one life cycle (validate, deploy, history, rollback, show) for every
kind of definition, over the registry and the definitions service.

Kinds: lifecycle, scoring, lists, demand_states, routing, policies, handoff (one definition
each) and journey (one per journey name). ``revops lists|scoring validate|deploy|rollback|
history`` and ``revops journeys validate|deploy|rollback|history`` are the same functions.

- ``validate`` reads files only (no store): each must be a valid definition of its kind, fit
  the shipped definitions of the other kinds (journeys compile with the policies; every list,
  score, stage, journey and recycle cause named exists; no journey that can never enroll)
  and is warned about trait and template names nothing provides (``definitions.checks``).
- ``deploy`` validates, then checks the candidate against the other active definitions (lists
  name known demand states, the scoring model reads defined lists, journeys and policies
  compile together) and stores a new version; ``rollback`` checks the version it returns to
  the same way. Deploying or rolling back a kind the contact workflow evaluates itself
  (lifecycle, scoring, lists, demand states) tells every running contact to reload it.

Exit codes: 0 done, 1 never deployed / no such version, 2 an invalid definition, kind or
argument (nothing stored), 3 the store is unreachable.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import BaseModel
from rich.progress import Progress
from rich.table import Table

from definitions import (
    ACCOUNTS,
    BUNDLE,
    DEFAULT_NAME,
    JOURNEY,
    KINDS,
    POLICIES,
    SCORING,
    Active,
    Definitions,
    Kind,
    deployable_body,
    from_registry,
    kind_named,
    read_active,
)
from definitions.service import check_references, check_rules, shipped_set
from revops.access import Action, refusal
from revops.errors import ConfigError, NotFound, ValidationFailed
from revops.logging import get_logger
from revops.temporal import connect
from starter.broadcast import (
    broadcast_accounts_changed,
    broadcast_definitions_changed,
    live_contact_ids,
)
from starter.common import console, fail, open_store, operator, run_async, settings
from starter.output import JsonFlag, Moment, emit
from store.registry import DefinitionChangeRow, DefinitionRow, Registry

log = get_logger(__name__)

__all__ = [
    "add_definition_commands",
    "definitions_app",
    "deploy_file",
    "print_history",
    "rollback_to_previous",
    "validate_files",
]

definitions_app = typer.Typer(
    help="Every kind of definition: list, validate, deploy, history, rollback, show.",
    no_args_is_help=True,
)

_KIND_HELP = f"The kind: {', '.join(KINDS)}."
_NAME_HELP = "The journey's name (journeys only: every other kind has one definition)."


# ---- the life cycle, shared by every command that mounts it ----------------------------------


def _kind(name: str) -> Kind[Any]:
    try:
        return kind_named(name)
    except ConfigError as exc:
        fail(str(exc), 2)


def _name(kind: Kind[Any], name: str | None) -> str:
    if kind == JOURNEY:
        if not name:
            fail("journey: give the journey's name", 2)
        return name
    if name not in (None, DEFAULT_NAME):
        fail(f"{kind.name} has one definition: give no name", 2)
    return DEFAULT_NAME


def _label(kind: Kind[Any], name: str) -> str:
    return f"journey {name}" if kind == JOURNEY else kind.name


def _files(paths: Iterable[Path]) -> list[Path]:
    """Files as given; a directory means its ``*.yaml`` files."""
    found: list[Path] = []
    for path in paths:
        found += sorted(path.glob("*.yaml")) if path.is_dir() else [path]
    return found


def _read(kind: Kind[Any], path: Path) -> Active[Any]:
    """A file given on the command line (it must exist, even for a kind with defaults)."""
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    return read_active(kind, path)


def authorize(kind: Kind[Any], action: Action) -> None:
    """Refuse (exit 4) and log an operator whose roles do not allow ``action`` on ``kind``."""
    current = settings()
    who = operator()
    reason = refusal(current.operators, current.roles, who, action, kind.name)
    if reason is None:
        return
    log.warning("definition_refused", operator=who, action=action, kind=kind.name, reason=reason)
    fail(f"refused: {reason}", 4)


def validate_files(kind: Kind[Any], paths: Iterable[Path]) -> None:
    """Check files without deploying, against the shipped definitions of the other kinds;
    exit 2 with every error found (warnings are printed, and do not fail)."""
    authorize(kind, "validate")
    files = _files(paths)
    errors: list[str] = []
    found: list[tuple[Any, str]] = []
    for path in files:
        try:
            found.append((_read(kind, path).model, str(path)))
        except ConfigError as exc:
            errors.append(str(exc))
    warnings: list[str] = []
    if not errors and found:
        try:
            problems = _cross_check(kind, found)
        except ConfigError as exc:
            errors.append(str(exc))
        else:
            errors += [str(f) for f in problems if not f.warning]
            warnings += [str(f) for f in problems if f.warning]
    for line in warnings:
        console.print(f"warning: {line}", style="yellow", highlight=False, markup=False)
    if errors:
        fail("\n".join(errors), 2)
    console.print(f"{len(files)} {kind.name} file(s) valid")


def _cross_check(kind: Kind[Any], found: list[tuple[Any, str]]) -> list[Any]:
    """The candidates against the shipped definitions: rules compile, references resolve."""
    current = settings()
    baseline = shipped_set(current.config_dir, current.journeys_dir)
    journeys = {name: s.model for name, s in baseline.journeys.items()}
    policies, scoring = baseline.policies.model, baseline.scoring.model
    if kind == JOURNEY:
        journeys |= {model.name: model for model, _ in found}
    if kind in (JOURNEY, POLICIES, SCORING):
        policies = found[-1][0] if kind == POLICIES else policies
        scoring = found[-1][0] if kind == SCORING else scoring
        check_rules(journeys.values(), policies, scoring.hand_raisers)
    (first, source), more = found[0], found[1:]
    return check_references(baseline, kind, first, source, warnings=True, more=more)


def deploy_file(kind: Kind[Any], path: Path, comment: str) -> None:
    """Validate, check against the active definitions, store a new version."""
    authorize(kind, "deploy")
    current = settings()
    try:
        found = _read(kind, path)
    except ConfigError as exc:
        fail(str(exc), 2)
    definitions = Definitions.of(open_store(current), current)
    try:
        definitions.check(kind, found.model, str(path))
    except ConfigError as exc:
        fail(str(exc), 2)
    name = found.model.name if kind == JOURNEY else DEFAULT_NAME
    body = deployable_body(found.body) if kind == JOURNEY else found.body
    result = definitions.registry.deploy(kind.name, name, body, author=operator(), comment=comment)
    label = _label(kind, name)
    if not result.changed:
        console.print(f"{label}: unchanged, v{result.version} stays active")
        return
    console.print(result.diff or "(first version)", highlight=False, markup=False)
    if kind == JOURNEY:
        console.print(
            f"{label}: v{result.version} deployed; "
            "running enrollments stay on the version they started with"
        )
        return
    console.print(f"{label}: v{result.version} deployed")
    if kind in BUNDLE:
        _reevaluate(kind)


def rollback_to_previous(kind: Kind[Any], name: str | None) -> None:
    """Make the previous version active again, if it still fits the active definitions."""
    authorize(kind, "rollback")
    name = _name(kind, name)
    current = settings()
    definitions = Definitions.of(open_store(current), current)

    def check(row: DefinitionRow) -> None:
        definitions.check(kind, _model(kind, row))

    try:
        row = definitions.registry.rollback(kind.name, name, author=operator(), check=check)
    except NotFound as exc:
        fail(str(exc), 1)
    except (ValidationFailed, ConfigError) as exc:
        fail(str(exc), 2)
    console.print(f"{_label(kind, name)}: rolled back to v{row.version}")
    if kind in BUNDLE:
        _reevaluate(kind)


def _model(kind: Kind[Any], row: DefinitionRow) -> Any:
    if kind == JOURNEY:
        return from_registry(row)
    return kind.parse(row.body, f"{kind.name} v{row.version}")


class DefinitionChange(BaseModel):
    """One deploy or rollback: which version became active, from which, by whom."""

    at: Moment
    kind: str
    name: str
    action: str
    version: int
    previous_version: int | None
    author: str
    diff: str


class DefinitionHistory(BaseModel):
    """``history``: the change log of a kind (of one journey with ``name``), newest first."""

    kind: str
    name: str | None
    changes: list[DefinitionChange]


def print_history(kind: Kind[Any], name: str | None, diff: bool, as_json: bool) -> None:
    """The change log of ``kind`` (of one journey with ``name``), newest first."""
    if name is not None:
        name = _name(kind, name)
    rows = Registry(open_store(settings())).changes(kind.name, name=name)
    changes = [_change(row) for row in rows]
    view = DefinitionHistory(kind=kind.name, name=name, changes=changes)
    emit(view, as_json, lambda history: _print_history(history, diff))


def _change(row: DefinitionChangeRow) -> DefinitionChange:
    return DefinitionChange(
        at=row.at,
        kind=row.kind,
        name=row.name,
        action=row.action,
        version=row.version,
        previous_version=row.previous_version,
        author=row.author,
        diff=row.diff,
    )


def _print_history(view: DefinitionHistory, diff: bool) -> None:
    if not view.changes:
        console.print(f"{view.kind}: nothing deployed yet (shipped file in use)")
        return
    table = Table("when", "name", "action", "version", "from", "who")
    for change in view.changes:
        table.add_row(
            change.at.isoformat(timespec="seconds"),
            change.name,
            change.action,
            f"v{change.version}",
            f"v{change.previous_version}" if change.previous_version else "-",
            change.author,
        )
    console.print(table)
    if diff:
        for change in view.changes:
            console.print(change.diff, highlight=False, markup=False)


def _reevaluate(kind: Kind[Any]) -> None:
    current = settings()
    store = open_store(current)
    contacts = live_contact_ids(store)
    revision = str(Registry(store).revision())

    async def _send() -> int:
        client = await connect(current)
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task(f"re-evaluating contacts ({kind.name})", total=len(contacts))
            reached = await broadcast_definitions_changed(
                client, contacts, revision, progress=lambda n: progress.advance(task, n)
            )
        if kind == ACCOUNTS:
            accounts = await broadcast_accounts_changed(client, store, revision)
            console.print(f"{accounts} account(s) reloading the accounts definition")
        return reached

    reached = run_async(_send())
    console.print(f"{reached} running contact(s) re-evaluating in the background")


def add_definition_commands(app: typer.Typer, kind: Kind[Any]) -> None:
    """Mount validate/deploy/rollback/history for ``kind`` on ``app`` (``revops lists`` ...)."""

    @app.command("validate")
    def validate(
        paths: Annotated[list[Path], typer.Argument(help="Files (journeys: or directories).")],
    ) -> None:
        """Check files without deploying; exit 2 with every error found."""
        validate_files(kind, paths)

    @app.command("deploy")
    def deploy(
        path: Annotated[Path, typer.Argument(help="The definition file.")],
        comment: Annotated[str, typer.Option(help="Why (kept in the change log).")] = "",
    ) -> None:
        """Validate, check against the active definitions and deploy a new version."""
        deploy_file(kind, path, comment)

    @app.command("rollback")
    def rollback(name: Annotated[str | None, typer.Argument(help=_NAME_HELP)] = None) -> None:
        """Make the previous version active again."""
        rollback_to_previous(kind, name)

    @app.command("history")
    def history(
        name: Annotated[str | None, typer.Argument(help=_NAME_HELP)] = None,
        diff: Annotated[bool, typer.Option("--diff", help="Show each change's diff.")] = False,
        as_json: JsonFlag = False,
    ) -> None:
        """The change log: who deployed or rolled back what, when."""
        print_history(kind, name, diff, as_json)


# ---- revops definitions ... -------------------------------------------------------------------


class DefinitionInUse(BaseModel):
    """What one kind (one journey) uses now: ``version`` is null for the shipped file."""

    kind: str
    name: str
    version: int | None
    source: str


class DefinitionsInUse(BaseModel):
    """``definitions list``: every kind and every journey, with the version in use."""

    definitions: list[DefinitionInUse]


@definitions_app.command("list")
def list_definitions(as_json: JsonFlag = False) -> None:
    """Every kind (and every journey) with the version in use and where it comes from."""
    current = settings()
    definitions = Definitions.of(open_store(current), current)
    rows: list[DefinitionInUse] = []
    try:
        for kind in KINDS.values():
            if kind != JOURNEY:
                found = definitions.active(kind)
                rows.append(_in_use(kind, DEFAULT_NAME, found))
        for name, journey in definitions.catalog().items():
            rows.append(_in_use(JOURNEY, name, journey))
    except ConfigError as exc:
        fail(str(exc), 2)
    emit(DefinitionsInUse(definitions=rows), as_json, _print_in_use)


def _in_use(kind: Kind[Any], name: str, found: Active[Any]) -> DefinitionInUse:
    return DefinitionInUse(kind=kind.name, name=name, version=found.version, source=found.source)


def _print_in_use(view: DefinitionsInUse) -> None:
    table = Table("kind", "name", "active", "source")
    for row in view.definitions:
        active = f"v{row.version}" if row.version is not None else "file"
        table.add_row(row.kind, row.name, active, row.source)
    console.print(table)


@definitions_app.command("validate")
def validate(
    kind: Annotated[str, typer.Argument(help=_KIND_HELP)],
    paths: Annotated[list[Path], typer.Argument(help="Files (journeys: or directories).")],
) -> None:
    """Check files without deploying; exit 2 with every error found."""
    validate_files(_kind(kind), paths)


@definitions_app.command("deploy")
def deploy(
    kind: Annotated[str, typer.Argument(help=_KIND_HELP)],
    path: Annotated[Path, typer.Argument(help="The definition file.")],
    comment: Annotated[str, typer.Option(help="Why (kept in the change log).")] = "",
) -> None:
    """Validate, check against the active definitions and deploy a new version."""
    deploy_file(_kind(kind), path, comment)


@definitions_app.command("rollback")
def rollback(
    kind: Annotated[str, typer.Argument(help=_KIND_HELP)],
    name: Annotated[str | None, typer.Argument(help=_NAME_HELP)] = None,
) -> None:
    """Make the previous version active again."""
    rollback_to_previous(_kind(kind), name)


@definitions_app.command("history")
def history(
    kind: Annotated[str, typer.Argument(help=_KIND_HELP)],
    name: Annotated[str | None, typer.Argument(help=_NAME_HELP)] = None,
    diff: Annotated[bool, typer.Option("--diff", help="Show each change's diff.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """The change log: who deployed or rolled back what, when."""
    print_history(_kind(kind), name, diff, as_json)


class DefinitionShown(BaseModel):
    """``show``: a definition's body (as deployed or written) and where it comes from."""

    kind: str
    name: str
    version: int | None
    source: str
    body: dict[str, Any]


@definitions_app.command("show")
def show(
    kind: Annotated[str, typer.Argument(help=_KIND_HELP)],
    name: Annotated[str | None, typer.Argument(help=_NAME_HELP)] = None,
    version: Annotated[
        int | None, typer.Option(help="A deployed version (else the active).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """The definition in use (or a deployed version) and where it comes from."""
    chosen = _kind(kind)
    name = _name(chosen, name)
    current = settings()
    definitions = Definitions.of(open_store(current), current)
    try:
        view = _shown(definitions, chosen, name, version)
    except NotFound as exc:
        fail(str(exc), 1)
    except ConfigError as exc:
        fail(str(exc), 2)
    emit(view, as_json, _print_shown)


def _shown(
    definitions: Definitions, kind: Kind[Any], name: str, version: int | None
) -> DefinitionShown:
    """The definition to show; NotFound when there is none."""
    if version is not None:
        row = definitions.registry.get(kind.name, name, version)
        source = f"deployed {kind.name} v{row.version} by {row.author}"
        return DefinitionShown(
            kind=kind.name, name=name, version=row.version, source=source, body=row.body
        )
    if kind == JOURNEY:
        found: Active[Any] | None = definitions.catalog().get(name)
        if found is None:
            raise NotFound(f"no journey named {name!r} (not in the library, never deployed)")
    else:
        found = definitions.active(kind)
    return DefinitionShown(
        kind=kind.name, name=name, version=found.version, source=found.source, body=found.body
    )


def _print_shown(view: DefinitionShown) -> None:
    label = f"journey {view.name}" if view.kind == JOURNEY.name else view.kind
    console.print(f"{label}: {view.source}", highlight=False, markup=False)
    dumped = yaml.safe_dump(view.body, sort_keys=False, allow_unicode=True)
    console.print(dumped.rstrip(), highlight=False, markup=False)
