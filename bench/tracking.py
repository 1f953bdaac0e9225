"""Tracked-click redirect: throughput and latency, alone and while ingest runs.

``revops gateway`` runs as a subprocess on a SQLite store (as a small installation would) with
a Temporal dev server its relay delivers to (no worker: the contact workflows only queue up).
Phases:

(a) baseline: ``GET /healthz`` (the same server answering with no work), ``--clicks`` requests;
(b) clicks alone: ``GET /t/c/<token>`` for distinct sends and links (each becomes an
    "Email Clicked" event, written in batches behind the answer);
(c) clicks while ingest runs, as production deploys it: ingest (Segment batches of ``--batch``
    events to ``/v1/batch`` at ``--ingest`` events/s) goes to the gateway, clicks to a
    ``revops gateway --role links`` process beside it; for comparison (c0) ``/healthz`` and
    (c1) the clicks on the ingesting process itself (one process for everything);
(d) throughput: clicks as fast as they are answered, ``--concurrency`` in flight.

(a) to (c) send ``--rate`` requests/s whatever the answers do, as recipients click (latency
measured per request); the redirect's p99 must stay under 50 ms while ingest runs (c). Run:
``.venv/bin/python bench/tracking.py`` (``--clicks 2000 --rate 100 --ingest 1000``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from models.ingest import IncomingEvent
from models.tracking import TrackingToken
from starter.devserver import DevServer
from store.effects import Ledger, SendOrigin
from store.repo import Store

REVOPS = str(Path(sys.executable).parent / "revops")
SECRET = "bench-secret"
AGENT = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"}
AUTH = {"Authorization": "Basic " + base64.b64encode(b"dev-write-key:").decode()}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _identify(user_id: str) -> IncomingEvent:
    now = datetime.now(UTC)
    return IncomingEvent(
        message_id=str(uuid.uuid4()),
        type="identify",
        name="Identify",
        user_id=user_id,
        traits={"email": f"{user_id}@x.io"},
        timestamp=now,
        received_at=now,
    )


def _start_gateway(environ: dict[str, str], role: str = "all") -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [REVOPS, "gateway", "--role", role],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _prepare(url: str, sends: int) -> list[str]:
    """Contacts and sent emails in the ledger; returns one click token per send."""
    store = Store.open(url, id_secret=SECRET)
    users = [f"bench-{n}" for n in range(max(1, sends // 10))]
    store.accept([_identify(u) for u in users])
    ledger = Ledger(store)
    tokens = []
    sent_at = int(time.time()) - 3600
    for n in range(sends):
        contact = store.resolve(users[n % len(users)])
        assert contact is not None
        local = uuid.uuid4().hex
        origin = SendOrigin(f"<{local}@example.com>", "enr", "bench-journey", "step", None)
        ledger.claim(f"{contact}/enr/{n}", contact, "email", True, "bench", origin)
        ledger.finish(f"{contact}/enr/{n}", "sent")
        token = TrackingToken(
            f"{local}@example.com",
            contact,
            sent_at,
            "bench-journey",
            "step",
            None,
            f"https://example.com/article/{n}",
        )
        tokens.append(token.encode(SECRET))
    store.engine.dispose()
    return tokens


def _figures(name: str, latencies: list[float], seconds: float) -> None:
    ordered = sorted(latencies)
    p99 = ordered[int(len(ordered) * 0.99) - 1] * 1000
    p50 = statistics.median(ordered) * 1000
    rate = len(ordered) / seconds
    print(f"{name:36}: {rate:7.0f} requests/s   p50 {p50:6.1f} ms   p99 {p99:6.1f} ms")


async def _closed(
    http: httpx.AsyncClient, paths: list[str], concurrency: int
) -> tuple[list[float], float]:
    """As fast as answers come, ``concurrency`` in flight: the throughput."""
    latencies: list[float] = []
    queue = list(reversed(paths))

    async def one() -> None:
        while queue:
            latencies.append(await _get(http, queue.pop()))

    began = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(concurrency)))
    return latencies, time.perf_counter() - began


async def _open(
    http: httpx.AsyncClient, paths: list[str], rate: float
) -> tuple[list[float], float]:
    """One request every 1/rate s whatever the answers do (as recipients click): latency."""
    began = time.perf_counter()
    tasks = []
    for n, path in enumerate(paths):
        delay = began + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_get(http, path)))
    latencies = list(await asyncio.gather(*tasks))
    return latencies, time.perf_counter() - began


async def _get(http: httpx.AsyncClient, path: str) -> float:
    began = time.perf_counter()
    answer = await http.get(path, headers=AGENT)
    assert answer.status_code in (200, 302), answer.text
    return time.perf_counter() - began


def _ingest_process(url: str, batch: int, rate: float, stop: Any, sent: Any) -> None:
    """The ingest load in a process of its own: on the bench's event loop, building and
    posting batches would delay the clicks' own requests and be counted as their latency."""

    async def run() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            sent.value = await _ingest(http, batch, rate, stop)

    asyncio.run(run())


