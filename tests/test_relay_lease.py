"""One relay delivers a shard at a time (per-contact order); a standby takes over when it stops."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from temporalio.testing import WorkflowEnvironment

from gateway.relay import Relay
from revops.settings import Settings
from store.lease import try_relay_lease
from store.repo import Store
from tests.support import eventually


def test_only_one_relay_holds_the_lease_at_a_time(any_store: Store) -> None:
    first = try_relay_lease(any_store.engine)
    assert first is not None and first.held()
    assert try_relay_lease(any_store.engine) is None
    first.release()
    assert not first.held()
    second = try_relay_lease(any_store.engine)
    assert second is not None
    second.release()


async def test_a_standby_relay_takes_over_when_the_active_one_stops(
    env: WorkflowEnvironment, any_store: Store, settings: Settings
) -> None:
    # One shard: the second relay has nothing to share and stands by.
    active = Relay(any_store, env.client, settings.task_queue, lease_retry=0.1, shards=1)
    standby = Relay(any_store, env.client, settings.task_queue, lease_retry=0.1, shards=1)
    running = asyncio.create_task(active.run_forever())
    await eventually(_probe(active), bool)
    waiting = asyncio.create_task(standby.run_forever())
    await asyncio.sleep(0.3)
    assert not standby.active
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    await eventually(_probe(standby), bool)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    assert not active.active


def _probe(relay: Relay) -> Callable[[], Awaitable[bool]]:
    async def active() -> bool:
        return relay.active

    return active
