"""``revops lists``: counts, definitions, recent entries and exits, static lists, freshness."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
import yaml
from rich.table import Table

from models.events import StaticListChange
from revops.ids import contact_workflow_id
from revops.lists import ListKind, ListsConfig
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
from store.history import History

__all__ = ["lists_app"]

lists_app = typer.Typer(
    help="Lists (segments): counts, members' entries and exits, static lists, freshness.",
    invoke_without_command=True,
)
add_definition_commands(lists_app, "lists", reevaluate=True)

FRESHNESS_FLOOR = 0.70


def _lists() -> tuple[ListsConfig, History]:
    current = settings()
    store = open_store(current)
    bundle = current_bundle(current, store)
    assert bundle.lists is not None
    return bundle.lists, History(store)


@lists_app.callback()
def overview(ctx: typer.Context) -> None:
    """Each list with its kind and member count."""
    if ctx.invoked_subcommand is not None:
        return
    config, history = _lists()
    counts = history.list_counts()
    table = Table("list", "kind", "members", "description")
    for definition in config.lists:
        table.add_row(
            definition.name,
            definition.kind.value,
            str(counts.get(definition.name, 0)),
            definition.description or "",
        )
    console.print(table)


@lists_app.command("show")
def show(name: Annotated[str, typer.Argument(help="The list's name.")]) -> None:
    """Definition, member count, recent entries and exits (opaque contact ids)."""
    config, history = _lists()
    definition = config.get(name)
    if definition is None:
        fail(f"no list named {name!r} (see `revops lists`)", 1)
    body = definition.model_dump(mode="json", by_alias=True, exclude_none=True)
    console.print(yaml.safe_dump(body, sort_keys=False).rstrip())
    console.print(f"members: {history.list_counts().get(name, 0)}")
    table = Table("contact", "entered", "left", title="recent entries and exits")
    for row in history.list_activity(name):
        left = row.left_at.isoformat(timespec="seconds") if row.left_at else "-"
        table.add_row(row.contact_id, row.entered_at.isoformat(timespec="seconds"), left)
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
        await handle.signal("set_list_membership", StaticListChange(list_name=name, member=member))

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
def freshness() -> None:
    """Share of each list's members updated in the last 90 days; flags lists under 70%."""
    _, history = _lists()
    table = Table("list", "members", "updated in 90 days", "share", "")
    for row in history.freshness(datetime.now(UTC)):
        flag = "STALE (< 70%)" if row.share < FRESHNESS_FLOOR else ""
        table.add_row(row.list_name, str(row.members), str(row.fresh), f"{row.share:.0%}", flag)
    console.print(table)
