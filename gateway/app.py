"""The event gateway: a FastAPI app speaking the Segment HTTP tracking API.

It accepts durably (the store, unique messageId) and leaves delivery to the relay, so a 200
never depends on Temporal being up.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from gateway.relay import Relay
from revops.settings import Settings
from store.repo import Store

__all__ = ["create_app", "serve_in_dev"]


def create_app(settings: Settings, store: Store, relay: Relay | None = None) -> FastAPI:
    """The gateway app bound to a store and (optionally) a relay to wake on accept."""
    app = FastAPI(title="revops gateway", version="0.1.0")
    app.state.settings = settings
    app.state.store = store
    app.state.relay = relay

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    return app


class _EmbeddedServer(uvicorn.Server):
    """Uvicorn without its own signal handling: ``revops dev`` owns Ctrl-C."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_in_dev(deps: object, relay: Relay, stop: asyncio.Event) -> None:
    """Serve the gateway inside ``revops dev`` until ``stop`` is set."""
    from worker import WorkerDeps

    assert isinstance(deps, WorkerDeps)
    settings: Settings = deps.settings
    app = create_app(settings, deps.store, relay)
    config = uvicorn.Config(
        app, host=settings.gateway_host, port=settings.gateway_port, log_config=None
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve())
    await stop.wait()
    server.should_exit = True
    await task
