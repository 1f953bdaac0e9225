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
import sys
from collections.abc import Callable, Iterator
from typing import Literal

import uvicorn
from fastapi import FastAPI

from gateway.access_log import AccessLog
from gateway.codec import router as codec_router
from gateway.consent import router as consent_router
from gateway.cors import TrackingCors
from gateway.dashboard import mount_dashboard
from gateway.dev_mail import dev_mail_router
from gateway.email_webhooks import router as email_webhooks_router
from gateway.http import install_error_handlers
from gateway.hubspot import router as hubspot_router
from gateway.metrics import ErrorRateWatch, metrics_router, store_registry
from gateway.privacy import router as privacy_router
from gateway.relay import Relay
from gateway.routes import health, routers
from gateway.salesforce_poll import SalesforcePoller
from gateway.slack import router as slack_router
from gateway.tracking import TrackingWriter
from gateway.tracking import router as tracking_router
from gateway.unsubscribe import router as unsubscribe_router
from gateway.urgent import HandRaiserEvents
from revops import __version__
from revops.logging import get_logger
from revops.mailbox import Mailbox
from revops.settings import Settings
from revops.temporal import connect
from store.repo import Store

__all__ = [
    "GatewayRole",
    "close_app",
    "create_app",
    "gateway_server",
    "run_gateway",
    "serve_in_dev",
]

GatewayRole = Literal["all", "links"]
"""``all``: the whole gateway. ``links``: only what recipients follow from an email (tracked
clicks, the open pixel, unsubscribe) and health, so a broadcast's clicks never queue behind an
ingest burst in the same process (``REVOPS_LINKS_URL`` points email links at it)."""

log = get_logger(__name__)

GIL_SWITCH_SECONDS = 0.0005
"""Python's default is 5 ms: a request waiting for the GIL behind an accept thread waits that
long at each of its await points (bench/tracking.py measures the redirect under ingest)."""

_DESCRIPTION = """
Segment-compatible tracking API (`/v1/track`, `/identify`, `/page`, `/screen`, `/group`,
`/alias`, `/batch`, `/import`, and the browser and mobile libraries' `/v1/t|i|p|s|g|a|b`;
HTTP Basic auth with the write key as user name, or `writeKey` in the body; gzip and
`text/plain` bodies accepted; CORS for `REVOPS_CORS_ORIGINS`), the signed sales webhook
(`/v1/webhooks/sales`) and the signed erasure endpoint (`/v1/privacy/erasures`). A 200 means
the event is stored
once and will reach the contact's workflow, even if Temporal is down right now.
"""


def create_app(
    settings: Settings,
    store: Store,
    relay: Relay | None = None,
    *,
    dev_mailbox: Mailbox | None = None,
    role: GatewayRole = "all",
) -> FastAPI:
    """The gateway app bound to a store and (optionally) a relay to wake on accept; with a
    ``dev_mailbox`` (``revops dev`` only) also the development mail pages."""
    app = FastAPI(title="revops gateway", version=__version__, description=_DESCRIPTION)
    app.state.settings = settings
    app.state.store = store
    app.state.relay = relay
    app.state.hand_raisers = HandRaiserEvents(store, settings.config_dir)
    app.state.metrics_registry = store_registry(store, settings)
    install_error_handlers(app)
    app.include_router(metrics_router)
    if role == "links":
        for router in (health, unsubscribe_router, tracking_router, consent_router):
            app.include_router(router)
        app.add_middleware(AccessLog)
        return app
    for router in routers:
        app.include_router(router)
    app.include_router(unsubscribe_router)
    app.include_router(tracking_router)
    app.include_router(email_webhooks_router)
    app.include_router(privacy_router)
    app.include_router(codec_router)
    app.include_router(consent_router)
    app.include_router(slack_router)
    app.include_router(hubspot_router)
    if dev_mailbox is not None:
        app.include_router(dev_mail_router(dev_mailbox))
    mount_dashboard(app, settings, store)
    app.add_middleware(TrackingCors, origins=settings.cors_origins)
    app.add_middleware(AccessLog)
    return app


def relay_active(relay: Relay) -> Callable[[], bool]:
    """Whether ``relay`` holds the store's lease now (one process alerts per store)."""
    return lambda: relay.active


def close_app(app: FastAPI) -> None:
    """Write what the tracking writer still holds (blocking: call in a thread)."""
    writer: TrackingWriter | None = getattr(app.state, "tracking_writer", None)
    if writer is not None:
        writer.close()


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
    app = create_app(settings, deps.store, relay, dev_mailbox=Mailbox.of(settings.data_dir))
    watching = asyncio.create_task(
        ErrorRateWatch(deps.store, settings).run(relay_active(relay), stop)
    )
    polling = _poll_salesforce(settings, deps.store, relay, stop)
    try:
        await _serve_until(gateway_server(app, settings.gateway_host, settings.gateway_port), stop)
    finally:
        await asyncio.to_thread(close_app, app)
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
        if polling is not None:
            await polling


async def _deliveries(
    settings: Settings, store: Store, role: GatewayRole, stop: asyncio.Event
) -> tuple[Relay | None, list[asyncio.Task[None]]]:
    """The relay and the error-rate watch of a gateway; none for a links process, whose
    CPU is for answering recipients (the gateways' relays deliver the clicks it stores)."""
    if role == "links":
        return None, []
    client = await connect(settings, lazy=True)
    relay = Relay(store, client, settings.task_queue, shards=settings.relay_shards)
    watch = ErrorRateWatch(store, settings).run(relay_active(relay), stop)
    return relay, [asyncio.create_task(relay.run_forever()), asyncio.create_task(watch)]


def _poll_salesforce(
    settings: Settings, store: Store, relay: Relay, stop: asyncio.Event
) -> asyncio.Task[None] | None:
    """The Salesforce Opportunity reader beside the relay, when Salesforce is configured."""
    if not settings.salesforce_instance_url:
        return None
    return asyncio.create_task(SalesforcePoller(store, settings, relay).run_forever(stop))


async def run_gateway(settings: Settings, role: GatewayRole = "all") -> None:
    """``revops gateway``: the app and a relay until SIGINT/SIGTERM; Temporal may be down.

    It never migrates the store: it waits for ``revops migrate`` (``schema_wait_seconds``).
    Gateways share the relay's shards; a ``links`` process runs no relay (the gateways'
    relays deliver the clicks it stores, within their poll interval).
    """
    # Ingest accepts run in threads (CPU-bound Python); a short GIL switch interval keeps
    # them from starving the event loop, so a tracked click answers in milliseconds.
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    store = await asyncio.to_thread(
        Store.open,
        settings.sqlalchemy_url,
        id_secret=settings.id_secret.get_secret_value(),
        run_migrations=False,
        schema_wait=settings.schema_wait_seconds,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    relay, background = await _deliveries(settings, store, role, stop)
    polling = _poll_salesforce(settings, store, relay, stop) if relay is not None else None
    log.info("gateway_started", host=settings.gateway_host, port=settings.gateway_port, role=role)
    try:
        app = create_app(settings, store, relay, role=role)
        try:
            await _serve_until(
                gateway_server(app, settings.gateway_host, settings.gateway_port), stop
            )
        finally:
            await asyncio.to_thread(close_app, app)
    finally:
        for task in background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if polling is not None:
            stop.set()
            await polling
        store.engine.dispose()
        log.info("gateway_stopped")
