"""The ``revops`` command line.

Exit codes: 0 success, 1 an asked-for thing does not exist (unknown contact), 2 bad arguments
or an invalid definition (nothing was stored), 3 a service (store, Temporal) is unreachable.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from lifecycle.stages import Stage
from models.events import StageOverride
from models.ingest import IncomingEvent
from revops import __version__
from revops.errors import ConfigError
from revops.ids import contact_workflow_id
from starter.common import (
    console,
    err,
    open_store,
    resolve_contact,
    run_async,
    settings,
)
from starter.lazy import Lazy, lazy_group
from starter.ops_cli import register as register_ops_commands
from starter.output import JsonFlag, emit

__all__ = ["app", "main"]

GROUPS = {
    "accounts": Lazy(
        "starter.accounts_cli:accounts_app",
        "Accounts: members, buying committee, scores, demand state, the account play.",
    ),
    "journeys": Lazy(
        "starter.journeys_cli:journeys_app",
        "Journeys: validate, deploy, roll back, simulate with time travel, A/B reports.",
    ),
    "lists": Lazy(
        "starter.lists_cli:lists_app",
        "Lists (segments): counts, members' entries and exits, static lists, freshness.",
    ),
    "scoring": Lazy(
        "starter.scoring_cli:scoring_app",
        "Scoring models: backtest, synthetic history, deploy and roll back.",
    ),
    "reports": Lazy(
        "starter.reports_cli:reports_app",
        "Reports: funnel, velocity, attribution, journeys, forecast, SLA attainment.",
    ),
    "definitions": Lazy(
        "starter.definitions_cli:definitions_app",
        "Every kind of definition: list, validate, deploy, history, rollback, show.",
    ),
    "dashboard": Lazy(
        "starter.dashboard_cli:dashboard_app", "The web dashboard (/dashboard): its users."
    ),
    "demo": Lazy("starter.demo_cli:demo_app", "Demo data for a running stack (make run)."),
    "mail": Lazy(
        "starter.mail_cli:mail_app", "Mail caught in development by `revops dev` (list, show)."
    ),
    "retention": Lazy(
        "starter.retention_cli:retention_app", "Event retention: schedule, run, report."
    ),
    "crm": Lazy("starter.crm_cli:crm_app", "The CRM loop: sync status, resync (docs/crm.md)."),
}
"""The command groups, each imported only when it runs (see starter/lazy.py)."""
CONTACT_COMMANDS = {
    "erase": Lazy(
        "starter.privacy_cli:erase",
        "Erase a person everywhere: store rows and Temporal executions (idempotent).",
    ),
    "export": Lazy(
        "starter.privacy_cli:export",
        "Everything held about a person as one JSON document (an access request).",
    ),
    "import": Lazy(
        "starter.crm_cli:import_contacts",
        "Bring contacts in from a CSV, through the gateway's accept path (docs/crm.md).",
    ),
}

app = typer.Typer(
    cls=lazy_group(GROUPS),
    help="revops: lead lifecycle and journey orchestrator.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
events_app = typer.Typer(
    help="Send events (as the gateway would); see the calls it refused.", no_args_is_help=True
)
contacts_app = typer.Typer(
    cls=lazy_group(CONTACT_COMMANDS), help="Inspect contacts.", no_args_is_help=True
)
app.add_typer(events_app, name="events")
app.add_typer(contacts_app, name="contacts")
register_ops_commands(app)  # migrate, health, worker


def _print_version(asked: bool) -> None:
    if asked:
        print(f"revops {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """revops: lead lifecycle and journey orchestrator."""


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
def gateway(
    role: Annotated[
        str,
        typer.Option(
            "--role",
            help="all: the whole gateway; links: only recipients' links (tracked clicks, "
            "open pixel, unsubscribe) and health, in a process of their own.",
        ),
    ] = "all",
) -> None:
    """Serve the gateway and the outbox relay alone (production: `docker compose` runs this)."""
    from gateway.app import run_gateway

    if role not in ("all", "links"):
        typer.echo(f"--role must be all or links, not {role!r}", err=True)
        raise typer.Exit(2)
    run_async(run_gateway(settings(), "links" if role == "links" else "all"))


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
        from revops.temporal import connect

        client = await connect(current)
        relay = Relay(store, client, current.task_queue)
        delivered = 0
        for contact_id in result.contact_ids:
            delivered += await relay.drain_once(contact_id)
        return delivered

    delivered = run_async(_deliver())
    state = "duplicate (already stored)" if result.duplicates else "stored"
    console.print(f"{event_name!r} for {user_id}: {state}, {delivered} event(s) delivered")


@events_app.command("rejected")
def events_rejected(
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="How many, newest first.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Calls of batches the gateway refused (the dead-letter table), newest first."""
    from starter.rejected_view import load_rejected, print_rejected

    emit(load_rejected(open_store(settings()), limit), as_json, print_rejected)


@contacts_app.command("show")
def contacts_show(
    user_id: Annotated[str, typer.Argument(help="The contact's user id.")],
    as_json: JsonFlag = False,
) -> None:
    """Stage, stage history, scores, lists, demand state, profile and event counts."""
    from revops.temporal import connect
    from starter.contacts import load_contact_view, print_contact

    current = settings()
    store = open_store(current)

    async def _load() -> dict[str, Any]:
        client = await connect(current)
        return await load_contact_view(store, client, user_id)

    emit(run_async(_load()), as_json, print_contact)


@contacts_app.command("why")
def contacts_why(
    user_id: Annotated[str, typer.Argument(help="The contact's user id.")],
    as_json: JsonFlag = False,
) -> None:
    """Why this contact has its score, stage, lists and demand state, in plain words."""
    from definitions import Definitions
    from revops.temporal import connect
    from starter.contacts import WhyView, load_why, print_why

    current = settings()
    store = open_store(current)

    async def _load() -> WhyView:
        client = await connect(current)
        return await load_why(store, client, user_id, Definitions.of(store, current))

    emit(run_async(_load()), as_json, print_why)


@contacts_app.command("set-stage")
def contacts_set_stage(
    user_id: Annotated[str, typer.Argument(help="The contact's user id.")],
    stage: Annotated[Stage, typer.Argument(help="The stage to set.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (required, kept in history).")],
) -> None:
    """Manually change a contact's stage (an audited exception to promotion-only)."""
    from revops.temporal import connect
    from workflows.contact import ContactWorkflow

    if not reason.strip():
        raise typer.BadParameter("a reason is required", param_hint="--reason")
    current = settings()
    store = open_store(current)
    contact_id = resolve_contact(store, user_id)

    async def _signal() -> None:
        client = await connect(current)
        handle = client.get_workflow_handle(contact_workflow_id(contact_id))
        await handle.signal(
            ContactWorkflow.override_stage, StageOverride(stage=stage.value, reason=reason)
        )

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
