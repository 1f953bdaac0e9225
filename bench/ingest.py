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

Phases (b) and (c) run on each store (``--stores``: SQLite and PostgreSQL, production's, at
``--pg-url`` in a fresh schema dropped afterwards), side by side; (c) once per gateway count
(``--gateways 1,2``: that many ``revops gateway`` processes splitting the relay's shards,
``REVOPS_RELAY_SHARDS``, requests spread over them).

For (b) and (c) it prints the accept rate (events/s acknowledged with 200), the relay rate
(until the outbox is empty: every event acknowledged by Temporal), the delivery rate (events/s
applied in workflows, from the first request to the last event applied), their ratios to the
baseline, p50/p99 accept latency per request, and the CPU the worker and gateway processes
spent per event (ms, from /proc: a figure that stays comparable on a busy machine). The
baseline's CPU per event is the bench process's own (its client and the no-op worker).
Then what the metrics cost: the counter updates of the accept path and the relay per event,
as a share of the accept rate, and how long ``/metrics`` takes while the batches are posted
(scraped every second).

Run: ``.venv/bin/python bench/ingest.py`` (2,000 events over 200 contacts, a few minutes), or
the full sizes: ``--events 10000 --contacts 1000``; ``--stores sqlite`` for one store,
``--keep`` keeps logs and databases, ``--profile DIR`` writes cProfile files of the gateway
and worker processes.
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
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, select, text
from temporalio import workflow
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError
from temporalio.worker import Worker

from revops.ids import contact_workflow_id
from revops.temporal import DATA_CONVERTER
from starter.devserver import DevServer
from store.repo import Store
from store.schema import OutboxRow
from workflows.contact import ContactWorkflow

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
    database: str
    workers: int = 1
    gateways: int = 1


@dataclass
class Figures:
    """What one phase measured."""

    events: int
    seconds: float
    latencies: list[float] | None = None
    relayed_seconds: float | None = None
    delivered_seconds: float | None = None
    worker_cpu: float | None = None
    gateway_cpu: float | None = None
    scrapes: list[float] | None = None
    """Seconds each ``/metrics`` scrape took while the batches were posted."""
    signals: int = 0
    """Signal-with-starts the relay sent (from the gateways' ``/metrics``)."""

    def cpu_ms(self, seconds: float | None) -> str:
        """CPU seconds as milliseconds per event ("-" when not measured)."""
        return "-" if seconds is None else f"{seconds * 1000 / self.events:.2f}"

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
        start, cpu = time.perf_counter(), time.process_time()
        await bounded(32, [job(i) for i in range(events)])
        seconds = time.perf_counter() - start
        cpu = time.process_time() - cpu
    return Figures(events=events, seconds=seconds, worker_cpu=cpu)


async def wait_idle(pids: list[int], limit: float = 60.0) -> None:
    """Until the processes are done starting (imports, build id): under 0.1 s CPU per 0.5 s,
    so their CPU per event counts the events only."""
    deadline = time.monotonic() + limit
    used = cpu_seconds(pids)
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        now = cpu_seconds(pids)
        if now - used < 0.1:
            return
        used = now


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the processes have used so far (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


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
) -> Iterator[int]:
    """``revops <command>`` as a subprocess for the duration of the block (cProfiled if asked)."""
    argv = [REVOPS, command]
    if profile is not None:
        argv = [sys.executable, "-c", _PROFILED.format(out=profile / f"{command}.prof"), command]
    with log.open("wb") as out:
        process = subprocess.Popen(argv, env=environ, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield process.pid
        finally:
            process.send_signal(signal.SIGINT)  # a graceful stop (and the profile written)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()


async def wait_until_serving(url: str, relaying: bool = False) -> None:
    """Wait for the gateway's /healthz (and, ``relaying``, until its relay holds shards)."""
    async with httpx.AsyncClient(base_url=url) as http:
        for _ in range(300):
            with contextlib.suppress(httpx.HTTPError):
                answer = await http.get("/readyz" if relaying else "/healthz")
                if not relaying and answer.status_code == 200:
                    return
                if relaying and answer.json().get("relay") == "active":
                    return
            await asyncio.sleep(0.1)
    raise SystemExit("the gateway did not start or relay (see gateway-*.log)")


async def send(
    urls: list[str], calls: list[dict[str, Any]], batch: int, senders: int
) -> list[float]:
    """POST the calls as batches, spread over the gateways; each request's latency (s).

    A contact's calls stay on one gateway (as a load balancer with affinity would), so its
    accept order is its call order."""
    batches: list[tuple[str, list[dict[str, Any]]]] = []
    for n, url in enumerate(urls):
        mine = [c for c in calls if _gateway_of(c, len(urls)) == n]
        batches += [(url, mine[i : i + batch]) for i in range(0, len(mine), batch)]
    position = {c["messageId"]: i for i, c in enumerate(calls)}
    batches.sort(key=lambda b: position[b[1][0]["messageId"]])
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=senders)
    async with httpx.AsyncClient(auth=(WRITE_KEY, ""), limits=limits, timeout=60) as http:

        def job(url: str, body: list[dict[str, Any]]) -> Callable[[], Awaitable[None]]:
            async def post() -> None:
                start = time.perf_counter()
                answer = await http.post(f"{url}/v1/batch", json={"batch": body})
                latencies.append(time.perf_counter() - start)
                answer.raise_for_status()

            return post

        await bounded(senders, [job(u, b) for u, b in batches])
    return latencies


