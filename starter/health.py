"""The worker's health endpoint, and the probe ``revops health`` runs against any endpoint.

A worker has no HTTP server of its own, so an orchestrator cannot tell a stuck worker from a
busy one. With ``REVOPS_WORKER_HEALTH_PORT`` set, ``revops worker`` also serves:

- ``/healthz``: 200 while the worker runs and its event loop answers (liveness: a blocked
  loop or a stopped worker fails it, and the orchestrator restarts the process);
- ``/readyz``: 200 when the store answers and the Temporal frontend reports healthy, else 503
  with which one is down (readiness: a rollout waits for it);
- ``/metrics``: the worker's product counters (sends by channel and outcome, rules decisions)
  for Prometheus. The Temporal SDK's own metrics are on ``REVOPS_WORKER_METRICS_PORT``.

The images the compose file uses have no curl for the revops containers, so their healthcheck
is ``revops health --url ...``: one GET, exit 0 on a 2xx answer, 1 otherwise (Docker's
healthcheck contract: 0 healthy, 1 unhealthy).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import timedelta
from typing import Literal

import httpx
from fastapi import FastAPI, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from temporalio.client import Client
from temporalio.service import RPCError

from gateway.app import gateway_server
from revops.errors import StoreUnavailable
from revops.metrics import CONTENT_TYPE, exposition
from store.repo import Store

__all__ = ["WorkerHealth", "WorkerReadiness", "probe", "serve_worker_health", "worker_health_app"]


class WorkerHealth(BaseModel):
    """Liveness: the worker runs."""

    status: Literal["ok", "stopped"]


class WorkerReadiness(BaseModel):
    """Readiness: what the worker depends on answers."""

    ready: bool
    store: Literal["ok", "unreachable"]
    temporal: Literal["ok", "unreachable"]


async def _temporal_ok(client: Client) -> bool:
    try:
        service = client.service_client
        return await asyncio.wait_for(service.check_health(timeout=timedelta(seconds=2)), 3)
    except (RPCError, RuntimeError, TimeoutError):
        return False


async def _store_ok(store: Store) -> bool:
    try:
        await run_in_threadpool(store.ping)
    except StoreUnavailable:
        return False
    return True


def worker_health_app(store: Store, client: Client, running: Callable[[], bool]) -> FastAPI:
    """The two probe routes for one worker process."""
    app = FastAPI(title="revops worker health", docs_url=None, redoc_url=None)

    @app.get("/healthz")
    async def healthz(response: Response) -> WorkerHealth:
        if not running():
            response.status_code = 503
            return WorkerHealth(status="stopped")
        return WorkerHealth(status="ok")

    @app.get("/readyz")
    async def readyz(response: Response) -> WorkerReadiness:
        store_ok, temporal_ok = await asyncio.gather(_store_ok(store), _temporal_ok(client))
        ready = store_ok and temporal_ok and running()
        if not ready:
            response.status_code = 503
        return WorkerReadiness(
            ready=ready,
            store="ok" if store_ok else "unreachable",
            temporal="ok" if temporal_ok else "unreachable",
        )

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        """This worker's product counters (sends, rules decisions), Prometheus text format."""
        return Response(exposition(), media_type=CONTENT_TYPE)

    return app


async def serve_worker_health(app: FastAPI, port: int, stop: asyncio.Event) -> None:
    """Serve ``app`` on all interfaces at ``port`` until ``stop`` is set."""
    server = gateway_server(app, "0.0.0.0", port)  # noqa: S104 - probes come from outside
    task = asyncio.create_task(server.serve())
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    stopped.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def probe(url: str, timeout: float) -> tuple[int | None, str]:
    """GET ``url``: its status (None when nothing answered) and its body (or the error)."""
    try:
        answer = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"
    return answer.status_code, answer.text.strip()
