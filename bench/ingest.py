"""Ingest throughput: the gateway and relay against a raw signal-with-start baseline.

One Temporal dev server persisting to a SQLite file (as ``revops dev`` runs it) serves every
phase, in this order:

(a) baseline: one signal-with-start of a no-op workflow per event, straight from a Temporal
    client (32 in flight), with an in-process worker running the no-op workflows;
(c) pipeline: ``revops gateway`` (app + relay) as a subprocess, fed Segment batches
    (``--batch`` calls each, ``--senders`` in flight, as SDKs in several app servers would) over
    real HTTP, delivering to a stand-in "ContactWorkflow" that only counts messageIds: the
    gateway, store and relay measured without the contact workflow's own cost;
(b) full: the same through ``revops gateway`` and ``revops worker`` (the real ContactWorkflow,
    an SMTP sink for the mail it sends), until every event is applied in its workflow (checked
    by query once a contact's outbox rows are all delivered). ``--no-full`` skips it.

For (b) and (c) it prints the accept rate (events/s acknowledged with 200), the relay rate
(until the outbox is empty: every event acknowledged by Temporal), the delivery rate (events/s
applied in workflows, from the first request to the last event applied), their ratios to the
baseline, and p50/p99 accept latency per request.

Run: ``.venv/bin/python bench/ingest.py`` (10,000 events over 1,000 contacts), or smaller:
``--events 2000 --contacts 200 --baseline-events 1000``; ``--keep`` keeps logs and databases,
``--profile DIR`` writes cProfile files of the gateway and worker processes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from temporalio import workflow
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError
from temporalio.worker import Worker

from models.contact import ContactState
from revops.ids import contact_workflow_id
from revops.temporal import DATA_CONVERTER
from starter.devserver import DevServer
from store.repo import Store
from store.schema import OutboxRow

REPO = Path(__file__).resolve().parent.parent
REVOPS = str(Path(sys.executable).parent / "revops")
WRITE_KEY = "bench-write-key"
ID_SECRET = "bench-id-secret"
BEHAVIOURS = ("Email Opened", "Case Study Viewed", "Webinar Registered", "Demo Requested")
BROWSING = ("Email Opened", "Case Study Viewed", "Email Clicked", "Content Viewed")
"""The ``realistic`` mix: most contacts only browse and read mail; every 10th registers for a
webinar (a journey), every 20th requests a demo (a handoff and a journey). ``converting``: every
contact does both (the worst case: each one starts journeys, a handoff and sends mail)."""
PAGES = ("Pricing", "Security", "Integrations", "Blog")
GATEWAY_ENV = {"REVOPS_LOG_LEVEL": os.environ.get("BENCH_GATEWAY_LOG_LEVEL", "WARNING")}


@workflow.defn(name="NoopWorkflow", sandboxed=False)
class NoopWorkflow:
    """The baseline's entity: takes signals and does nothing with them."""

    @workflow.run
    async def run(self) -> None:
        """Live until the server goes away."""
        await workflow.wait_condition(lambda: False)

    @workflow.signal(name="events")
    def events(self, _payload: Any) -> None:
        """Ignore the event."""


APPLIED: dict[str, set[str]] = defaultdict(set)
"""Phase (c): messageIds each stand-in workflow applied, by workflow id (read without queries)."""


@workflow.defn(name="ContactWorkflow", sandboxed=False)
class StubContactWorkflow:
    """Phase (c): stands in for ContactWorkflow, so the pipeline is measured without its cost.

    It records what it applies in this process's APPLIED (idempotent, so a replay after a
    cache eviction changes nothing): the bench then checks progress without querying.
    """

    @workflow.run
    async def run(self, _input: Any) -> None:
        """Live until the server goes away."""
        await workflow.wait_condition(lambda: False)

    @workflow.signal(name="events")
    def events(self, batch: Any) -> None:
        """Count each messageId once, as the real workflow does."""
        APPLIED[workflow.info().workflow_id].update(e["message_id"] for e in batch["events"])


