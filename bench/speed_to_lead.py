"""Speed-to-lead: from a hand-raiser's event accepted to the rep's Slack notification arriving.

One Temporal dev server (SQLite file, as ``revops dev`` runs it), two ``revops worker``
subprocesses (one serving the main task queue, one serving only the priority queue, as
docs/handoff.md recommends for production), a SQLite store, and in this process: a local HTTP
sink standing in for Slack's incoming webhook (it timestamps each notification on arrival),
an SMTP sink for the rep emails, the outbox relay and a load generator.

A hand-raiser is an event stored with ``store.accept`` (what the gateway does before answering
200: the clock starts there) and handed to the relay's express lane (``Relay.expedite``, as the
gateway does for hand-raiser events); one relay runs throughout, delivering the load too. The
ways of handing it off, interleaved so they share the same conditions:

  contact workflow - a "Demo Requested" whose contact workflow starts the handoff child itself
                     (only once the contact side is wired; detected at start-up);
  priority queue   - ``HandoffWorkflow`` started directly on ``Settings.priority_task_queue``
                     right after the event is delivered (the design: own workers and slots);
  shared queue     - the same on the main queue, behind the ordinary traffic;
  shared + key 1   - the main queue with Temporal task priority ``priority_key=1``.

Until the contact side is wired, the hand-raiser is a "Demo Requested" and the bench starts the
handoff directly (it says so); once wired, direct rows use an event that starts no handoff,
delivered by an immediate drain for that contact before the handoff starts.

Phases: (a) baseline, hand-raisers alone; (b) the same under load: ordinary events (page views,
email opens, ...) accepted continuously over many contacts and relayed by
the same relay. It prints p50/p99 speed-to-lead per way and phase, and each loaded figure
as a ratio of the same way's baseline.

The main-queue worker runs at ``--nice`` 10 by default: on one small machine that stands in for
what production does, handoff workers with CPU of their own (``--nice 0`` to compare).

Run: ``.venv/bin/python bench/speed_to_lead.py`` (about 90 s), or smaller and quicker:
``--handraisers 8 --load-rate 20 --timeout 15``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from temporalio.client import Client
from temporalio.common import Priority
from temporalio.service import RPCError

from gateway.relay import Relay
from models.handoff import HandoffInput
from models.ingest import IncomingEvent
from revops.logging import configure_logging
from revops.routing import RoutingInput
from revops.temporal import DATA_CONVERTER
from starter.devserver import DevServer
from store.repo import Store

REPO = Path(__file__).resolve().parent.parent
REVOPS = str(Path(sys.executable).parent / "revops")
ID_SECRET = "bench-id-secret"
QUEUE, PRIORITY_QUEUE = "bench", "bench-priority"
ORDINARY = ("Page Viewed", "Email Opened", "Case Study Viewed", "Email Clicked", "Content Viewed")
"""Ordinary traffic, as in bench/ingest.py's realistic mix: browsing and mail, plus one webinar
registration (a journey and its emails) in every hundred events."""


def ordinary(n: int) -> str:
    """The n-th ordinary event's name."""
    return "Webinar Registered" if n % 100 == 99 else ORDINARY[n % len(ORDINARY)]


CONTACT = re.compile(r"\(contact (c[0-9a-f]+), handoff")
WAYS = ("priority queue", "shared queue", "shared + key 1")
HAND_RAISERS = frozenset({"Demo Requested"})


