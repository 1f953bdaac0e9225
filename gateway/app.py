"""The event gateway: a FastAPI app speaking the Segment HTTP tracking API, and its serving.

It accepts durably (the store, unique messageId) and leaves delivery to the relay, so a 200
never depends on Temporal being up. ``create_app`` assembles the app for any store and relay
(tests run it on a free port); ``serve_in_dev`` runs it inside ``revops dev``; ``run_gateway``
is ``revops gateway``: the app and a relay alone, for production.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from gateway.access_log import AccessLog
from gateway.http import install_error_handlers
from gateway.relay import Relay
from gateway.routes import routers
from gateway.unsubscribe import router as unsubscribe_router
from gateway.urgent import HandRaiserEvents
from revops import __version__
from revops.logging import get_logger
from revops.settings import Settings
from revops.temporal import connect
from store.repo import Store

__all__ = ["create_app", "gateway_server", "run_gateway", "serve_in_dev"]

log = get_logger(__name__)

_DESCRIPTION = """
Segment-compatible tracking API (`/v1/track`, `/identify`, `/page`, `/screen`, `/group`,
`/alias`, `/batch`, `/import`; HTTP Basic auth with the write key as user name; gzip bodies
accepted) and the signed sales webhook (`/v1/webhooks/sales`). A 200 means the event is stored
once and will reach the contact's workflow, even if Temporal is down right now.
"""


def create_app(settings: Settings, store: Store, relay: Relay | None = None) -> FastAPI:
    """The gateway app bound to a store and (optionally) a relay to wake on accept."""
    app = FastAPI(title="revops gateway", version=__version__, description=_DESCRIPTION)
    app.state.settings = settings
    app.state.store = store
    app.state.relay = relay
    app.state.hand_raisers = HandRaiserEvents(store, settings.config_dir)
    install_error_handlers(app)
    for router in routers:
        app.include_router(router)
    app.include_router(unsubscribe_router)
    app.add_middleware(AccessLog)
    return app


class _EmbeddedServer(uvicorn.Server):
    """Uvicorn without its own signal handling: the caller owns Ctrl-C."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def gateway_server(app: FastAPI, host: str, port: int) -> uvicorn.Server:
    """A uvicorn server for ``app``; our access log replaces uvicorn's."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    return _EmbeddedServer(config)


async def _serve_until(server: uvicorn.Server, stop: asyncio.Event) -> None:
    task = asyncio.create_task(server.serve())
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    stopped.cancel()
    await task


async def serve_in_dev(deps: object, relay: Relay, stop: asyncio.Event) -> None:
    """Serve the gateway inside ``revops dev`` until ``stop`` is set."""
    from worker import WorkerDeps

    assert isinstance(deps, WorkerDeps)
    settings: Settings = deps.settings
    app = create_app(settings, deps.store, relay)
    await _serve_until(gateway_server(app, settings.gateway_host, settings.gateway_port), stop)


async def run_gateway(settings: Settings) -> None:
    """``revops gateway``: the app and a relay until SIGINT/SIGTERM; Temporal may be down."""
    store = await asyncio.to_thread(
        Store.open, settings.sqlalchemy_url, id_secret=settings.id_secret.get_secret_value()
    )
    client = await connect(settings, lazy=True)
    relay = Relay(store, client, settings.task_queue)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    relaying = asyncio.create_task(relay.run_forever())
    log.info("gateway_started", host=settings.gateway_host, port=settings.gateway_port)
    try:
        app = create_app(settings, store, relay)
        await _serve_until(gateway_server(app, settings.gateway_host, settings.gateway_port), stop)
    finally:
        relaying.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relaying
        store.engine.dispose()
        log.info("gateway_stopped")
