"""The ``revops`` command line.

Exit codes: 0 success, 1 an asked-for thing does not exist (unknown contact), 2 bad arguments
or an invalid definition (nothing was stored), 3 a service (store, Temporal) is unreachable.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from models.contact import Stage
from models.events import StageOverride
from models.ingest import IncomingEvent
from revops.errors import ConfigError, NotFound, StoreUnavailable, TemporalUnavailable
from revops.ids import contact_workflow_id
from revops.logging import configure_logging
from revops.settings import Settings, get_settings
from revops.temporal import connect
from store.repo import Store

__all__ = ["app", "main"]

app = typer.Typer(
    help="revops: lead lifecycle and journey orchestrator.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
events_app = typer.Typer(help="Send events (as the gateway would).", no_args_is_help=True)
contacts_app = typer.Typer(help="Inspect contacts.", no_args_is_help=True)
app.add_typer(events_app, name="events")
app.add_typer(contacts_app, name="contacts")

console = Console()
err = Console(stderr=True)


def _settings() -> Settings:
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    return settings


def _open_store(settings: Settings) -> Store:
    try:
        return Store.open(settings.sqlalchemy_url, id_secret=settings.id_secret.get_secret_value())
    except StoreUnavailable as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(3) from exc


def parse_pairs(pairs: list[str], option: str) -> dict[str, Any]:
    """``key=value`` pairs; values that parse as JSON (numbers, true, null) keep their type."""
    parsed: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r} is not key=value", param_hint=option)
        try:
            parsed[key] = json.loads(raw)
        except json.JSONDecodeError:
            parsed[key] = raw
    return parsed


def _run(coro: Any) -> Any:
    try:
        return asyncio.run(coro)
    except TemporalUnavailable as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(3) from exc


@app.command()
def dev() -> None:
    """Run the whole stack on embedded defaults (what `make run` starts)."""
    from gateway.app import serve_in_dev
    from starter.dev import run_dev

    _run(run_dev(_settings(), serve_in_dev))


@app.command()
def worker() -> None:
    """Run a worker alone (production: as many as the load needs)."""
    from worker import WorkerDeps, run_worker

    settings = _settings()

    async def _main() -> None:
        deps = WorkerDeps.from_settings(settings)
        client = await connect(settings)
        stop = asyncio.Event()
        import signal

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_worker(client, deps, stop)

    _run(_main())


@events_app.command("send")
def events_send(
    user_id: Annotated[str, typer.Argument(help="The contact's user id.")],
    event_name: Annotated[str, typer.Argument(help="Event name, e.g. 'Signed Up'.")],
    prop: Annotated[list[str], typer.Option("--prop", help="Event property key=value.")] = [],  # noqa: B006
    trait: Annotated[list[str], typer.Option("--trait", help="Profile trait key=value.")] = [],  # noqa: B006
    message_id: Annotated[str | None, typer.Option(help="Idempotency key (default: new).")] = None,
) -> None:
    """Deliver one track event the way the gateway does: store once, then signal the contact."""
    if not user_id.strip() or not event_name.strip():
        raise typer.BadParameter("user id and event name must not be empty")
    properties = parse_pairs(prop, "--prop")
    traits = parse_pairs(trait, "--trait")
    settings = _settings()
    store = _open_store(settings)
    now = datetime.now(UTC)
    event = IncomingEvent(
        message_id=message_id or f"cli-{uuid.uuid4()}",
        type="track",
        name=event_name,
        user_id=user_id,
        properties=properties,
        traits=traits,
        timestamp=now,
        received_at=now,
    )
    result = store.accept([event])

    async def _deliver() -> int:
        from gateway.relay import Relay

        client = await connect(settings)
        relay = Relay(store, client, settings.task_queue)
        delivered = 0
        for contact_id in result.contact_ids:
            delivered += await relay.drain_once(contact_id)
        return delivered

    delivered = _run(_deliver())
    state = "duplicate (already stored)" if result.duplicates else "stored"
    console.print(f"{event_name!r} for {user_id}: {state}, {delivered} event(s) delivered")


@contacts_app.command("show")
def contacts_show(
    user_id: Annotated[str, typer.Argument(help="The contact's user id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Stage, stage history, profile and event counts of a contact."""
    from starter.contacts import load_contact_view

    settings = _settings()
    store = _open_store(settings)

    async def _load() -> dict[str, Any]:
        client = await connect(settings)
        return await load_contact_view(store, client, user_id)

    try:
        view = _run(_load())
    except NotFound as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    if as_json:
        print(json.dumps(view, indent=2, default=str))
        return
    _print_contact(view)


def _print_contact(view: dict[str, Any]) -> None:
    console.print(f"[bold]{view['user_id']}[/bold]  contact {view['contact_id']}")
    console.print(f"stage: [bold]{view['stage']}[/bold]   workflow: {view['workflow_id']}")
    table = Table("stage", "entered", "reason", title="stage history")
    for entry in view["stage_history"]:
        reason = entry["reason"] + (" (override)" if entry.get("override") else "")
        table.add_row(entry["stage"], str(entry["at"]), reason)
    console.print(table)
    console.print(f"profile: {json.dumps(view['profile'], default=str)}")
    console.print(f"consent: {json.dumps(view['consent'], default=str)}")
    counts = ", ".join(f"{k}: {v}" for k, v in sorted(view["event_counts"].items()))
    console.print(f"events: {counts or 'none yet'}")
    if view.get("renurture"):
        console.print(
            f"re-nurture: since {view['renurture']['since']} ({view['renurture']['reason']})"
        )


@contacts_app.command("set-stage")
def contacts_set_stage(
    user_id: Annotated[str, typer.Argument(help="The contact's user id.")],
    stage: Annotated[Stage, typer.Argument(help="The stage to set.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (required, kept in history).")],
) -> None:
    """Manually change a contact's stage (an audited exception to promotion-only)."""
    if not reason.strip():
        raise typer.BadParameter("a reason is required", param_hint="--reason")
    settings = _settings()
    store = _open_store(settings)
    contact_id = store.resolve(user_id)
    if contact_id is None:
        err.print(f"[red]no contact with user id {user_id!r}[/red]")
        raise typer.Exit(1)

    async def _signal() -> None:
        client = await connect(settings)
        handle = client.get_workflow_handle(contact_workflow_id(contact_id))
        await handle.signal("override_stage", StageOverride(stage=stage.value, reason=reason))

    _run(_signal())
    console.print(f"{user_id}: stage set to {stage.value} ({reason})")


def main() -> None:
    """Console-script entry point; definition errors exit 2 with their message."""
    try:
        app()
    except ConfigError as exc:
        err.print(f"[red]{exc}[/red]")
        raise SystemExit(2) from exc


if __name__ == "__main__":
    main()
