"""The ``revops`` command line.

Exit codes: 0 success, 1 an asked-for thing does not exist (unknown contact), 2 bad arguments
or an invalid definition (nothing was stored), 3 a service (store, Temporal) is unreachable.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from models.contact import Stage
from models.events import StageOverride
from models.ingest import IncomingEvent
from revops.errors import ConfigError
from revops.ids import contact_workflow_id
from revops.temporal import connect
from starter.common import (
    console,
    err,
    open_store,
    resolve_contact,
    run_async,
    settings,
)
from starter.journeys_cli import journeys_app
from starter.lists_cli import lists_app
from starter.reports_cli import reports_app
from starter.scoring_cli import scoring_app

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
app.add_typer(journeys_app, name="journeys")
app.add_typer(lists_app, name="lists")
app.add_typer(scoring_app, name="scoring")
app.add_typer(reports_app, name="reports")


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


@app.command()
def dev() -> None:
    """Run the whole stack on embedded defaults (what `make run` starts)."""
    from gateway.app import serve_in_dev
    from starter.dev import run_dev

    run_async(run_dev(settings(), serve_in_dev))


@app.command()
def worker() -> None:
    """Run a worker alone (production: as many as the load needs)."""
    from worker import WorkerDeps, run_worker

    current = settings()

    async def _main() -> None:
        deps = WorkerDeps.from_settings(current)
        client = await connect(current)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_worker(client, deps, stop)

    run_async(_main())


@app.command()
def gateway() -> None:
    """Serve the gateway and the outbox relay alone (production: `docker compose` runs this)."""
    from gateway.app import run_gateway

    run_async(run_gateway(settings()))


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
    current = settings()
    store = open_store(current)
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

        client = await connect(current)
        relay = Relay(store, client, current.task_queue)
        delivered = 0
        for contact_id in result.contact_ids:
            delivered += await relay.drain_once(contact_id)
        return delivered

    delivered = run_async(_deliver())
    state = "duplicate (already stored)" if result.duplicates else "stored"
    console.print(f"{event_name!r} for {user_id}: {state}, {delivered} event(s) delivered")


@contacts_app.command("show")
def contacts_show(
    user_id: Annotated[str, typer.Argument(help="The contact's user id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Stage, stage history, scores, lists, demand state, profile and event counts."""
    from starter.contacts import load_contact_view, print_contact

    current = settings()
    store = open_store(current)

    async def _load() -> dict[str, Any]:
        client = await connect(current)
        return await load_contact_view(store, client, user_id)

    view = run_async(_load())
    if as_json:
        print(json.dumps(view, indent=2, default=str))
        return
    print_contact(view)


@contacts_app.command("why")
def contacts_why(
    user_id: Annotated[str, typer.Argument(help="The contact's user id.")],
) -> None:
    """Why this contact has its score, stage, lists and demand state, in plain words."""
    from starter.contacts import load_why

    current = settings()
    store = open_store(current)

    async def _load() -> list[str]:
        client = await connect(current)
        return await load_why(store, client, user_id)

    for line in run_async(_load()):
        console.print(line, highlight=False)


@contacts_app.command("set-stage")
def contacts_set_stage(
    user_id: Annotated[str, typer.Argument(help="The contact's user id.")],
    stage: Annotated[Stage, typer.Argument(help="The stage to set.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (required, kept in history).")],
) -> None:
    """Manually change a contact's stage (an audited exception to promotion-only)."""
    if not reason.strip():
        raise typer.BadParameter("a reason is required", param_hint="--reason")
    current = settings()
    store = open_store(current)
    contact_id = resolve_contact(store, user_id)

    async def _signal() -> None:
        client = await connect(current)
        handle = client.get_workflow_handle(contact_workflow_id(contact_id))
        await handle.signal("override_stage", StageOverride(stage=stage.value, reason=reason))

    run_async(_signal())
    console.print(f"{user_id}: stage set to {stage.value} ({reason})")


def main() -> None:
    """Console-script entry point; definition errors exit 2 with their message.

    It ends with ``os._exit`` after flushing: the Temporal SDK's native threads may still log
    while the interpreter finalizes, which can abort the process after the work is done.
    """
    code = 0
    try:
        app()
    except ConfigError as exc:
        err.print(f"[red]{exc}[/red]")
        code = 2
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