async def _ingest(http: httpx.AsyncClient, batch: int, rate: float, stop: Any) -> int:
    """Segment batches at ``rate`` events/s until ``stop``; returns events accepted."""
    sent = 0
    began = time.perf_counter()
    while not stop.is_set():
        calls = [
            {
                "type": "track",
                "userId": f"ingest-{(sent + i) % 500}",
                "event": "Page Viewed",
                "messageId": str(uuid.uuid4()),
            }
            for i in range(batch)
        ]
        answer = await http.post("/v1/batch", json={"batch": calls}, headers=AUTH)
        assert answer.status_code == 200, answer.text
        sent += batch
        delay = began + sent / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    return sent


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clicks", type=int, default=2000, help="requests per phase")
    parser.add_argument("--rate", type=float, default=100.0, help="clicks per second")
    parser.add_argument("--ingest", type=float, default=1000.0, help="events per second")
    parser.add_argument("--batch", type=int, default=100, help="events per Segment batch")
    parser.add_argument("--concurrency", type=int, default=8, help="in flight, phase (d)")
    parser.add_argument(
        "--links-cpu",
        type=int,
        default=(os.cpu_count() or 1) - 1 if (os.cpu_count() or 1) > 1 else None,
        help="give the links process this CPU of its own and keep everything else off it "
        "(a dedicated core, as a Kubernetes pod with guaranteed CPU has); default: the last "
        "CPU; -1: no pinning (everything shares every core)",
    )
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-tracking-"))
    url = f"sqlite:///{folder / 'revops.db'}"
    tokens = _prepare(url, 3 * args.clicks)
    port = free_port()
    server = DevServer(folder / "temporal.db", port=free_port(), ui_port=None)
    await server.astart()  # the relay delivers the ingested events (no worker runs them)
    environ = {
        **os.environ,
        "REVOPS_DATABASE_URL": url,
        "REVOPS_ID_SECRET": SECRET,
        "REVOPS_GATEWAY_PORT": str(port),
        "REVOPS_TEMPORAL_ADDRESS": server.address,
        "REVOPS_LOG_LEVEL": "WARNING",
        "REVOPS_LOG_FORMAT": "json",
    }
    gateway = _start_gateway(environ)
    links_port = free_port()
    links_process = _start_gateway({**environ, "REVOPS_GATEWAY_PORT": str(links_port)}, "links")
    dedicated = args.links_cpu is not None and args.links_cpu >= 0
    pinned = _dedicate(args.links_cpu, links_process.pid) if dedicated else {}
    limits = httpx.Limits(max_connections=64)
    try:
        async with (
            httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", timeout=30, limits=limits
            ) as http,
            httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{links_port}", timeout=30, limits=limits
            ) as links,
        ):
            await _ready(http)
            await _ready(links)
            count, rate = args.clicks, args.rate
            print(
                f"tracking bench: {count} requests per phase at {rate:g}/s; ingest "
                f"{args.ingest:g} events/s in batches of {args.batch}"
            )
            warm = [f"/t/c/{t}" for t in tokens[-100:]]  # first statements compile, threads start
            await _closed(http, warm, 4)
            await _closed(http, ["/healthz"] * 50, 4)
            base = await _open(http, ["/healthz"] * count, rate)
            _figures("(a) baseline GET /healthz", *base)
            paths = [f"/t/c/{t}" for t in tokens]
            alone = await _open(http, paths[:count], rate)
            _figures("(b) click redirect alone", *alone)
            await _closed(links, warm, 4)
            context = multiprocessing.get_context("spawn")
            stop, sent = context.Event(), context.Value("q", 0)
            ingest = context.Process(
                target=_ingest_process,
                args=(f"http://127.0.0.1:{port}", args.batch, args.ingest, stop, sent),
            )
            ingest.start()
            if dedicated and ingest.pid is not None:
                os.sched_setaffinity(ingest.pid, _other_cpus(args.links_cpu))  # before its threads
            await asyncio.sleep(2)
            began = time.perf_counter()
            idle = await _open(http, ["/healthz"] * (count // 2), rate)
            shared = await _open(http, paths[count : count + count // 2], rate)
            loaded = await _open(links, paths[count + count // 2 : 2 * count], rate)
            stop.set()
            await asyncio.to_thread(ingest.join, 60)
            ingested = int(sent.value)
            _figures("(c0) baseline /healthz while ingest runs", *idle)
            _figures("(c1) clicks on the ingesting process", *shared)
            _figures("(c) clicks on the links process", *loaded)
            print(
                f"{'    ingest meanwhile':36}: "
                f"{ingested / (time.perf_counter() - began + 1):7.0f} events/s accepted"
            )
            most = await _closed(http, paths[2 * count : -100], args.concurrency)
            _figures("(d) redirect throughput (closed loop)", *most)
            p99 = sorted(loaded[0])[int(len(loaded[0]) * 0.99) - 1] * 1000
            verdict = "ok" if p99 < 50 else "OVER"
            print(
                f"redirect p99 while ingest runs (links process): {p99:.1f} ms, {verdict} "
                "(limit 50 ms)"
            )
    finally:
        _restore(pinned)
        for process in (gateway, links_process):
            os.killpg(process.pid, signal.SIGINT)
            process.wait(timeout=30)
        await server.astop()


def _tasks() -> list[int]:
    """Every thread of every process of this machine."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                found += [int(tid) for tid in os.listdir(f"/proc/{entry}/task")]
    return found


def _dedicate(cpu: int, pid: int) -> dict[int, set[int]]:
    """Pin ``pid`` (and this bench, the recipients' side, whose light client must not wait for
    a core either) to ``cpu`` and every other thread of this machine off it: the links
    process then has a core of its own, as a pod with guaranteed CPU has. Returns what to
    give back (``_restore``)."""
    ours = {int(t) for p in (pid, os.getpid()) for t in os.listdir(f"/proc/{p}/task")}
    before: dict[int, set[int]] = {}
    for tid in _tasks():
        with contextlib.suppress(OSError):
            before[tid] = os.sched_getaffinity(tid)
            os.sched_setaffinity(tid, {cpu} if tid in ours else _other_cpus(cpu))
    return before


def _restore(before: dict[int, set[int]]) -> None:
    for tid, cpus in before.items():
        with contextlib.suppress(OSError):
            os.sched_setaffinity(tid, cpus)


def _other_cpus(cpu: int | None) -> set[int]:
    return set(range(os.cpu_count() or 1)) - ({cpu} if cpu is not None else set())


async def _ready(http: httpx.AsyncClient) -> None:
    for _ in range(600):
        try:
            if (await http.get("/healthz")).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.1)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    asyncio.run(main())
