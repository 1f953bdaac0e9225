"""``revops dev``: the whole stack in one foreground process, on embedded defaults.

Temporal dev server (SQLite file under the data dir, web UI), the worker, the outbox relay and
(when present) the gateway. Ctrl-C stops everything; the next run resumes where it left off,
because the dev server's state, the store and the outbox all live in files under the data dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Callable, Coroutine
from typing import Any

from gateway.relay import Relay
from revops.logging import get_logger
from revops.settings import Settings
from revops.temporal import connect
from starter.devserver import DevServer
from starter.mailcatcher import MailCatcher, wants_catcher
from worker import WorkerDeps, run_worker

__all__ = ["run_dev"]

log = get_logger(__name__)

ExtraService = Callable[[WorkerDeps, Relay, asyncio.Event], Coroutine[Any, Any, None]]


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) != 0


def _mail_line(settings: Settings, catcher: MailCatcher | None, with_gateway: bool) -> str:
    where = f"{settings.smtp_host}:{settings.smtp_port}"
    if catcher is None:
        return f"  mail               sent to the SMTP server at {where}"
    page = f", http://{settings.gateway_host}:{settings.gateway_port}/dev/mail" * with_gateway
    return f"  mail catcher       smtp://{where}  (.venv/bin/revops mail{page})"


def _banner(
    settings: Settings, server: DevServer, with_gateway: bool, catcher: MailCatcher | None
) -> str:
    lines = [
        "",
        "revops is running (Ctrl-C stops everything)",
        f"  Temporal frontend  {server.address}  (namespace {settings.temporal_namespace})",
        f"  Temporal web UI    http://{server.host}:{settings.temporal_ui_port}",
        f"  worker             task queue {settings.task_queue!r}",
        f"  data               {settings.data_dir.resolve()}  (temporal.db, revops.db)",
        _mail_line(settings, catcher, with_gateway),
    ]
    if with_gateway:
        lines += [
            f"  gateway            http://{settings.gateway_host}:{settings.gateway_port}"
            f"  (docs at /docs, write key {settings.write_keys[0]!r})",
        ]
    lines += [
        "  try                .venv/bin/revops events send u-1 'Signed Up'",
        "                     .venv/bin/revops contacts show u-1",
        "",
    ]
    return "\n".join(lines)


async def run_dev(settings: Settings, extra: ExtraService | None = None) -> None:
    """Run the stack until SIGINT/SIGTERM."""
    host, _, port = settings.temporal_address.rpartition(":")
    if not _port_free(host, int(port)):
        raise SystemExit(
            f"port {port} is in use: is another `revops dev` or Temporal server running?"
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    server = DevServer(
        settings.temporal_db_file,
        host=host,
        port=int(port),
        ui_port=settings.temporal_ui_port,
        log_file=settings.data_dir / "temporal.log",
    )
    await server.astart()
    catcher = MailCatcher(settings) if wants_catcher(settings) else None
    if catcher is not None:
        catcher.start()  # journey emails land in the data dir: `revops mail`
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        deps = WorkerDeps.from_settings(settings, migrate=True)  # the only process here
        client = await connect(settings)
        relay = Relay(deps.store, client, settings.task_queue, shards=settings.relay_shards)
        tasks = [
            asyncio.create_task(run_worker(client, deps, stop)),
            asyncio.create_task(relay.run_forever()),
        ]
        if extra is not None:
            tasks.append(asyncio.create_task(extra(deps, relay, stop)))
        print(_banner(settings, server, extra is not None, catcher), flush=True)
        await stop.wait()
        log.info("stopping")
        tasks[1].cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks)
    finally:
        if catcher is not None:
            catcher.stop()
        await server.astop()
        log.info("stopped")
