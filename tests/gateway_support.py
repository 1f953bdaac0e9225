"""Helpers for gateway tests: the real app on a free localhost port, auth, the Segment SDK."""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import segment.analytics as analytics
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError

from contacts.contract import ContactState
from gateway.app import GatewayRole, create_app, gateway_server
from gateway.relay import Relay
from revops.settings import Settings
from store.repo import Store
from tests.support import eventually
from workflows.contact import ContactWorkflow

WRITE_KEY = "dev-write-key"


async def maybe_state(handle: WorkflowHandle[ContactWorkflow, Any]) -> ContactState | None:
    """The contact's live state, or None while its workflow does not exist yet."""
    try:
        return await handle.query(ContactWorkflow.state)
    except RPCError:
        return None


async def state_after(
    handle: WorkflowHandle[Any, Any], applied: int, *, within: float = 45.0
) -> ContactState:
    """The contact's state once its workflow exists and has applied ``applied`` events."""
    state = await eventually(
        lambda: maybe_state(handle),
        lambda s: s is not None and s.events_applied == applied,
        within=within,
    )
    assert state is not None
    return state


def free_port() -> int:
    """A localhost port nothing listens on (right now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def basic_auth(write_key: str = WRITE_KEY) -> dict[str, str]:
    """The Authorization header Segment SDKs send: the write key as user name."""
    token = base64.b64encode(f"{write_key}:".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@asynccontextmanager
async def serve_gateway(
    settings: Settings,
    store: Store,
    relay: Relay | None = None,
    *,
    relaying: bool = True,
    role: GatewayRole = "all",
    port: int | None = None,
) -> AsyncIterator[str]:
    """Serve the gateway (in ``role``) with uvicorn in this event loop; yields its base URL.

    With a relay (and ``relaying``), the relay runs in the background as in production.
    """
    port = port or free_port()
    server = gateway_server(create_app(settings, store, relay, role=role), "127.0.0.1", port)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()
        await asyncio.sleep(0.01)
    relay_task = asyncio.create_task(relay.run_forever()) if relay and relaying else None
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving
        if relay_task is not None:
            relay_task.cancel()
            await asyncio.gather(relay_task, return_exceptions=True)


@contextmanager
def threaded_gateway(settings: Settings, store: Store) -> Iterator[str]:
    """Serve the gateway (no relay) from a thread, for synchronous tests such as Hypothesis."""
    port = free_port()
    server = gateway_server(create_app(settings, store), "127.0.0.1", port)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the gateway did not start")
        threading.Event().wait(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@dataclass
class SegmentSdk:
    """The real Segment client pointed at the gateway, and the errors it reported."""

    client: analytics.Client
    errors: list[Any] = field(default_factory=list)

    async def flush(self) -> None:
        """Send everything queued and wait for the answers (in a thread: the SDK blocks)."""
        await asyncio.to_thread(self.client.flush)
        assert not self.errors, self.errors


@asynccontextmanager
async def segment_sdk(
    url: str, write_key: str = WRITE_KEY, **options: Any
) -> AsyncIterator[SegmentSdk]:
    """A Segment client that batches to ``url``; shut down (flushed) on exit."""
    errors: list[Any] = []
    client = analytics.Client(
        write_key=write_key,
        host=url,
        upload_interval=0.05,
        max_retries=1,
        on_error=lambda error, _batch: errors.append(error),
        **options,
    )
    sdk = SegmentSdk(client, errors)
    try:
        yield sdk
    finally:
        await asyncio.to_thread(sdk.client.shutdown)
