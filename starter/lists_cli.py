"""``revops lists``: counts, definitions, recent entries and exits, static lists, freshness.

The read commands (the overview, ``show``, ``freshness``) build one view each and print it as
a table or, with ``--json``, as that view's JSON (``starter.output``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
import yaml
from pydantic import BaseModel
from rich.table import Table

from audience.lists import ListKind, ListsConfig
from definitions import LISTS
from models.events import StaticListChange
from revops.ids import contact_workflow_id
from revops.temporal import connect
from starter.common import (
    console,
    current_bundle,
    fail,
    open_store,
    resolve_contact,
    run_async,
    settings,
)
from starter.definitions_cli import add_definition_commands
from starter.output import JsonFlag, Moment, emit
from store.history import History
from workflows.contact import ContactWorkflow

__all__ = ["lists_app"]

lists_app = typer.Typer(
    help="Lists (segments): counts, members' entries and exits, static lists, freshness.",
    invoke_without_command=True,
)
add_definition_commands(lists_app, LISTS)

FRESHNESS_FLOOR = 0.70
FRESHNESS_DAYS = 90


def _lists() -> tuple[ListsConfig, History]:
    current = settings()
    store = open_store(current)
    bundle = current_bundle(current, store)
    assert bundle.lists is not None
    return bundle.lists, History(store)


class ListSummary(BaseModel):
    """One list in ``revops lists``."""

    name: str
    kind: ListKind
    members: int
    description: str


class ListsOverview(BaseModel):
    """``revops lists``: every defined list with its current member count."""

    lists: list[ListSummary]


class ListStay(BaseModel):
    """A contact's stay on a list (``left_at`` is null while it is a member)."""

    contact_id: str
    entered_at: Moment
    left_at: Moment | None


class ListDetail(BaseModel):
    """``revops lists show``: the definition, the member count, recent entries and exits."""

    name: str
    definition: dict[str, Any]
    members: int
    recent: list[ListStay]


class FreshnessLine(BaseModel):
    """One list's share of members updated within the window."""

    name: str
    members: int
    fresh: int
    share: float
    stale: bool


class FreshnessReport(BaseModel):
    """``revops lists freshness``: lists whose members went quiet are flagged ``stale``."""

    window_days: int
    floor: float
    lists: list[FreshnessLine]


@lists_app.callback()
def overview(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Each list with its kind and member count."""
    if ctx.invoked_subcommand is not None:
        return
    config, history = _lists()
    counts = history.list_counts()
    view = ListsOverview(
        lists=[
            ListSummary(
                name=d.name,
                kind=d.kind,
                members=counts.get(d.name, 0),
                description=d.description or "",
            )
            for d in config.lists
        ]
    )
    emit(view, as_json, _print_overview)


def _print_overview(view: ListsOverview) -> None:
    table = Table("list", "kind", "members", "description")
    for line in view.lists:
        table.add_row(line.name, line.kind.value, str(line.members), line.description)
    console.print(table)


@lists_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="The list's name.")], as_json: JsonFlag = False
) -> None:
    """Definition, member count, recent entries and exits (opaque contact ids)."""
    config, history = _lists()
    definition = config.get(name)
    if definition is None:
        fail(f"no list named {name!r} (see `revops lists`)", 1)
    view = ListDetail(
        name=name,
        definition=definition.model_dump(mode="json", by_alias=True, exclude_none=True),
        members=history.list_counts().get(name, 0),
        recent=[
            ListStay(contact_id=row.contact_id, entered_at=row.entered_at, left_at=row.left_at)
            for row in history.list_activity(name)
        ],
    )
    emit(view, as_json, _print_detail)


def _print_detail(view: ListDetail) -> None:
    console.print(yaml.safe_dump(view.definition, sort_keys=False).rstrip())
    console.print(f"members: {view.members}")
    table = Table("contact", "entered", "left", title="recent entries and exits")
    for stay in view.recent:
        left = stay.left_at.isoformat(timespec="seconds") if stay.left_at else "-"
        table.add_row(stay.contact_id, stay.entered_at.isoformat(timespec="seconds"), left)
    console.print(table)


def _change_static(name: str, user_id: str, member: bool) -> None:
    current = settings()
    store = open_store(current)
    bundle = current_bundle(current, store)
    assert bundle.lists is not None
    definition = bundle.lists.get(name)
    if definition is None:
        fail(f"no list named {name!r}", 1)
    if definition.kind == ListKind.DYNAMIC:
        fail(f"{name!r} is a dynamic list: its members follow its conditions", 2)
    contact_id = resolve_contact(store, user_id)

    async def _signal() -> None:
        client = await connect(current)
        handle = client.get_workflow_handle(contact_workflow_id(contact_id))
        change = StaticListChange(list_name=name, member=member)
        await handle.signal(ContactWorkflow.set_list_membership, change)

    run_async(_signal())
    console.print(f"{user_id} {'added to' if member else 'removed from'} {name}")


@lists_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="A static or suppression list.")],
    user_id: Annotated[str, typer.Argument(help="The contact's user id.")],
) -> None:
    """Add a contact to a static or suppression list."""
    _change_static(name, user_id, member=True)


@lists_app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="A static or suppression list.")],
    user_id: Annotated[str, typer.Argument(help="The contact's user id.")],
) -> None:
    """Remove a contact from a static or suppression list."""
    _change_static(name, user_id, member=False)


@lists_app.command("freshness")
def freshness(as_json: JsonFlag = False) -> None:
    """Share of each list's members updated in the last 90 days; flags lists under 70%."""
    _, history = _lists()
    rows = history.freshness(datetime.now(UTC), timedelta(days=FRESHNESS_DAYS))
    view = FreshnessReport(
        window_days=FRESHNESS_DAYS,
        floor=FRESHNESS_FLOOR,
        lists=[
            FreshnessLine(
                name=row.list_name,
                members=row.members,
                fresh=row.fresh,
                share=row.share,
                stale=row.share < FRESHNESS_FLOOR,
            )
            for row in rows
        ],
    )
    emit(view, as_json, _print_freshness)


def _print_freshness(view: FreshnessReport) -> None:
    table = Table("list", "members", f"updated in {view.window_days} days", "share", "")
    for line in view.lists:
        flag = f"STALE (< {view.floor:.0%})" if line.stale else ""
        table.add_row(line.name, str(line.members), str(line.fresh), f"{line.share:.0%}", flag)
    console.print(table)
