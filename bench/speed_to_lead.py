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
import itertools
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
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.common import Priority
from temporalio.service import RPCError

from gateway.relay import Relay
from handoff.contract import HandoffInput
from handoff.routing import RoutingInput
from models.ingest import IncomingEvent
from revops.ids import contact_workflow_id
from revops.logging import configure_logging
from revops.temporal import DATA_CONVERTER
from starter.devserver import DevServer
from store.repo import Store
from workflows.contact import ContactWorkflow
from workflows.handoff import HandoffWorkflow

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
    wall: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextlib.contextmanager
def slack_sink() -> Iterator[SlackSink]:
    """A threaded HTTP server that timestamps every POST and answers 200."""
    sink = SlackSink()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            now, wall = time.perf_counter(), time.time()
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            found = CONTACT.search(body.decode("utf-8", "replace"))
            if found is not None:
                with sink.lock:
                    sink.arrived.setdefault(found.group(1), now)
                    sink.wall.setdefault(found.group(1), wall)
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
        "REVOPS_JOURNEYS_DIR": str(REPO / "config" / "journeys"),
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
    started_wall: dict[str, float] = field(default_factory=dict)

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
        t0, wall = time.perf_counter(), time.time()
        accepted = [event(user_id, name, traits)]
        result = await asyncio.to_thread(self.store.accept, accepted, urgent=HAND_RAISERS)
        (contact_id,) = result.contact_ids
        self.started[contact_id] = t0
        self.started_wall[contact_id] = wall
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
            HandoffWorkflow.run, data, id=handoff_id, task_queue=queue, priority=priority
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
        for _ in range(600):  # a minute: a busy machine may take long to start the first one
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


# ---- the delivery rate, measured in the same run ----------------------------------------------


async def events_applied(client: Client, contact_id: str) -> int:
    """How many events the contact's workflow has applied (0 before it exists)."""
    handle = client.get_workflow_handle(contact_workflow_id(contact_id))
    try:
        state = await handle.query(ContactWorkflow.state)
    except RPCError:
        return 0
    return state.events_applied


async def wait_applied(client: Client, expected: dict[str, int], patience: float) -> bool:
    """Until every contact's workflow applied ``expected`` events (queried 8 at a time, each
    contact at most twice a second, so measuring does not slow what it measures)."""
    waiting = dict(expected)
    deadline = time.monotonic() + patience
    gate = asyncio.Semaphore(8)

    async def check(contact_id: str) -> None:
        async with gate:
            if await events_applied(client, contact_id) >= waiting[contact_id]:
                del waiting[contact_id]

    while waiting and time.monotonic() < deadline:
        await asyncio.gather(*(check(c) for c in list(waiting)))
        if waiting:
            await asyncio.sleep(0.5)
    return not waiting


async def delivery_rate(
    client: Client, store: Store, relay: Relay, contacts: int, per_contact: int, patience: float
) -> tuple[float, int]:
    """Ordinary events/s the stack applies in the real ContactWorkflow: one event per load
    contact first (their workflows start, not timed), then ``per_contact`` more each, accepted
    at once, timed from the first accept to the last event applied. Returns (rate, events)."""
    users = [f"bench-load-{i}" for i in range(contacts)]
    expected: dict[str, int] = {}

    async def accept(names: list[str]) -> None:
        for start in range(0, len(names), 100):
            batch = [event(u, ordinary(n + start)) for n, u in enumerate(names[start:][:100])]
            result = await asyncio.to_thread(store.accept, batch)
            for contact_id in result.contact_ids:
                expected[contact_id] = expected.get(contact_id, 0) + 1
        relay.notify()

    await accept(users)
    await wait_applied(client, expected, patience)
    began = time.perf_counter()
    await accept([u for _ in range(per_contact) for u in users])
    done = await wait_applied(client, expected, patience)
    seconds = time.perf_counter() - began
    events = contacts * per_contact
    if not done:
        print(f"  ! the rate burst was not applied within {patience:.0f}s; rate is a bound")
    return events / seconds, events


# ---- where the time goes -----------------------------------------------------------------------

SEGMENTS = (
    "accept -> contact signalled (store, relay express lane)",
    "-> contact task started (main queue wait)",
    "-> contact task completed (step, handoff start command)",
    "-> handoff task started (child start, priority queue wait)",
    "-> handoff task completed (routing local activity)",
    "-> notice activity started (activity queue wait)",
    "-> Slack notification arrived (notice activity)",
)