@dataclass
class Phase:
    """One run through the gateway: its own store, task queue and contact-id secret."""

    folder: Path
    task_queue: str
    id_secret: str
    real_worker: bool
    workers: int = 1


@dataclass
class Figures:
    """What one phase measured."""

    events: int
    seconds: float
    latencies: list[float] | None = None
    relayed_seconds: float | None = None
    delivered_seconds: float | None = None

    @property
    def rate(self) -> float:
        """Events per second over ``seconds``."""
        return self.events / self.seconds

    @property
    def relay_rate(self) -> float:
        """Events per second until the outbox was empty (every event acknowledged by Temporal)."""
        assert self.relayed_seconds is not None
        return self.events / self.relayed_seconds

    @property
    def delivery_rate(self) -> float:
        """Events per second until every event was applied."""
        assert self.delivered_seconds is not None
        return self.events / self.delivered_seconds


def free_port() -> int:
    """A localhost port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def connect_when_ready(address: str) -> Client:
    """A client, once the server's frontend answers (its port opens a little earlier)."""
    for _ in range(100):
        with contextlib.suppress(RuntimeError):
            return await Client.connect(address, data_converter=DATA_CONVERTER)
        await asyncio.sleep(0.2)
    raise SystemExit(f"Temporal at {address} did not become ready")


async def bounded(concurrency: int, jobs: list[Callable[[], Awaitable[Any]]]) -> list[Any]:
    """Run ``jobs`` with at most ``concurrency`` in flight, results in order."""
    limit = asyncio.Semaphore(concurrency)

    async def run(job: Callable[[], Awaitable[Any]]) -> Any:
        async with limit:
            return await job()

    return await asyncio.gather(*(run(job) for job in jobs))


# ---- (a) baseline -----------------------------------------------------------------------------


async def baseline(client: Client, events: int, contacts: int) -> Figures:
    """One signal-with-start of a no-op workflow per event, 32 in flight."""
    queue = "bench-noop"

    def job(i: int) -> Callable[[], Awaitable[Any]]:
        return lambda: client.start_workflow(
            NoopWorkflow.run,
            id=f"noop-{i % contacts}",
            task_queue=queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            start_signal="events",
            start_signal_args=[{"n": i}],
        )

    async with Worker(client, task_queue=queue, workflows=[NoopWorkflow]):
        start = time.perf_counter()
        await bounded(32, [job(i) for i in range(events)])
        seconds = time.perf_counter() - start
    return Figures(events=events, seconds=seconds)


# ---- (b) through the gateway ------------------------------------------------------------------


def _behaviour(contact: int, i: int, mix: str) -> str:
    """The track event a contact sends at position ``i`` (see BROWSING for the mixes)."""
    if mix == "converting":
        return BEHAVIOURS[i % 4]
    if i == 7 and contact % 20 == 0:
        return "Demo Requested"
    if i == 2 and contact % 10 == 0:
        return "Webinar Registered"
    return BROWSING[i % 4]


def calls_for(contact: int, count: int, start: datetime, mix: str) -> list[dict[str, Any]]:
    """A contact's calls: an anonymous pricing view, identify, then tracks and page views."""
    user, anonymous = f"bench-user-{contact}", f"bench-anon-{contact}"
    at = [(start + timedelta(seconds=i)).isoformat() for i in range(count)]
    calls: list[dict[str, Any]] = [
        {"type": "page", "anonymousId": anonymous, "name": "Pricing", "timestamp": at[0]},
        {
            "type": "identify",
            "userId": user,
            "anonymousId": anonymous,
            "timestamp": at[1],
            "traits": {
                "email": f"{user}@example.com",
                "title": "VP Engineering",
                "company_size": 100 + contact,
                "industry": "Software",
            },
        },
    ]
    for i in range(2, count):
        if i % 3:
            calls.append({"type": "track", "userId": user, "event": _behaviour(contact, i, mix)})
        else:
            calls.append({"type": "page", "userId": user, "name": PAGES[i % 4]})
        calls[-1].update(timestamp=at[i], properties={"path": f"/p/{i}", "n": i})
    for i, call in enumerate(calls):
        call["messageId"] = f"bench-{contact}-{i}"
    return calls[:count]


