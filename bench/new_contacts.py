"""New contacts per second: a burst of first events, each to its Day-0 email handed to SMTP.

Issue 20, goal 2: ">= 100 new contacts per second from first event to their first journey step
executed (the Day-0 email handed to SMTP), measured with a burst of 5,000 new contacts".

One Temporal dev server (SQLite file, as ``revops dev`` runs it), one ``revops worker`` process
(``--workers N`` for more), a store (SQLite, or PostgreSQL with ``--store postgresql``), an SMTP
sink that time-stamps each message on arrival, and in this process the outbox relay. The burst:
``--burst`` new people each download the whitepaper ("Content Downloaded", type whitepaper, with
an email address), accepted in batches of 100 as the gateway does; each one's contact workflow
starts, enrolls it in ``whitepaper-nurture`` (a child journey), whose Day-0 step is a
transactional email. The clock starts at the first accept.

Printed, in the same run: (a) the baseline, one signal-with-start per new contact into a no-op
workflow (new workflows per second the server takes here, 32 in flight); (b) new contacts per
second, first accept to the last Day-0 email (and p50/p99 of each contact's own latency), as a
ratio of (a), with the worker's CPU milliseconds per new contact.

Run: ``.venv/bin/python bench/new_contacts.py`` (200 contacts, a few minutes here);
``--burst 5000`` is the goal's size.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from ingest import baseline, cpu_seconds, revops_process, store_url, wait_idle
from speed_to_lead import (
    PRIORITY_QUEUE,
    QUEUE,
    connect_when_ready,
    free_port,
    percentile,
    worker_environ,
)
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from gateway.relay import Relay
from models.ingest import IncomingEvent
from revops.ids import contact_workflow_id
from revops.logging import configure_logging
from starter.devserver import DevServer
from store.repo import Store

ID_SECRET = "bench-id-secret"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@dataclass
class Mailbox:
    """Arrival time (perf_counter) of the first message to each address."""

    arrived: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Recorder:
    def __init__(self, box: Mailbox) -> None:
        self.box = box

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        now = time.perf_counter()
        with self.box.lock:
            for rcpt in envelope.rcpt_tos:
                self.box.arrived.setdefault(rcpt.lower(), now)
        return "250 OK"


@contextlib.contextmanager
def smtp_sink(box: Mailbox) -> Iterator[int]:
    """An SMTP server that records when each address got its first message."""
    port = free_port()
    controller = Controller(_Recorder(box), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def download(user_id: str, domain: str) -> IncomingEvent:
    """A new person's first event: the whitepaper download (enrolls whitepaper-nurture), with
    a work address at ``domain`` (their company: an account)."""
    now = datetime.now(UTC)
    return IncomingEvent(
        message_id=f"bench-{uuid.uuid4()}",
        type="track",
        name="Content Downloaded",
        user_id=user_id,
        timestamp=now,
        received_at=now,
        traits={"email": f"{user_id}@{domain}", "country": "US"},
        properties={"type": "whitepaper"},
    )


@contextlib.contextmanager
def worker_processes(
    environ: dict[str, str], count: int, folder: Path, profile: Path | None
) -> Iterator[list[int]]:
    """``count`` ``revops worker`` processes serving the main and priority queues (the first
    one cProfiled into ``profile`` when given)."""
    environ = {**environ, "REVOPS_TASK_QUEUE": QUEUE, "REVOPS_PRIORITY_TASK_QUEUE": PRIORITY_QUEUE}
    with contextlib.ExitStack() as stack:
        pids = [
            stack.enter_context(
                revops_process(
                    "worker", environ, folder / f"worker-{n}.log", profile if n == 0 else None
                )
            )
            for n in range(count)
        ]
        yield pids


async def burst(
    store: Store, relay: Relay, box: Mailbox, size: int, per_account: int, patience: float
) -> dict[str, Any]:
    """Accept ``size`` first events in batches of 100; wait for every Day-0 email."""
    run = uuid.uuid4().hex[:6]
    users = [f"bench-new-{run}-{n}" for n in range(size)]
    domains = [f"co-{run}-{n // per_account}.example" for n in range(size)]
    began = time.perf_counter()
    for start in range(0, size, 100):
        batch = [download(u, d) for u, d in zip(users, domains, strict=True)][start : start + 100]
        await asyncio.to_thread(store.accept, batch)
        relay.notify()
    accepted = time.perf_counter() - began
    addresses = [f"{u}@{d}" for u, d in zip(users, domains, strict=True)]
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline and any(a not in box.arrived for a in addresses):  # noqa: ASYNC110
        await asyncio.sleep(0.2)  # the SMTP sink's thread fills it
    got = [box.arrived[a] - began for a in addresses if a in box.arrived]
    return {"accepted": accepted, "latencies": got, "missing": size - len(got), "users": users}


async def round_trips(client: Client, store: Store, users: list[str]) -> dict[str, float]:
    """Per new contact, averaged over ``users``: workflow tasks, activity tasks and local
    activities (markers, less patch markers) of its contact workflow and its children, read
    from their histories up to now (what the server and worker did for it: no noise)."""
    counts = {"workflow tasks": 0.0, "activity tasks": 0.0, "local activities": 0.0}
    kinds = {
        EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED: "workflow tasks",
        EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED: "activity tasks",
        EventType.EVENT_TYPE_MARKER_RECORDED: "local activities",
    }
    for user in users:
        contact_id = await asyncio.to_thread(store.resolve, user)
        pending = [contact_workflow_id(contact_id)] if contact_id else []
        while pending:
            handle = client.get_workflow_handle(pending.pop())
            async for event in handle.fetch_history_events():
                kind = kinds.get(event.event_type)
                if kind and not _patch_marker(event):
                    counts[kind] += 1
                if (
                    event.event_type
                    == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
                ):
                    attributes = event.start_child_workflow_execution_initiated_event_attributes
                    pending.append(attributes.workflow_id)
    return {k: v / max(1, len(users)) for k, v in counts.items()}


def _patch_marker(event: Any) -> bool:
    return bool(
        event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and event.marker_recorded_event_attributes.marker_name == "core_patch"
    )


async def run(args: argparse.Namespace) -> None:
    """Baseline, then the burst, then the figures."""
    box = Mailbox()
    with tempfile.TemporaryDirectory(prefix="revops-new-") as tmp, smtp_sink(box) as smtp:
        folder = Path(tmp)
        server = DevServer(folder / "temporal.db", port=free_port(), ui_port=None)
        await server.astart()
        try:
            client = await connect_when_ready(server.address)
            base = await baseline(client, args.burst, args.burst)
            with store_url(args.store, folder, args.pg_url) as url:
                environ = worker_environ(server.address, folder, "", smtp)
                environ["REVOPS_DATABASE_URL"] = url
                store = Store.open(url, id_secret=ID_SECRET)
                with worker_processes(environ, args.workers, folder, args.profile) as pids:
                    await wait_idle(pids)
                    relay = Relay(store, client, QUEUE)
                    relaying = asyncio.create_task(relay.run_forever())
                    cpu = cpu_seconds(pids)
                    try:
                        result = await burst(
                            store, relay, box, args.burst, args.per_account, args.timeout
                        )
                    finally:
                        relaying.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await relaying
                    result["cpu"] = cpu_seconds(pids) - cpu
                    sample = result["users"][:: max(1, args.burst // 20)]
                    result["trips"] = await round_trips(client, store, sample)
                store.engine.dispose()
        finally:
            await server.astop()
    report(args, base.rate, base.worker_cpu or 0.0, result)


def report(
    args: argparse.Namespace, base_rate: float, base_cpu: float, result: dict[str, Any]
) -> None:
    """Contacts per second, latencies, CPU per contact, goal 2 met or not."""
    got: list[float] = result["latencies"]
    print(
        f"new contacts: first event -> Day-0 email at SMTP; {os.cpu_count()} cores, "
        f"{args.store} store, {args.workers} worker process(es), "
        f"{args.per_account} new contact(s) per company"
    )
    print(
        f"(a) baseline signal-with-start, new no-op workflows: {base_rate:7.0f}/s "
        f"({args.burst}; {base_cpu * 1000 / args.burst:.2f} ms CPU each, client + worker)"
    )
    if not got:
        print("(b) no Day-0 email arrived")
        return
    rate = len(got) / max(got)
    print(f"(b) burst of {args.burst} new contacts (accepted in {result['accepted']:.1f} s):")
    ratio = rate / base_rate
    print(
        f"    contacts/s, first accept -> last Day-0 email: {rate:7.1f}/s ({ratio:.2f}x baseline)"
    )
    print(
        f"    each contact's latency                     : p50 {percentile(got, 50):.1f} s, "
        f"p99 {percentile(got, 99):.1f} s, last {max(got):.1f} s"
    )
    cpu = result["cpu"] * 1000 / len(got)
    print(f"    worker CPU per new contact                  : {cpu:.1f} ms")
    trips = ", ".join(f"{v:.1f} {k}" for k, v in result["trips"].items())
    print(f"    per new contact (contact + journey histories): {trips}")
    if result["missing"]:
        print(f"    ! {result['missing']} Day-0 emails not there within {args.timeout:.0f} s")
    met = rate >= 100 and args.burst >= 5000 and not result["missing"]
    print(
        f"goal 2 (>= 100 new contacts/s, burst of 5,000): {rate:.1f}/s with a burst of "
        f"{args.burst}: {'MET' if met else 'NOT MET'}"
    )


def arguments() -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--burst", type=int, default=200, help="new contacts (goal: 5000)")
    parser.add_argument("--workers", type=int, default=1, help="revops worker processes")
    parser.add_argument(
        "--per-account",
        type=int,
        default=1,
        help="new contacts per company domain (1: each from its own company, its own account)",
    )
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--pg-url", default=PG_URL)
    parser.add_argument("--profile", type=Path, help="write the first worker's cProfile here")
    parser.add_argument("--timeout", type=float, default=900.0, help="wait for the emails (s)")
    return parser.parse_args()


def main() -> None:
    """Entry point."""
    configure_logging("console", "WARNING")
    asyncio.run(run(arguments()))


if __name__ == "__main__":
    main()