def _gateway_of(call: dict[str, Any], gateways: int) -> int:
    contact = int(str(call["messageId"]).split("-")[1])
    return contact % gateways


async def applied(client: Client, contact_id: str, real: bool) -> int:
    """How many events the contact's workflow has applied (0 before it exists)."""
    if not real:
        return len(APPLIED[contact_workflow_id(contact_id)])
    handle = client.get_workflow_handle_for(ContactWorkflow.run, contact_workflow_id(contact_id))
    try:
        state = await handle.query(ContactWorkflow.state)
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


@dataclass
class Stack:
    """The processes of one phase: gateway URLs, the store, and the pids to measure."""

    urls: list[str]
    store: Store
    worker_pids: list[int]
    gateway_pids: list[int]


@contextlib.asynccontextmanager
async def gateway_stack(
    client: Client, address: str, phase: Phase, profile: Path | None, shards: int
) -> AsyncIterator[Stack]:
    """``phase.gateways`` x ``revops gateway`` on a fresh store and a worker.

    The worker is ``revops worker`` (the real ContactWorkflow) or, for phase (c), an
    in-process worker running the stand-in (its CPU is not measured: it is the bench's).
    """
    store = Store.open(phase.database, id_secret=phase.id_secret)  # migrate before processes
    environ = {
        **os.environ,
        "REVOPS_DATA_DIR": str(phase.folder),
        "REVOPS_DATABASE_URL": phase.database,
        "REVOPS_TEMPORAL_ADDRESS": address,
        "REVOPS_TASK_QUEUE": phase.task_queue,
        "REVOPS_WRITE_KEYS": f'["{WRITE_KEY}"]',
        "REVOPS_ID_SECRET": phase.id_secret,
        "REVOPS_CONFIG_DIR": str(REPO / "config"),
        "REVOPS_JOURNEYS_DIR": str(REPO / "config" / "journeys"),
        "REVOPS_LOG_LEVEL": "WARNING",
        "REVOPS_LOG_FORMAT": "json",
        "REVOPS_RELAY_SHARDS": str(shards),
    }
    stack = Stack([], store, [], [])
    with contextlib.ExitStack() as processes:
        if phase.real_worker:
            smtp_port = processes.enter_context(smtp_sink())
            worker_env = {**environ, "REVOPS_SMTP_PORT": str(smtp_port)}
            for n in range(phase.workers):  # workers are stateless: more processes, more cores
                log = phase.folder / f"worker-{n}.log"
                worker_profile = profile if n == 0 else None
                pid = processes.enter_context(
                    revops_process("worker", worker_env, log, worker_profile)
                )
                stack.worker_pids.append(pid)
        for n in range(phase.gateways):
            port = free_port()
            gateway_env = {**environ, **GATEWAY_ENV, "REVOPS_GATEWAY_PORT": str(port)}
            log = phase.folder / f"gateway-{n}.log"
            pid = processes.enter_context(
                revops_process("gateway", gateway_env, log, profile if n == 0 else None)
            )
            stack.gateway_pids.append(pid)
            stack.urls.append(f"http://127.0.0.1:{port}")
        for url in stack.urls:
            await wait_until_serving(url, relaying=True)  # every gateway holds its shards
        await wait_idle(stack.worker_pids + stack.gateway_pids)
        try:
            if phase.real_worker:
                yield stack
                return
            stub = Worker(
                client,
                task_queue=phase.task_queue,
                workflows=[StubContactWorkflow],
                max_concurrent_workflow_task_polls=20,
            )
            async with stub:
                yield stack
        finally:
            store.engine.dispose()