def free_port() -> int:
    """A localhost port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# ---- sinks -------------------------------------------------------------------------------------


@dataclass
class SlackSink:
    """Arrival time (perf_counter) of the first Slack notification about each contact."""

    url: str = ""
    arrived: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextlib.contextmanager
def slack_sink() -> Iterator[SlackSink]:
    """A threaded HTTP server that timestamps every POST and answers 200."""
    sink = SlackSink()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            now = time.perf_counter()
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            found = CONTACT.search(body.decode("utf-8", "replace"))
            if found is not None:
                with sink.lock:
                    sink.arrived.setdefault(found.group(1), now)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    sink.url = f"http://127.0.0.1:{server.server_port}/slack"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()


class _Discard:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        return "250 OK"


@contextlib.contextmanager
def smtp_sink() -> Iterator[int]:
    """An SMTP server that accepts and drops the rep emails."""
    port = free_port()
    controller = Controller(_Discard(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


# ---- the stack -----------------------------------------------------------------------------------


def worker_environ(address: str, folder: Path, slack: str, smtp: int) -> dict[str, str]:
    """What every ``revops worker`` of the bench shares (store, server, sinks)."""
    return {
        **os.environ,
        "REVOPS_DATA_DIR": str(folder),
        "REVOPS_DATABASE_URL": f"sqlite:///{folder / 'revops.db'}",
        "REVOPS_TEMPORAL_ADDRESS": address,
        "REVOPS_ID_SECRET": ID_SECRET,
        "REVOPS_CONFIG_DIR": str(REPO / "config"),
        "REVOPS_JOURNEYS_DIR": str(REPO / "journeys"),
        "REVOPS_SLACK_WEBHOOK_URL": slack,
        "REVOPS_SMTP_PORT": str(smtp),
        "REVOPS_LOG_LEVEL": "WARNING",
    }


@contextlib.contextmanager
def worker_process(
    environ: dict[str, str], queue: str, log: Path, niceness: int = 0
) -> Iterator[None]:
    """``revops worker`` serving only ``queue`` (handoffs go to the priority queue either way),
    at ``niceness`` (the busy worker yields the CPU, as if it ran on its own machine)."""
    environ = {
        **environ,
        "REVOPS_TASK_QUEUE": queue,
        "REVOPS_PRIORITY_TASK_QUEUE": PRIORITY_QUEUE,
        "REVOPS_SERVE_PRIORITY_QUEUE": "false",
    }
    argv = ["nice", "-n", str(niceness), REVOPS, "worker"] if niceness else [REVOPS, "worker"]
    with log.open("wb") as out:
        process = subprocess.Popen(argv, env=environ, stdout=out, stderr=out)
        try:
            yield
        finally:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


@contextlib.contextmanager
def workers(address: str, folder: Path, slack: str, smtp: int, niceness: int) -> Iterator[Store]:
    """A fresh SQLite store, a worker for the main queue and one for the priority queue."""
    environ = worker_environ(address, folder, slack, smtp)
    store = Store.open(environ["REVOPS_DATABASE_URL"], id_secret=ID_SECRET)  # migrate first
    with (
        worker_process(environ, QUEUE, folder / "worker.log", niceness),
        worker_process(environ, PRIORITY_QUEUE, folder / "handoff-worker.log"),
    ):
        yield store


async def connect_when_ready(address: str) -> Client:
    """A client once the frontend answers."""
    for _ in range(150):
        with contextlib.suppress(RuntimeError):
            return await Client.connect(address, data_converter=DATA_CONVERTER)
        await asyncio.sleep(0.2)
    raise SystemExit(f"Temporal at {address} did not become ready")


def event(user_id: str, name: str, traits: dict[str, Any] | None = None) -> IncomingEvent:
    """An accepted track event as the gateway builds it."""
    now = datetime.now(UTC)
    return IncomingEvent(
        message_id=f"bench-{uuid.uuid4()}",
        type="track",
        name=name,
        user_id=user_id,
        timestamp=now,
        received_at=now,
        traits=traits or {},
        properties={"path": "/demo"} if name == "Demo Requested" else {},
    )


# ---- hand-raisers --------------------------------------------------------------------------------


@dataclass
class Bench:
    """Everything a hand-raiser needs; ``wired`` when contact workflows start handoffs.

    Results are keyed by contact id (every rep notification names the contact's opaque id).
    """

    client: Client
    store: Store
    relay: Relay
    sink: SlackSink
    wired: bool = False
    started: dict[str, float] = field(default_factory=dict)

    async def handraiser(self, way: str) -> str:
        """Accept and deliver one lead's event, then hand it off ``way``; returns its contact.

        ``contact workflow``: a "Demo Requested" its contact workflow hands off itself. The
        other ways start ``HandoffWorkflow`` directly; once the contact side is wired they use
        an event that does not trigger a handoff, so each lead gets exactly one.
        """
        direct = way != "contact workflow"
        name = "Pricing Page Viewed" if direct and self.wired else "Demo Requested"
        traits = {"country": "US", "company_size": 300, "industry": "Software"}
        user_id = f"bench-hr-{uuid.uuid4().hex[:10]}"
        t0 = time.perf_counter()
        accepted = [event(user_id, name, traits)]
        result = await asyncio.to_thread(self.store.accept, accepted, urgent=HAND_RAISERS)
        (contact_id,) = result.contact_ids
        self.started[contact_id] = t0
        if direct:
            await self.relay.drain_once(contact_id)
            await self.start_directly(contact_id, way)
        else:  # what the gateway does: the relay's express lane delivers it
            self.relay.expedite(result.urgent_contact_ids)
            self.relay.notify()
        return contact_id

    async def start_directly(self, contact_id: str, way: str) -> None:
        """What the contact workflow does in the task that sees the hand-raise."""
        handoff_id = f"bench-{contact_id}"
        data = HandoffInput(
            contact_id=contact_id,
            handoff_id=handoff_id,
            trigger="hand_raiser",
            reason="Demo Requested",
            top_behaviours=["Demo Requested"],
            lead=RoutingInput(contact_id=contact_id, trigger="hand_raiser", country="US"),
            mql_at=datetime.now(UTC),
        )
        queue = PRIORITY_QUEUE if way == "priority queue" else QUEUE
        priority = Priority(priority_key=1) if way == "shared + key 1" else Priority.default
        await self.client.start_workflow(
            "HandoffWorkflow", data, id=handoff_id, task_queue=queue, priority=priority
        )

    async def latencies(self, contacts: list[str], patience: float) -> list[float]:
        """Seconds from accept to Slack for each contact (waits up to ``patience`` s)."""
        arrived = self.sink.arrived
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(patience):
                while any(c not in arrived for c in contacts):  # noqa: ASYNC110 - a thread fills it
                    await asyncio.sleep(0.05)
        missing = [c for c in contacts if c not in arrived]
        if missing:
            print(f"  ! {len(missing)} of {len(contacts)} notifications not there in {patience}s")
        return [arrived[c] - self.started[c] for c in contacts if c in arrived]

    async def detect_wiring(self) -> None:
        """One warm-up hand-raiser: does its contact workflow start the handoff by itself?"""
        contact_id = await self.handraiser("contact workflow")
        for _ in range(100):
            with contextlib.suppress(RPCError):
                await self.client.get_workflow_handle(f"handoff-{contact_id}-1").describe()
                self.wired = True
                return
            await asyncio.sleep(0.1)
        await self.start_directly(contact_id, "priority queue")


async def run_handraisers(
    bench: Bench, count: int, interval: float, ways: tuple[str, ...]
) -> dict[str, list[str]]:
    """``count`` hand-raisers per way, one every ``interval`` seconds, ways interleaved."""
    ids: dict[str, list[str]] = {way: [] for way in ways}
    tasks = []
    for n in range(count * len(ways)):
        way = ways[n % len(ways)]
        tasks.append((way, asyncio.create_task(bench.handraiser(way))))
        await asyncio.sleep(interval)
    for way, task in tasks:
        ids[way].append(await task)
    return ids


# ---- background load -------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def background_load(
    store: Store, relay: Relay, rate: float, contacts: int
) -> AsyncIterator[dict[str, int]]:
    """Ordinary events at ``rate`` per second over ``contacts`` contacts, relayed as the
    gateway relays them; yields counters (accepted events)."""
    counters = {"accepted": 0}
    stop = asyncio.Event()

    async def generate() -> None:
        tick, n = 0.05, 0
        while not stop.is_set():
            size = max(1, round(rate * tick))
            batch = [
                event(f"bench-load-{(n + i) % contacts}", ordinary(n + i)) for i in range(size)
            ]
            n += size
            await asyncio.to_thread(store.accept, batch)
            counters["accepted"] += size
            relay.notify()
            await asyncio.sleep(tick)

    tasks = [asyncio.create_task(generate())]  # the bench's relay is already running
    try:
        yield counters
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


# ---- report ------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def line(label: str, values: list[float], base: list[float] | None) -> str:
    """``label: p50 .. ms, p99 .. ms`` and the ratios to the baseline."""
    if not values:
        return f"{label:<30}: no notification arrived"
    p50, p99 = percentile(values, 50), percentile(values, 99)
    text = f"{label:<30}: p50 {p50 * 1000:7.0f} ms   p99 {p99 * 1000:7.0f} ms   (n={len(values)})"
    if base:
        text += (
            f"   {p50 / percentile(base, 50):5.1f}x / {p99 / percentile(base, 99):5.1f}x baseline"
        )
    return text


# ---- main --------------------------------------------------------------------------------------


def arguments() -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--handraisers", type=int, default=20, help="per way and phase")
    parser.add_argument("--interval", type=float, default=0.4, help="seconds between them")
    parser.add_argument(
        "--load-rate",
        type=float,
        default=45,
        help="ordinary events/s (half the delivery rate bench/ingest.py measures here)",
    )
    parser.add_argument("--contacts", type=int, default=300, help="contacts the load spreads over")
    parser.add_argument("--ramp", type=float, default=4.0, help="load seconds before measuring")
    parser.add_argument("--timeout", type=float, default=30.0, help="wait per phase (s)")
    parser.add_argument(
        "--nice", type=int, default=10, help="niceness of the main-queue worker (0: none)"
    )
    return parser.parse_args()


async def main() -> None:
    """Baseline, then the same under load, and the figures."""
    args = arguments()
    configure_logging("console", "WARNING")
    began = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="revops-stl-") as tmp,
        slack_sink() as sink,
        smtp_sink() as smtp,
    ):
        folder = Path(tmp)
        server = DevServer(folder / "temporal.db", port=free_port(), ui_port=None)
        await server.astart()
        try:
            with workers(server.address, folder, sink.url, smtp, args.nice) as store:
                client = await connect_when_ready(server.address)
                relay = Relay(store, client, QUEUE)
                relaying = asyncio.create_task(relay.run_forever())
                bench = Bench(client, store, relay, sink)
                await bench.detect_wiring()
                first = "contact workflow" if bench.wired else "priority queue"
                quiet_ways = ("contact workflow", *WAYS[:1]) if bench.wired else WAYS[:1]
                busy_ways = ("contact workflow", *WAYS) if bench.wired else WAYS
                warm = await run_handraisers(bench, 3, args.interval, quiet_ways)
                await bench.latencies([c for w in quiet_ways for c in warm[w]], args.timeout)
                quiet = await run_handraisers(bench, args.handraisers, args.interval, quiet_ways)
                base = {w: await bench.latencies(quiet[w], args.timeout) for w in quiet_ways}
                async with background_load(store, relay, args.load_rate, args.contacts) as load:
                    await asyncio.sleep(args.ramp)
                    busy = await run_handraisers(bench, args.handraisers, args.interval, busy_ways)
                    under = {w: await bench.latencies(busy[w], args.timeout) for w in busy_ways}
                    accepted, backlog = load["accepted"], store.pending_count()
                relaying.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await relaying
        finally:
            await server.astop()
    how = (
        "the contact workflow starts each hand-raiser's handoff (as wired by the lead); the "
        "other rows start HandoffWorkflow directly after delivering the lead's event"
        if bench.wired
        else "HandoffWorkflow started directly right after the hand-raiser was delivered "
        "(the contact workflow does not start handoffs yet)"
    )
    print(f"speed-to-lead: event accepted -> rep's Slack notification; {os.cpu_count()} cores")
    print(f"  {how}")
    print(
        f"  load: {args.load_rate:.0f} ordinary events/s over {args.contacts} contacts "
        f"({accepted} accepted, {backlog} still in the outbox at the end); main-queue worker "
        f"at niceness {args.nice}"
    )
    for way, values in base.items():
        print(line(f"(a) no load, {way}", values, None))
    for way, values in under.items():
        print(line(f"(b) load, {way}", values, base.get(way) or base[first]))
    print(f"  ({time.monotonic() - began:.0f} s in all)")


if __name__ == "__main__":
    asyncio.run(main())