def interleaved(events: int, contacts: int, mix: str) -> list[dict[str, Any]]:
    """All contacts active at once: each contact's calls in order, contacts interleaved."""
    per_contact = events // contacts
    start = datetime.now(UTC) - timedelta(hours=1)
    streams = [calls_for(c, per_contact, start, mix) for c in range(contacts)]
    return [stream[i] for i in range(per_contact) for stream in streams]


_PROFILED = """
import cProfile, os, sys
profile = cProfile.Profile()
real_exit = os._exit
def dump_then_exit(code):
    profile.disable()
    profile.dump_stats("{out}")
    real_exit(code)
os._exit = dump_then_exit  # the CLI ends with os._exit
sys.argv = ["revops", sys.argv[1]]
from starter.cli import main
profile.enable()
main()
"""


@contextlib.contextmanager
def revops_process(
    command: str, environ: dict[str, str], log: Path, profile: Path | None
) -> Iterator[None]:
    """``revops <command>`` as a subprocess for the duration of the block (cProfiled if asked)."""
    argv = [REVOPS, command]
    if profile is not None:
        argv = [sys.executable, "-c", _PROFILED.format(out=profile / f"{command}.prof"), command]
    with log.open("wb") as out:
        process = subprocess.Popen(argv, env=environ, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield
        finally:
            process.send_signal(signal.SIGINT)  # a graceful stop (and the profile written)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()


async def wait_until_serving(url: str) -> None:
    """Wait for the gateway's /healthz."""
    async with httpx.AsyncClient(base_url=url) as http:
        for _ in range(300):
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get("/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise SystemExit("the gateway did not start (see gateway.log)")


async def send(url: str, calls: list[dict[str, Any]], batch: int, senders: int) -> list[float]:
    """POST the calls as batches; returns each request's latency in seconds."""
    batches = [calls[i : i + batch] for i in range(0, len(calls), batch)]
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=senders)
    async with httpx.AsyncClient(
        base_url=url, auth=(WRITE_KEY, ""), limits=limits, timeout=60
    ) as http:

        def job(body: list[dict[str, Any]]) -> Callable[[], Awaitable[None]]:
            async def post() -> None:
                start = time.perf_counter()
                answer = await http.post("/v1/batch", json={"batch": body})
                latencies.append(time.perf_counter() - start)
                answer.raise_for_status()

            return post

        await bounded(senders, [job(b) for b in batches])
    return latencies


async def applied(client: Client, contact_id: str, real: bool) -> int:
    """How many events the contact's workflow has applied (0 before it exists)."""
    if not real:
        return len(APPLIED[contact_workflow_id(contact_id)])
    handle = client.get_workflow_handle(contact_workflow_id(contact_id))
    try:
        state: ContactState = await handle.query("state", result_type=ContactState)
    except RPCError:
        return 0
    return state.events_applied


def contacts_pending(store: Store) -> set[str]:
    """Contacts with outbox rows not yet delivered."""
    query = select(OutboxRow.contact_id).where(OutboxRow.delivered_at.is_(None)).distinct()
    with store.engine.connect() as connection:
        return set(connection.scalars(query))


async def wait_applied(
    store: Store, client: Client, expected: dict[str, int], real: bool, give_up_after: float
) -> float:
    """Until every contact applied its events; each contact is checked once it is delivered.

    A real workflow is checked by query, which costs the worker a task: each contact is asked
    at most once a second, 8 at a time, so the measuring does not slow what it measures.
    Returns when the outbox was first seen empty (perf_counter), i.e. all events relayed.
    """
    waiting = dict(expected)
    next_check = dict.fromkeys(expected, 0.0)
    deadline = time.monotonic() + give_up_after
    relayed = None
    while waiting:
        pending = await asyncio.to_thread(contacts_pending, store)
        now = time.perf_counter()
        if not pending and relayed is None:
            relayed = now
        ready = [c for c in waiting if c not in pending and next_check[c] <= now]
        counts = await bounded(8, [_query(client, c, real) for c in ready])
        for contact_id, count in zip(ready, counts, strict=True):
            next_check[contact_id] = time.perf_counter() + (1.0 if real else 0.0)
            if count >= waiting[contact_id]:
                del waiting[contact_id]
        if waiting and time.monotonic() > deadline:
            sample = next(iter(waiting))
            raise SystemExit(
                f"{len(waiting)} contacts not done after {give_up_after:.0f}s "
                f"({len(pending)} with undelivered events; e.g. {sample}: "
                f"{await applied(client, sample, real)} of {waiting[sample]} applied)"
            )
        if waiting:
            await asyncio.sleep(0.1)
    return relayed or time.perf_counter()


def _query(client: Client, contact_id: str, real: bool) -> Callable[[], Awaitable[int]]:
    return lambda: applied(client, contact_id, real)


class _DiscardMail:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        return "250 accepted"


@contextlib.contextmanager
def smtp_sink() -> Iterator[int]:
    """A local SMTP server that accepts and drops mail (contacts qualify and get emails)."""
    from aiosmtpd.controller import Controller

    port = free_port()
    controller = Controller(_DiscardMail(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@contextlib.asynccontextmanager
async def gateway_stack(
    client: Client, address: str, phase: Phase, profile: Path | None
) -> AsyncIterator[tuple[str, Store]]:
    """``revops gateway`` on a fresh SQLite store and a worker; yields URL and store.

    The worker is ``revops worker`` (the real ContactWorkflow) or, for phase (c), an
    in-process worker running the stand-in.
    """
    database = f"sqlite:///{phase.folder / 'revops.db'}"
    store = Store.open(database, id_secret=phase.id_secret)  # migrate before the processes
    port = free_port()
    environ = {
        **os.environ,
        "REVOPS_DATA_DIR": str(phase.folder),
        "REVOPS_DATABASE_URL": database,
        "REVOPS_TEMPORAL_ADDRESS": address,
        "REVOPS_TASK_QUEUE": phase.task_queue,
        "REVOPS_GATEWAY_PORT": str(port),
        "REVOPS_WRITE_KEYS": f'["{WRITE_KEY}"]',
        "REVOPS_ID_SECRET": phase.id_secret,
        "REVOPS_CONFIG_DIR": str(REPO / "config"),
        "REVOPS_JOURNEYS_DIR": str(REPO / "journeys"),
        "REVOPS_LOG_LEVEL": "WARNING",
        "REVOPS_LOG_FORMAT": "json",
    }
    with contextlib.ExitStack() as processes:
        if phase.real_worker:
            smtp_port = processes.enter_context(smtp_sink())
            worker_env = {**environ, "REVOPS_SMTP_PORT": str(smtp_port)}
            for n in range(phase.workers):  # workers are stateless: more processes, more cores
                log = phase.folder / f"worker-{n}.log"
                worker_profile = profile if n == 0 else None
                processes.enter_context(revops_process("worker", worker_env, log, worker_profile))
        gateway_env = {**environ, **GATEWAY_ENV}
        log = phase.folder / "gateway.log"
        processes.enter_context(revops_process("gateway", gateway_env, log, profile))
        url = f"http://127.0.0.1:{port}"
        await wait_until_serving(url)
        if phase.real_worker:
            yield url, store
            return
        stub = Worker(
            client,
            task_queue=phase.task_queue,
            workflows=[StubContactWorkflow],
            max_concurrent_workflow_task_polls=20,
        )
        async with stub:
            yield url, store


async def through_gateway(
    client: Client, address: str, phase: Phase, args: argparse.Namespace
) -> Figures:
    """Accept and delivery of ``args.events`` events through the gateway."""
    phase.folder.mkdir(parents=True, exist_ok=True)
    calls = interleaved(args.events, args.contacts, args.mix)
    per_contact = len(calls) // args.contacts
    async with gateway_stack(client, address, phase, args.profile) as (url, store):
        expected = {
            store.contact_id_for(f"bench-user-{c}"): per_contact for c in range(args.contacts)
        }
        start = time.perf_counter()
        latencies = await send(url, calls, args.batch, args.senders)
        accepted = time.perf_counter() - start
        done = await wait_applied(store, client, expected, phase.real_worker, args.timeout)
        delivered = time.perf_counter() - start
    return Figures(len(calls), accepted, latencies, done - start, delivered)


# ---- report -----------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def _rows(figures: Figures, base: Figures) -> list[tuple[str, float, str]]:
    return [
        ("    accept (200s)", figures.rate, f"{figures.rate / base.rate:.1f}x baseline"),
        (
            "    relayed (acked by Temporal)",
            figures.relay_rate,
            f"{figures.relay_rate / base.rate:.1f}x",
        ),
        (
            "    delivered (applied in wf)",
            figures.delivery_rate,
            f"{figures.delivery_rate / base.rate:.1f}x",
        ),
    ]


def _latency(figures: Figures) -> str:
    assert figures.latencies is not None
    p50, p99 = (percentile(figures.latencies, q) * 1000 for q in (50, 99))
    mean = statistics.mean(figures.latencies) * 1000
    label = "    accept latency per request"
    return f"{label:32}: p50 {p50:.0f} ms, p99 {p99:.0f} ms (mean {mean:.0f} ms)"


def report(base: Figures, stub: Figures, full: Figures | None, args: argparse.Namespace) -> None:
    """Print the figures and their ratios to the baseline."""
    print(
        f"dev server on SQLite, {os.cpu_count()} cores; {stub.events} events over "
        f"{args.contacts} contacts ({args.mix} mix), batches of {args.batch}, "
        f"{args.senders} senders, {args.workers} worker process(es)"
    )
    print(
        f"{'(a) baseline signal-with-start':32}: {base.rate:8.0f} events/s  ({base.events} events)"
    )
    phases = [("(c) gateway -> stand-in workflow (the pipeline alone)", stub)]
    if full is not None:
        phases.append(("(b) gateway -> ContactWorkflow (revops worker)", full))
    for label, figures in phases:
        print(label)
        for name, rate, note in _rows(figures, base):
            print(f"{name:32}: {rate:8.0f} events/s  ({note})")
        print(_latency(figures))


def arguments() -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--contacts", type=int, default=1_000)
    parser.add_argument("--batch", type=int, default=100, help="calls per /v1/batch request")
    parser.add_argument(
        "--mix",
        choices=("realistic", "converting"),
        default="realistic",
        help="realistic: 1 in 20 contacts requests a demo; converting: every contact does",
    )
    parser.add_argument("--senders", type=int, default=4, help="requests in flight")
    parser.add_argument("--workers", type=int, default=1, help="revops worker processes in (b)")
    parser.add_argument("--baseline-events", type=int, default=None, help="default: --events")
    parser.add_argument("--timeout", type=float, default=600, help="give up after (seconds)")
    parser.add_argument("--keep", action="store_true", help="keep the logs and databases")
    parser.add_argument(
        "--no-full", action="store_true", help="skip (b), the real ContactWorkflow phase"
    )
    parser.add_argument(
        "--profile", type=Path, default=None, help="write worker/gateway cProfile files here"
    )
    return parser.parse_args()


async def main() -> None:
    """Run both phases on one dev server and print the figures."""
    args = arguments()
    folder = Path(tempfile.mkdtemp(prefix="revops-bench-"))
    try:
        server = DevServer(folder / "temporal.db", port=free_port(), ui_port=None)
        await server.astart()
        try:
            client = await connect_when_ready(server.address)
            base = await baseline(client, args.baseline_events or args.events, args.contacts)
            pipeline = Phase(folder / "stand-in", "bench-stand-in", "bench-stand-in", False)
            stub = await through_gateway(client, server.address, pipeline, args)
            full = None
            if not args.no_full:
                real = Phase(folder / "full", "bench", ID_SECRET, True, args.workers)
                full = await through_gateway(client, server.address, real, args)
        finally:
            await server.astop()
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    report(base, stub, full, args)
    if args.keep:
        print(f"logs and databases kept in {folder}")


if __name__ == "__main__":
    asyncio.run(main())
