"""Temporal down, then up: events accepted meanwhile wait in the store and arrive once, in order."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select
from temporalio.client import Client

from gateway.relay import Relay
from revops.settings import Settings
from revops.temporal import DATA_CONVERTER, connect
from starter.devserver import DevServer
from store.repo import Store
from store.schema import OutboxRow
from tests.gateway_support import basic_auth, free_port, serve_gateway, state_after
from tests.support import eventually, handle_for, running_worker

START = datetime.now(UTC) - timedelta(hours=1)


def call(event: str, minute: int, message_id: str | None = None) -> dict[str, Any]:
    """A track call for the outage contact, ``minute`` minutes after START."""
    return {
        "type": "track",
        "userId": "gw-outage",
        "event": event,
        "messageId": message_id or str(uuid.uuid4()),
        "timestamp": (START + timedelta(minutes=minute)).isoformat(),
    }


def failed_attempts(store: Store) -> int:
    """How many delivery attempts failed (the relay counts them on the outbox rows)."""
    with store.engine.connect() as connection:
        return connection.scalar(select(func.sum(OutboxRow.attempts))) or 0


async def test_events_accepted_while_temporal_is_down_arrive_once_when_it_is_back(
    tmp_path: Path, store: Store, settings: Settings
) -> None:
    server = DevServer(tmp_path / "temporal.db", port=free_port(), ui_port=None)
    await server.astart()
    try:
        # The relay's client lives through the outage, as in `revops gateway`.
        relay_client = await connect(
            settings.model_copy(update={"temporal_address": server.address}), lazy=True
        )
        relay = Relay(store, relay_client, settings.task_queue, backoff_max=0.5)
        async with (
            serve_gateway(settings, store, relay) as url,
            httpx.AsyncClient(base_url=url, headers=basic_auth()) as http,
        ):
            worker_client = await _connect(server.address)
            async with running_worker(worker_client, store, settings):
                await http.post("/v1/track", json=call("Signed Up", 0))
                await state_after(handle_for(worker_client, store, "gw-outage"), 1)

            await server.astop()
            during = [call("Unsubscribed", 1, "m-out-1"), call("Resubscribed", 2)]
            answers = [
                await http.post("/v1/batch", json={"batch": [*during, during[0]]}),
                await http.post("/v1/track", json=call("Email Opened", 3)),
                await http.post("/v1/track", json=during[0]),
            ]
            assert [a.status_code for a in answers] == [200, 200, 200]
            assert [a.json()["accepted"] for a in answers] == [2, 1, 0]
            await eventually(lambda: _attempts(store), lambda n: n >= 3)
            assert store.pending_count() == 3

            await server.astart()
            worker_client = await _connect(server.address)
            async with running_worker(worker_client, store, settings):
                handle = handle_for(worker_client, store, "gw-outage")
                state = await state_after(handle, 4, within=60)
            assert store.pending_count() == 0
    finally:
        await server.astop()
    assert state.event_counts == {
        "Signed Up": 1,
        "Unsubscribed": 1,
        "Resubscribed": 1,
        "Email Opened": 1,
    }
    assert state.consent.subscribed is True  # applied in order: unsubscribed, then resubscribed
    assert store.row_counts()["events"] == 4


async def _attempts(store: Store) -> int:
    return failed_attempts(store)


async def _connect(address: str) -> Client:
    """Connect once the new server's frontend reports healthy (its port opens a bit earlier)."""

    async def attempt() -> Client | None:
        try:
            return await Client.connect(address, data_converter=DATA_CONVERTER)
        except RuntimeError:
            await asyncio.sleep(0.2)
            return None

    client = await eventually(attempt, lambda c: c is not None)
    assert client is not None
    return client
