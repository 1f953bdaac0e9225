"""The store (PostgreSQL) cut off while workers and the gateway run: nothing lost, nothing doubled.

The store is reached through a TCP proxy in front of the real PostgreSQL; cutting the proxy
resets every connection and refuses new ones, as a failover or a partition would. Meanwhile
the gateway answers 503 with Retry-After and stores nothing, a contact workflow that got an
event just before the cut retries its store calls (local activities, Temporal's default retry
policy) instead of failing, and the relay keeps running. When the store is back every event
counts exactly once and the outbox drains.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from gateway.relay import Relay, deliver
from revops.errors import StoreUnavailable
from revops.settings import Settings
from store.repo import Store
from tests.conftest import ID_SECRET, _postgres_schema_url
from tests.faults import tcp_proxy
from tests.gateway_support import basic_auth, free_port, serve_gateway, state_after
from tests.support import handle_for, running_worker

OUTAGE_SECONDS = 20.0
"""Long enough for several failed attempts of each store call (1, 2, 4, 8 s backoff)."""

RECORDED = ("score_history", "list_memberships", "demand_states", "stage_history")
"""Tables the contact's step writes through its store activities."""


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from _postgres_schema_url()


def _call(event: str, message_id: str) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": "store-outage",
        "event": event,
        "messageId": message_id,
        "timestamp": datetime.now(UTC).isoformat(),
    }


async def _post_until_accepted(
    http: httpx.AsyncClient, body: dict[str, Any], within: float
) -> httpx.Response:
    """What a Segment client does with a 503: wait Retry-After, send the same call again."""
    deadline = time.monotonic() + within
    while True:
        answer = await http.post("/v1/track", json=body)
        if answer.status_code != 503 or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(min(float(answer.headers["Retry-After"]), 1.0))


@pytest.mark.postgres
@pytest.mark.slow
async def test_a_store_outage_while_workers_run_loses_and_doubles_nothing(
    env: WorkflowEnvironment, settings: Settings, pg_url: str
) -> None:
    port = free_port()
    with tcp_proxy(port, "127.0.0.1", 5432) as proxy:
        store = Store.open(
            pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{port}"), id_secret=ID_SECRET
        )
        relay = Relay(store, env.client, settings.task_queue, backoff_max=0.5)
        async with (
            running_worker(env.client, store, settings),
            serve_gateway(settings, store, relay, relaying=False) as url,
            httpx.AsyncClient(base_url=url, headers=basic_auth()) as http,
        ):
            assert (await http.post("/v1/track", json=_call("Signed Up", "m-1"))).status_code == 200
            await relay.drain_once()
            handle = handle_for(env.client, store, "store-outage")
            await state_after(handle, 1)
            opened = await http.post("/v1/track", json=_call("Email Opened", "m-2"))
            assert opened.status_code == 200
            contact_id = store.resolve("store-outage")
            assert contact_id is not None
            in_flight = store.pending(contact_id=contact_id)
            before = store.row_counts()

            proxy.down()
            refused = await http.post("/v1/track", json=_call("Pricing Page Viewed", "m-3"))
            not_ready = await http.get("/readyz")
            # The relay signalled m-2 just before the store went away: the contact's step runs
            # now and its store calls fail until the store is back.
            await deliver(env.client, settings.task_queue, contact_id, in_flight)
            relaying = asyncio.create_task(relay.run_forever())
            await asyncio.sleep(OUTAGE_SECONDS)
            assert not relaying.done(), "the relay survives the outage"
            proxy.up()
            started = time.monotonic()

            retried = await _post_until_accepted(http, _call("Pricing Page Viewed", "m-3"), 30)
            state = await state_after(handle, 3, within=120)
            recovered_in = time.monotonic() - started
            relaying.cancel()
            await asyncio.gather(relaying, return_exceptions=True)
            await relay.drain_once()
        after = store.row_counts()
        pending = store.pending_count()
        store.engine.dispose()

    assert refused.status_code == 503
    assert float(refused.headers["Retry-After"]) > 0
    assert not_ready.status_code == 503 and not_ready.json()["store"] == "unreachable"
    assert retried.status_code == 200, retried.text
    assert state.event_counts == {"Signed Up": 1, "Email Opened": 1, "Pricing Page Viewed": 1}
    assert after["events"] == 3  # the refused call stored nothing; its retry stored it once
    assert pending == 0
    assert sum(after[t] for t in RECORDED) > sum(before[t] for t in RECORDED)
    assert recovered_in < 120
    print(f"store outage of {OUTAGE_SECONDS:.0f}s: all caught up {recovered_in:.1f}s after")


@pytest.mark.postgres
def test_the_proxy_really_cuts_the_store_off(pg_url: str) -> None:
    port = free_port()
    with tcp_proxy(port, "127.0.0.1", 5432) as proxy:
        store = Store.open(
            pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{port}"), id_secret=ID_SECRET
        )
        store.ping()
        proxy.down()
        with pytest.raises(StoreUnavailable, match="unreachable"):
            store.ping()
        proxy.up()
        store.ping()
        store.engine.dispose()
