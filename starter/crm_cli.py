"""``revops crm status|resync`` and ``revops contacts import``: operating the CRM loop.

- ``crm status [--json]``: the provider, the last sync, the backlog and its oldest row,
  contacts failing (with the last error), tasks waiting, contacts linked to CRM records, 429s
  seen, the rate window's headroom and, for Salesforce, the daily API use.
- ``crm resync USER... | --all [--dry-run]``: each contact's current snapshot (its workflow's
  state; the store's stage when it has no workflow) queued and pushed now, with a progress bar;
  ``--dry-run`` reads the CRM and prints what each push would write, writing nothing.
- ``contacts import FILE.csv`` (``starter.contacts_import``): checked row by row, stored through
  the gateway's accept path, with a progress bar.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session
from temporalio.client import Client
from temporalio.service import RPCError

from activities.crm_sync import CrmSync, build_connector
from contacts.contract import ContactState
from contacts.crm import snapshot_of
from crm.connector import CrmError
from crm.ratelimit import RateLimit
from crm.records import CrmSnapshot
from definitions import CRM, Definitions
from revops.errors import ConfigError
from revops.ids import contact_workflow_id
from revops.settings import Settings
from revops.temporal import connect
from starter.common import console, err, fail, open_store, run_async, settings
from starter.contacts_import import ImportRow, Rejected, read_rows, to_events
from starter.output import JsonFlag, Moment, emit
from store.crm import CrmBook
from store.repo import Store
from store.schema import ContactRow
from workflows.contact import ContactWorkflow

__all__ = ["crm_app", "import_contacts"]

crm_app = typer.Typer(help="The CRM loop: sync status, resync (docs/crm.md).", no_args_is_help=True)

_CHUNK = 500


class CrmStatusView(BaseModel):
    """What ``revops crm status`` shows."""

    provider: str
    configured: bool
    last_sync_at: Moment | None
    backlog: int
    oldest_queued_at: Moment | None
    failing: int
    last_error: str | None
    last_error_at: Moment | None
    tasks_waiting: int
    linked: int
    pushed: int
    throttled: int
    headroom: dict[str, Any]
    cursor: Moment | None


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        transient=True,
    )


@crm_app.command("status")
def crm_status(as_json: JsonFlag = False) -> None:
    """Last sync, backlog, errors and rate-limit headroom of the CRM sync."""
    current = settings()
    store = open_store(current)
    try:
        definition = Definitions.of(store, current).get(CRM)
    except ConfigError as exc:
        fail(str(exc), 2)
    status = CrmBook(store).status(definition.provider)
    configured = build_connector(definition, current, RateLimit(1, 1.0)) is not None
    view = CrmStatusView(
        provider=definition.provider,
        configured=configured,
        last_sync_at=status.last_sync_at,
        backlog=status.backlog,
        oldest_queued_at=status.oldest_queued_at,
        failing=status.failing,
        last_error=status.last_error,
        last_error_at=status.last_error_at,
        tasks_waiting=status.tasks_waiting,
        linked=status.linked,
        pushed=status.pushed,
        throttled=status.throttled,
        headroom=status.headroom,
        cursor=status.cursor,
    )
    emit(view, as_json, _print_status)


def _when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else "never"


def _error_line(view: CrmStatusView) -> str:
    return f"{view.last_error} ({_when(view.last_error_at)})" if view.last_error else "-"


def _print_status(view: CrmStatusView) -> None:
    table = Table(title=f"CRM sync: {view.provider}", show_header=False)
    rows = [
        ("configured", "yes" if view.configured else "no (credentials or provider missing)"),
        ("last sync", _when(view.last_sync_at)),
        ("backlog", f"{view.backlog} contact(s), oldest queued {_when(view.oldest_queued_at)}"),
        ("failing", str(view.failing)),
        (
            "last error",
            f"{view.last_error} ({_when(view.last_error_at)})" if view.last_error else "-",
        ),
        ("tasks waiting", str(view.tasks_waiting)),
        ("linked to CRM records", str(view.linked)),
        ("pushed (total)", str(view.pushed)),
        ("429 answers", str(view.throttled)),
    ]
    headroom = view.headroom
    if "remaining" in headroom:
        rows.append(
            (
                "rate window",
                f"{headroom['remaining']}/{headroom.get('limit')} calls left per "
                f"{headroom.get('window_seconds')} s",
            )
        )
    if "api_limit" in headroom:
        rows.append(("daily API use", f"{headroom['api_used']}/{headroom['api_limit']}"))
    if view.cursor:
        rows.append(("changes read up to", _when(view.cursor)))
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)


# ---- resync ----------------------------------------------------------------------------------


def _contacts(store: Store, user_ids: Sequence[str], every: bool) -> list[str]:
    if every:
        with Session(store.engine) as session:
            rows = session.scalars(
                select(ContactRow.contact_id)
                .where(ContactRow.merged_into.is_(None))
                .order_by(ContactRow.contact_id)
            ).all()
        return list(rows)
    found = []
    for user_id in user_ids:
        contact_id = store.resolve(user_id)
        if contact_id is None:
            fail(f"no contact with user id {user_id!r}", 1)
        found.append(contact_id)
    return found


async def _snapshot(client: Client, store: Store, contact_id: str) -> CrmSnapshot:
    now = datetime.now(UTC)
    handle = client.get_workflow_handle_for(ContactWorkflow.run, contact_workflow_id(contact_id))
    try:
        state: ContactState = await handle.query(ContactWorkflow.state)
    except RPCError:
        row = store.contact(contact_id)
        return CrmSnapshot(
            contact_id=contact_id, reasons=["resync"], stage=row.stage if row else None, at=now
        )
    return snapshot_of(state, ["resync"], now)


async def _snapshots(
    current: Settings, store: Store, contact_ids: list[str], advance: Callable[[], None]
) -> list[CrmSnapshot]:
    client = await connect(current)
    found = []
    for contact_id in contact_ids:
        found.append(await _snapshot(client, store, contact_id))
        advance()
    return found


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@crm_app.command("resync")
def crm_resync(
    user_ids: Annotated[list[str] | None, typer.Argument(help="User ids to push again.")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every contact.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would change; write nothing.")
    ] = False,
) -> None:
    """Push contacts to the CRM again (after a mapping change, or to repair a record)."""
    if bool(user_ids) == every:
        fail("name user ids or --all (not both)", 2)
    current = settings()
    store = open_store(current)
    sync = CrmSync(store, current)
    try:
        connector = sync.connector()
    except ConfigError as exc:
        fail(str(exc), 2)
    if connector is None:
        fail("no CRM configured: set the crm definition's provider and its credentials", 2)
    contact_ids = _contacts(store, user_ids or [], every)
    with _progress() as progress:
        task = progress.add_task("reading contacts", total=len(contact_ids))
        snapshots = run_async(
            _snapshots(current, store, contact_ids, lambda: progress.advance(task))
        )
    if dry_run:
        _print_plan(sync, snapshots)
        return
    with _progress() as progress:
        task = progress.add_task("pushing", total=len(snapshots))
        sync.book.enqueue_all(snapshots)
        pushed = sync.drain_all(lambda n: progress.advance(task, n))
    status = sync.book.status(sync.definition.provider)
    console.print(
        f"{pushed} contact(s) pushed to {sync.definition.provider}; backlog {status.backlog}"
    )
    if status.last_error and status.backlog:
        fail(f"the CRM refused a batch: {status.last_error}", 3)


def _print_plan(sync: CrmSync, snapshots: list[CrmSnapshot]) -> None:
    connector = sync.connector()
    assert connector is not None
    for chunk in _chunks(snapshots, sync.definition.batch_size):
        records = sync.book.records(chunk)
        try:
            plan = connector.plan(records)
        except CrmError as exc:
            fail(f"the CRM could not be read: {exc}", 3)
        for record in records:
            contact_id = record.snapshot.contact_id
            who = store_name(record.snapshot.contact_id, sync)
            if contact_id in plan.skipped:
                console.print(f"{who}: skipped: {plan.skipped[contact_id]}")
                continue
            changes = plan.written.get(contact_id, {})
            verb = "create" if contact_id in plan.created else "update"
            if not changes:
                console.print(f"{who}: no change")
                continue
            shown = ", ".join(f"{k}={v!r}" for k, v in sorted(changes.items()))
            console.print(f"{who}: {verb}: {shown}")


def store_name(contact_id: str, sync: CrmSync) -> str:
    """The user id of a contact for a printout (the contact id when it has none)."""
    return sync.store.user_id_of(contact_id) or contact_id


# ---- import ----------------------------------------------------------------------------------


def _report(rejected: list[Rejected], report: Path | None) -> None:
    for item in rejected[:50]:
        err.print(f"row {item.row}: {item.reason}")
    if len(rejected) > 50:
        err.print(f"... and {len(rejected) - 50} more")
    if report is not None:
        lines = [
            "row,reason",
            *(f'{r.row},"{r.reason.replace(chr(34), chr(39))}"' for r in rejected),
        ]
        report.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _store_rows(store: Store, provider: str, rows: list[ImportRow]) -> tuple[int, int, int]:
    """Accept the rows' events; link CRM ids of the contacts that exist afterwards only (an
    erased person's events are refused, and nothing about them may be written back)."""
    accepted = duplicates = refused = 0
    book = CrmBook(store)
    with _progress() as progress:
        task = progress.add_task("importing", total=len(rows))
        for chunk in _chunks(rows, _CHUNK):
            result = store.accept([e for row in chunk for e in to_events(row)])
            accepted += result.accepted
            duplicates += result.duplicates
            refused += result.refused
            links = {
                contact: r.crm_id
                for r in chunk
                if r.crm_id and (contact := store.resolve(r.user_id)) is not None
            }
            if links:
                book.link(provider, {k: v for k, v in links.items() if v})
            progress.advance(task, len(chunk))
    return accepted, duplicates, refused