def _seconds(stamp: Any) -> float:
    return float(stamp.seconds + stamp.nanos / 1e9)


def _first(events: list[Any], kind: int, after: int = 0, **attrs: Any) -> Any:
    """The first history event of ``kind`` after event id ``after`` whose attributes match."""
    for e in events:
        matches = all(_attr(e, path) == value for path, value in attrs.items())
        if e.event_type == kind and e.event_id > after and matches:
            return e
    return None


def _attr(event: Any, path: str) -> Any:
    value = event
    for part in path.split("__"):
        value = getattr(value, part)
    return value


def _contact_marks(history: list[Any]) -> list[float] | None:
    """Signalled, first task started after it, and the task that started the handoff done."""
    signalled = _first(history, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
    initiated = _first(history, EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED)
    if signalled is None or initiated is None:
        return None
    attributes = initiated.start_child_workflow_execution_initiated_event_attributes
    done = next(e for e in history if e.event_id == attributes.workflow_task_completed_event_id)
    began = _first(history, EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED, after=signalled.event_id)
    return [_seconds(e.event_time) for e in (signalled, began, done)]


def _handoff_marks(history: list[Any]) -> list[float] | None:
    """Handoff's first task started, the task scheduling the notice done, notice started."""
    began = _first(history, EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED)
    scheduled = _first(
        history,
        EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
        activity_task_scheduled_event_attributes__activity_type__name="send_handoff_notice",
    )
    if began is None or scheduled is None:
        return None
    task = scheduled.activity_task_scheduled_event_attributes.workflow_task_completed_event_id
    done = next(e for e in history if e.event_id == task)
    started = _first(
        history,
        EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED,
        activity_task_started_event_attributes__scheduled_event_id=scheduled.event_id,
    )
    # A local or eager activity may have no separate start: count it from its scheduling.
    return [_seconds(e.event_time) for e in (began, done, started or scheduled)]


async def breakdown(bench: Bench, contact_id: str) -> list[float] | None:
    """Seconds spent in each of ``SEGMENTS`` for one hand-raiser, from the two histories
    (server time stamps; the bench runs on the same machine, so wall clocks agree)."""
    client, sink = bench.client, bench.sink
    if contact_id not in sink.wall:
        return None
    contact = client.get_workflow_handle(contact_workflow_id(contact_id))
    handoff = client.get_workflow_handle(f"handoff-{contact_id}-1")
    try:
        ours = _contact_marks([e async for e in contact.fetch_history_events()])
        theirs = _handoff_marks([e async for e in handoff.fetch_history_events()])
    except RPCError:
        return None
    if ours is None or theirs is None:
        return None
    marks = [bench.started_wall[contact_id], *ours, *theirs, sink.wall[contact_id]]
    return [b - a for a, b in itertools.pairwise(marks)]


async def print_breakdown(bench: Bench, contacts: list[str]) -> None:
    """Median and p99 of each segment over the hand-raisers given."""
    rows = [r for c in contacts if (r := await breakdown(bench, c)) is not None]
    if not rows:
        print("  (no breakdown: histories not readable)")
        return
    print(f"  where the time goes (n={len(rows)}; median / p99 of each segment):")
    for n, label in enumerate(SEGMENTS):
        values = [r[n] for r in rows]
        print(
            f"    {label:<62} {percentile(values, 50) * 1000:6.0f} / "
            f"{percentile(values, 99) * 1000:6.0f} ms"
        )


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
    parser.add_argument("--handraisers", type=int, default=20, help="per way, without load")
    parser.add_argument(
        "--loaded", type=int, default=100, help="hand-raisers per way under load (goal: >= 100)"
    )
    parser.add_argument("--interval", type=float, default=0.4, help="seconds between them")
    parser.add_argument(
        "--load-rate",
        type=float,
        default=0,
        help="ordinary events/s under load; 0 (default): half the delivery rate measured first",
    )
    parser.add_argument(
        "--rate-burst", type=int, default=3, help="events per load contact timing the delivery"
    )
    parser.add_argument("--contacts", type=int, default=300, help="contacts the load spreads over")
    parser.add_argument("--ramp", type=float, default=4.0, help="load seconds before measuring")
    parser.add_argument("--timeout", type=float, default=30.0, help="wait per phase (s)")
    parser.add_argument(
        "--ways",
        default="contact workflow,priority queue",
        help="ways measured under load (comma-separated): contact workflow, " + ", ".join(WAYS),
    )
    parser.add_argument("--goal-ms", type=float, default=500.0, help="goal 3's p99")
    parser.add_argument(
        "--nice", type=int, default=10, help="niceness of the main-queue worker (0: none)"
    )
    return parser.parse_args()


@dataclass
class Outcome:
    """What one run measured."""

    wired: bool = False
    rate: float = 0.0
    rate_events: int = 0
    load_rate: float = 0.0
    accepted: int = 0
    backlog: int = 0
    base: dict[str, list[float]] = field(default_factory=dict)
    under: dict[str, list[float]] = field(default_factory=dict)


async def measure(bench: Bench, args: argparse.Namespace, out: Outcome) -> None:
    """Delivery rate, baseline, then hand-raisers under load at half that rate."""
    store, relay, client = bench.store, bench.relay, bench.client
    await bench.detect_wiring()
    out.wired = bench.wired
    out.rate, out.rate_events = await delivery_rate(
        client, store, relay, args.contacts, args.rate_burst, args.timeout * 10
    )
    out.load_rate = args.load_rate or out.rate / 2
    first = "contact workflow" if bench.wired else "priority queue"
    quiet_ways = (first, "priority queue") if bench.wired else (first,)
    asked = tuple(w.strip() for w in args.ways.split(",") if w.strip())
    busy_ways = tuple(w for w in asked if bench.wired or w != "contact workflow")
    warm = await run_handraisers(bench, 3, args.interval, quiet_ways)
    await bench.latencies([c for w in quiet_ways for c in warm[w]], args.timeout)
    quiet = await run_handraisers(bench, args.handraisers, args.interval, quiet_ways)
    out.base = {w: await bench.latencies(quiet[w], args.timeout) for w in quiet_ways}
    async with background_load(store, relay, out.load_rate, args.contacts) as load:
        await asyncio.sleep(args.ramp)
        busy = await run_handraisers(bench, args.loaded, args.interval, busy_ways)
        out.under = {w: await bench.latencies(busy[w], args.timeout) for w in busy_ways}
        out.accepted, out.backlog = load["accepted"], store.pending_count()
    if bench.wired:
        await print_breakdown(bench, busy["contact workflow"])


async def main() -> None:
    """Delivery rate, baseline, the same under load, and the figures."""
    args = arguments()
    configure_logging("console", "WARNING")
    began = time.monotonic()
    out = Outcome()
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
                try:
                    await measure(Bench(client, store, relay, sink), args, out)
                finally:
                    relaying.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await relaying
        finally:
            await server.astop()
    report(out, args, time.monotonic() - began)


def report(out: Outcome, args: argparse.Namespace, seconds: float) -> None:
    """The figures, and goal 3 met or not."""
    how = (
        "the contact workflow starts each hand-raiser's handoff; the other rows start "
        "HandoffWorkflow directly after delivering the lead's event"
        if out.wired
        else "HandoffWorkflow started directly right after the hand-raiser was delivered "
        "(the contact workflow does not start handoffs yet)"
    )
    first = "contact workflow" if out.wired else "priority queue"
    print(f"speed-to-lead: event accepted -> rep's Slack notification; {os.cpu_count()} cores")
    print(f"  {how}")
    print(
        f"  delivery rate into the real ContactWorkflow: {out.rate:.0f} events/s "
        f"({out.rate_events} events over {args.contacts} contacts, measured first)"
    )
    print(
        f"  load: {out.load_rate:.0f} ordinary events/s "
        f"({'half the delivery rate' if not args.load_rate else 'as asked'}) over "
        f"{args.contacts} contacts ({out.accepted} accepted, {out.backlog} still in the outbox "
        f"at the end); main-queue worker at niceness {args.nice}"
    )
    for way, values in out.base.items():
        print(line(f"(a) no load, {way}", values, None))
    for way, values in out.under.items():
        print(line(f"(b) load, {way}", values, out.base.get(way) or out.base[first]))
    goal = out.under.get(first, [])
    if goal:
        p99 = percentile(goal, 99) * 1000
        met = p99 < args.goal_ms and len(goal) >= 100 and not args.load_rate
        print(
            f"goal 3 (p99 < {args.goal_ms:.0f} ms, n >= 100, load at half the delivery rate): "
            f"p99 {p99:.0f} ms, n={len(goal)}, {first}: {'MET' if met else 'NOT MET'}"
        )
    print(f"  ({seconds:.0f} s in all)")


if __name__ == "__main__":
    asyncio.run(main())
