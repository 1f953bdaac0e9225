"""The relay in shards: gateways split the contacts, a dead one's shards are taken over, and
every contact still gets all its events in order."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from gateway.relay import Relay
from models.events import EventBatch
from revops.ids import contact_bucket, contact_workflow_id
from revops.settings import Settings
from store.repo import Store
from tests.support import eventually, track

SHARDS = 4
CONTACTS = 24


def _relay(store: Store, env: WorkflowEnvironment, settings: Settings) -> Relay:
    return Relay(
        store,
        env.client,
        settings.task_queue,
        shards=SHARDS,
        lease_check=0.1,
        lease_retry=0.1,
        idle_sleep=0.02,
    )


def _shards_of(*relays: Relay) -> Callable[[], Awaitable[list[frozenset[int]]]]:
    async def probe() -> list[frozenset[int]]:
        return [r.shards for r in relays]

    return probe


def _pending(store: Store) -> Callable[[], Awaitable[int]]:
    async def probe() -> int:
        return await asyncio.to_thread(store.pending_count)

    return probe


def _split(held: list[frozenset[int]]) -> bool:
    """Every relay holds some shards, none twice, all of them held."""
    union = frozenset().union(*held)
    return all(held) and sum(map(len, held)) == len(union) == SHARDS


async def _received(env: WorkflowEnvironment, contact_id: str) -> list[str]:
    """The messageIds a contact's workflow was signalled, in history order."""
    handle = env.client.get_workflow_handle(contact_workflow_id(contact_id))
    history = await handle.fetch_history()
    ids: list[str] = []
    for event in history.events:
        if event.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            continue
        payloads = event.workflow_execution_signaled_event_attributes.input.payloads
        (batch,) = await env.client.data_converter.decode(payloads, [EventBatch])
        ids += [e.message_id for e in batch.events]
    return ids


async def test_two_relays_split_the_shards_and_one_takes_over_a_dead_ones_events(
    env: WorkflowEnvironment, any_store: Store, settings: Settings
) -> None:
    first, second = _relay(any_store, env, settings), _relay(any_store, env, settings)
    sent: dict[str, list[str]] = {}

    def accept(round_: int) -> None:
        events = [
            track(f"shard-{n}", "Page Viewed", message_id=f"shard-{n}-{round_}")
            for n in range(CONTACTS)
        ]
        for contact_id in any_store.accept(events).contact_ids:
            sent.setdefault(contact_id, [])
        for event in events:
            assert event.user_id is not None
            sent[any_store.contact_id_for(event.user_id)].append(event.message_id)

    tasks = [asyncio.create_task(r.run_forever()) for r in (first, second)]
    try:
        await eventually(_shards_of(first, second), _split, within=10)
        accept(0)
        await eventually(_pending(any_store), lambda n: n == 0, within=10)
        tasks[1].cancel()  # the second gateway dies: its leases go with it
        await asyncio.gather(tasks[1], return_exceptions=True)
        accept(1)
        await eventually(_shards_of(first), lambda h: h == [frozenset(range(SHARDS))])
        accept(2)
        await eventually(_pending(any_store), lambda n: n == 0, within=10)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for contact_id, expected in sent.items():
        received = list(dict.fromkeys(await _received(env, contact_id)))  # redelivery is fine
        assert received == expected, contact_id


async def test_a_relay_that_joins_later_gets_its_share(
    env: WorkflowEnvironment, any_store: Store, settings: Settings
) -> None:
    first, second = _relay(any_store, env, settings), _relay(any_store, env, settings)
    running = [asyncio.create_task(first.run_forever())]
    try:
        await eventually(_shards_of(first), lambda h: h == [frozenset(range(SHARDS))])
        running.append(asyncio.create_task(second.run_forever()))
        await eventually(_shards_of(first, second), _split, within=10)
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)


@hsettings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(shard_count=st.integers(1, 9), data=st.data())
def test_shards_partition_the_outbox_and_keep_each_contacts_order(
    store: Store, shard_count: int, data: st.DataObject
) -> None:
    if not store.pending_count():
        store.accept(
            [track(f"part-{n % 13}", "Page Viewed", message_id=f"p-{n}") for n in range(80)]
        )
    everything = store.backlog(scan=1000)
    reads = [
        store.backlog(scan=1000, shards={s}, shard_count=shard_count) for s in range(shard_count)
    ]
    assert sorted(i.outbox_id for r in reads for i in r) == [i.outbox_id for i in everything]
    shard = data.draw(st.integers(0, shard_count - 1))
    for item in reads[shard]:
        assert contact_bucket(item.contact_id) % shard_count == shard
    for read in reads:
        for contact_id in {i.contact_id for i in read}:
            own = [i.outbox_id for i in everything if i.contact_id == contact_id]
            assert [i.outbox_id for i in read if i.contact_id == contact_id] == own
