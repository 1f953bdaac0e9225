"""Operations commands: ``revops migrate``, ``revops health``, and the ``revops worker`` process.

``revops migrate`` is the one command that changes a server database's schema (compose runs it
as a one-shot job, Kubernetes as a Job, both before workers and gateway start). Several at once
are safe: the migration holds a database lock (``store/db.py``). Workers and the gateway only
check the schema version and wait for it.
"""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Annotated

import typer
from pydantic import BaseModel
from sqlalchemy import Engine

from revops.errors import StoreUnavailable
from revops.settings import Settings, redact_url
from starter.common import fail, run_async, settings
from starter.output import JsonFlag, emit
from store.db import SchemaState, create_store_engine, migrate, schema_state

__all__ = ["HealthView", "SchemaView", "register", "run_worker_service"]


class SchemaView(BaseModel):
    """What ``revops migrate`` found and did (``--json`` prints it)."""

    database: str
    """The store's URL, password hidden."""
    before: list[str]
    """Revisions the schema was at (empty: never migrated)."""
    head: list[str]
    """Revisions this release needs."""
    migrated: bool
    """Whether this run changed the schema (always false with ``--check``)."""
    current: bool
    """Whether the schema is now at (or newer than) what this release needs."""
    newer: bool
    """The schema has revisions this release does not know (a newer release migrated)."""


class HealthView(BaseModel):
    """What ``revops health`` got from an endpoint (``--json`` prints it)."""

    url: str
    healthy: bool
    status: int | None
    """HTTP status, or null when nothing answered."""
    answer: str
    """The body, or why nothing answered."""


def migrate_command(
    check: Annotated[
        bool, typer.Option("--check", help="Change nothing: exit 3 unless the schema is current.")
    ] = False,
    wait: Annotated[
        float,
        typer.Option(help="Seconds to wait for the database to answer (it may be starting)."),
    ] = 60.0,
    as_json: JsonFlag = False,
) -> None:
    """Bring the store's schema to this release's revision (safe to run several at once)."""
    current = settings()
    url = current.sqlalchemy_url
    engine = create_store_engine(url)
    try:
        before = schema_state(engine) if check else _migrate_when_reachable(engine, wait)
    except StoreUnavailable as exc:
        fail(str(exc), 3)
    finally:
        engine.dispose()
    ok = before.at_head or before.ahead
    view = SchemaView(
        database=redact_url(url),
        before=sorted(before.current),
        head=sorted(before.head),
        migrated=not check and not ok,
        current=ok or not check,
        newer=before.ahead,
    )
    emit(view, as_json, _print_schema)
    if not view.current:
        fail(f"{view.database}: {before.describe()}: run `revops migrate`", 3)


def _print_schema(view: SchemaView) -> None:
    head = ", ".join(view.head)
    if view.newer:
        print(f"{view.database}: schema at {', '.join(view.before)}: newer than this release")
    elif view.migrated:
        was = ", ".join(view.before) or "empty"
        print(f"{view.database}: store schema migrated from {was} to {head}")
    elif view.current:
        print(f"{view.database}: store schema current ({head})")


def _migrate_when_reachable(engine: Engine, wait: float) -> SchemaState:
    """Migrate, retrying for ``wait`` seconds while the database does not answer yet."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return migrate(engine)
        except StoreUnavailable:
            if time.monotonic() >= deadline:
                raise
            time.sleep(1.0)


def health_command(
    url: Annotated[
        str | None,
        typer.Option(
            help="Endpoint to probe; default the worker's /readyz on REVOPS_WORKER_HEALTH_PORT."
        ),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the answer.")] = 5.0,
    as_json: JsonFlag = False,
) -> None:
    """Probe a health endpoint: exit 0 when it answers 2xx, 1 otherwise (Docker's contract)."""
    from starter.health import probe

    current = settings()
    if url is None:
        if current.worker_health_port is None:
            fail("give --url, or set REVOPS_WORKER_HEALTH_PORT to probe this worker", 2)
        url = f"http://127.0.0.1:{current.worker_health_port}/readyz"
    status, answer = probe(url, timeout)
    healthy = status is not None and 200 <= status < 300
    view = HealthView(url=url, healthy=healthy, status=status, answer=answer)
    emit(view, as_json, lambda v: print(f"{v.status or 'no answer'} {v.answer}"))
    raise typer.Exit(0 if healthy else 1)


async def run_worker_service(current: Settings) -> None:
    """``revops worker``: wait for the schema, connect, run until SIGTERM; serve health."""
    from revops.metrics import temporal_runtime
    from revops.temporal import connect
    from starter.health import serve_worker_health, worker_health_app
    from worker import WorkerDeps, run_worker

    deps = await asyncio.to_thread(WorkerDeps.from_settings, current)
    client = await connect(current, runtime=temporal_runtime(current.worker_metrics_port))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    working = asyncio.create_task(run_worker(client, deps, stop))
    port = current.worker_health_port
    if port is None:
        await working
        return
    app = worker_health_app(deps.store, client, lambda: not working.done())
    health = asyncio.create_task(serve_worker_health(app, port, stop))
    try:
        await working
    finally:
        stop.set()
        await health


def register(app: typer.Typer) -> None:
    """Add ``migrate``, ``health`` and ``worker`` to the ``revops`` command."""
    app.command("migrate")(migrate_command)
    app.command("health")(health_command)

    @app.command("worker")
    def worker() -> None:
        """Run a worker alone (production: as many as the load needs)."""
        run_async(run_worker_service(settings()))