async def through_gateway(
    client: Client, address: str, phase: Phase, args: argparse.Namespace
) -> Figures:
    """Accept and delivery of ``args.events`` events through the gateway(s)."""
    phase.folder.mkdir(parents=True, exist_ok=True)
    calls = interleaved(args.events, args.contacts, args.mix)
    per_contact = len(calls) // args.contacts
    async with gateway_stack(client, address, phase, args.profile, args.shards) as stack:
        expected = {
            stack.store.contact_id_for(f"bench-user-{c}"): per_contact for c in range(args.contacts)
        }
        workers, gateways = cpu_seconds(stack.worker_pids), cpu_seconds(stack.gateway_pids)
        start = time.perf_counter()
        sending = asyncio.create_task(send(stack.urls, calls, args.batch, args.senders))
        scrapes = await scrape_while(stack.urls[0], sending)
        latencies = await sending
        accepted = time.perf_counter() - start
        done = await wait_applied(stack.store, client, expected, phase.real_worker, args.timeout)
        delivered = time.perf_counter() - start
        signals = sum([await signals_sent(url) for url in stack.urls])
        worker_cpu = cpu_seconds(stack.worker_pids) - workers if phase.real_worker else None
        gateway_cpu = cpu_seconds(stack.gateway_pids) - gateways
    return Figures(
        len(calls),
        accepted,
        latencies,
        done - start,
        delivered,
        worker_cpu,
        gateway_cpu,
        scrapes=scrapes,
        signals=signals,
    )


@contextlib.contextmanager
def store_url(kind: str, folder: Path, pg_url: str) -> Iterator[str]:
    """A fresh store: a SQLite file in ``folder``, or a new PostgreSQL schema (dropped after)."""
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'revops.db'}"
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(pg_url)
    try:
        with admin.begin() as connection:
            connection.execute(text(f"CREATE SCHEMA {schema}"))
        try:
            yield f"{pg_url}?options=-csearch_path%3D{schema}"
        finally:
            with admin.begin() as connection:
                connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    finally:
        admin.dispose()