def import_contacts(
    file: Annotated[Path, typer.Argument(help="A CSV file with a header row.")],
    mapping: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            help="COLUMN=TARGET (user_id, email, account, crm_id, "
            "consent:<key>, trait:<name>, ignore).",
        ),
    ] = None,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Store the valid rows even if some are not.")
    ] = False,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write the rejected rows here (CSV).")
    ] = None,
) -> None:
    """Bring contacts in from a CSV, through the gateway's accept path (docs/crm.md)."""
    if not file.is_file():
        fail(f"{file}: no such file", 2)
    try:
        columns, rows, rejected = read_rows(file, mapping or [])
    except (ValueError, UnicodeDecodeError) as exc:
        fail(str(exc), 2)
    targets = ", ".join(f"{c}->{t}" for c, t in columns.items())
    err.print(f"columns: {targets}")
    if rejected:
        _report(rejected, report)
        if not skip_invalid:
            count = len(rejected)
            fail(f"{count} row(s) rejected: nothing imported (--skip-invalid stores the rest)", 2)
    current = settings()
    store = open_store(current)
    try:
        provider = Definitions.of(store, current).get(CRM).provider
    except ConfigError as exc:
        fail(str(exc), 2)
    linked_as = provider if provider != "none" else "crm"
    accepted, duplicates, refused = _store_rows(store, linked_as, rows)
    console.print(
        f"{len(rows)} contact(s) imported ({accepted} event(s) stored, {duplicates} already "
        f"there), {len(rejected)} row(s) rejected; the relay delivers them to their workflows"
    )
    if refused:
        console.print(
            f"{refused} event(s) of erased people refused: stored nowhere (docs/privacy.md)"
        )