async def signals_sent(url: str) -> int:
    """``revops_relay_signals_total`` of the gateway (both lanes)."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        text = (await http.get("/metrics")).text
    return int(
        sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "revops_relay_signals_total"
        )
    )


async def scrape_while(url: str, running: asyncio.Task[Any]) -> list[float]:
    """GET ``/metrics`` every second (Prometheus scrapes every 15-30 s) until ``running`` is
    done; returns how long each scrape took."""
    took: list[float] = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        while not running.done():
            start = time.perf_counter()
            (await http.get("/metrics")).raise_for_status()
            took.append(time.perf_counter() - start)
            await asyncio.wait({running}, timeout=1.0)
    return took


def _per_call(call: Callable[[], Any], repeat: int = 20_000) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        call()
    return (time.perf_counter() - start) / repeat


def counters_per_event(events: int, batches: int, signals: int) -> float:
    """Seconds the metric updates of the accept path and the relay cost per event in a run of
    ``events`` events in ``batches`` requests that the relay delivered in ``signals`` signals:
    each update timed on the same calls the code makes, times how often the run made it."""
    from revops.metrics import EVENTS_ACCEPTED, EVENTS_DUPLICATE, RELAY_LAG, RELAY_SIGNALS

    per_batch = _per_call(lambda: EVENTS_ACCEPTED.inc(100)) + _per_call(
        lambda: EVENTS_DUPLICATE.inc(0)
    )
    per_signal = _per_call(lambda: RELAY_SIGNALS.labels("pass").inc()) + _per_call(
        lambda: RELAY_LAG.observe(0.2)
    )
    return (batches * per_batch + signals * per_signal) / events


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


Results = dict[str, dict[str, Figures]]
"""Phase label -> store -> figures."""


def report(base: Figures, results: Results, args: argparse.Namespace) -> None:
    """Print the figures, each store side by side, with their ratios to the baseline."""
    print(
        f"dev server on SQLite, {os.cpu_count()} cores; {args.events} events over "
        f"{args.contacts} contacts ({args.mix} mix), batches of {args.batch}, "
        f"{args.senders} senders, {args.workers} worker process(es), "
        f"{args.shards} relay shards"
    )
    print(
        f"{'(a) baseline signal-with-start':34}: {base.rate:8.0f} events/s  ({base.events} "
        f"events; {base.cpu_ms(base.worker_cpu)} ms CPU/event, client + no-op worker)"
    )
    for label, by_store in results.items():
        print(label)
        print(f"{'':34}  " + "  ".join(f"{store:>24}" for store in by_store))
        for row in _table(base, by_store):
            print(row)
        for store, figures in by_store.items():
            if figures.scrapes is not None:
                print(_metrics_cost(figures, args.batch, store))


def _table(base: Figures, by_store: dict[str, Figures]) -> list[str]:
    def line(name: str, cell: Callable[[Figures], str]) -> str:
        return f"    {name:30}: " + "  ".join(f"{cell(f):>24}" for f in by_store.values())

    def rate(value: float) -> str:
        return f"{value:.0f}/s ({value / base.rate:.1f}x)"

    def latency(f: Figures) -> str:
        assert f.latencies is not None
        p50, p99 = (percentile(f.latencies, q) * 1000 for q in (50, 99))
        return f"p50 {p50:.0f} / p99 {p99:.0f} ms"

    return [
        line("accept (200s)", lambda f: rate(f.rate)),
        line("relayed (acked by Temporal)", lambda f: rate(f.relay_rate)),
        line("delivered (applied in wf)", lambda f: rate(f.delivery_rate)),
        line("accept latency per request", latency),
        line("worker CPU ms/event", lambda f: f.cpu_ms(f.worker_cpu)),
        line("gateway CPU ms/event", lambda f: f.cpu_ms(f.gateway_cpu)),
    ]


def _metrics_cost(figures: Figures, batch: int, store: str) -> str:
    """The metrics' share of the accept rate: counter updates per event and scrapes."""
    batches = -(-figures.events // batch)
    per_event = counters_per_event(figures.events, batches, figures.signals)
    share = per_event * figures.rate * 100
    scrapes = figures.scrapes or [0.0]
    p50 = percentile(scrapes, 50) * 1000
    scrape_share = percentile(scrapes, 50) / 15 * 100
    return (
        f"    {'metrics cost, ' + store:30}: counters {per_event * 1e6:.2f} us/event "
        f"({figures.signals} signals) = {share:.2f}% of the accept rate; "
        f"/metrics under load p50 {p50:.0f} ms over {len(scrapes)} scrapes "
        f"({scrape_share:.2f}% of a 15 s scrape interval)"
    )


def arguments() -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2_000, help="full size: 10000")
    parser.add_argument("--contacts", type=int, default=200, help="full size: 1000")
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
    parser.add_argument(
        "--stores", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql"
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
        help="PostgreSQL database; the bench works in a fresh schema and drops it",
    )
    parser.add_argument(
        "--gateways",
        default="1,2",
        help="gateway process counts for (c), comma-separated; empty skips (c)",
    )
    parser.add_argument("--shards", type=int, default=4, help="REVOPS_RELAY_SHARDS")
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
    """Run every phase on one dev server and print the figures."""
    args = arguments()
    folder = Path(tempfile.mkdtemp(prefix="revops-bench-"))
    results: Results = defaultdict(dict)
    try:
        server = DevServer(folder / "temporal.db", port=free_port(), ui_port=None)
        await server.astart()
        try:
            client = await connect_when_ready(server.address)
            base = await baseline(client, args.baseline_events or args.events, args.contacts)
            for kind in args.stores.split(","):
                await run_store(client, server.address, kind, folder / kind, args, results)
        finally:
            await server.astop()
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    report(base, results, args)
    if args.keep:
        print(f"logs and databases kept in {folder}")


async def run_store(
    client: Client,
    address: str,
    kind: str,
    folder: Path,
    args: argparse.Namespace,
    results: Results,
) -> None:
    """The gateway phases on one store; each phase gets its own store, queue and ids."""
    for gateways in (int(n) for n in args.gateways.split(",") if n):
        name = f"stand-in-{gateways}"
        with store_url(kind, folder / name, args.pg_url) as database:
            queue = f"bench-{kind}-{name}"
            phase = Phase(folder / name, queue, queue, False, database, gateways=gateways)
            label = f"(c) {gateways} gateway(s) -> stand-in workflow (the pipeline alone)"
            results[label][kind] = await through_gateway(client, address, phase, args)
    if args.no_full:
        return
    with store_url(kind, folder / "full", args.pg_url) as database:
        queue = f"bench-{kind}-full"
        phase = Phase(folder / "full", queue, queue, True, database, workers=args.workers)
        label = f"(b) 1 gateway -> ContactWorkflow ({args.workers} revops worker process(es))"
        results[label][kind] = await through_gateway(client, address, phase, args)


if __name__ == "__main__":
    asyncio.run(main())
