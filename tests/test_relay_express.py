"""Hand-raisers skip the outbox queue: the express lane delivers them beside a long pass."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from gateway.relay import Relay
from gateway.urgent import HandRaiserEvents
from revops.ids import contact_workflow_id
from revops.settings import Settings
from revops.yamlio import read_yaml
from store.registry import Registry
from store.repo import Store
from store.schema import OutboxRow
from tests.support import eventually, track

BACKLOG_CONTACTS = 150


def test_hand_raiser_names_come_from_the_scoring_model_alone(
    store: Store, settings: Settings
) -> None:
    names = HandRaiserEvents(store, settings.config_dir).names()
    assert names == {"Demo Requested", "Contact Sales Submitted"}


def test_a_deployed_scoring_model_changes_the_names_after_the_recheck(
    store: Store, settings: Settings
) -> None:
    events = HandRaiserEvents(store, settings.config_dir, recheck_seconds=0)
    assert "Free Trial Requested" not in events.names()
    body = read_yaml(settings.config_dir / "scoring.yaml")
    body["hand_raisers"] = ["Free Trial Requested"]
    Registry(store).deploy("scoring", "default", body, author="test")
    assert "Free Trial Requested" in events.names()


def test_accept_names_the_contacts_of_hand_raisers_only(any_store: Store) -> None:
    urgent = frozenset({"Demo Requested"})
    result = any_store.accept(
        [
            track("x-browse", "Pricing Page Viewed"),
            track("x-demo", "Demo Requested"),
            track("x-page", "Demo Requested", type_="page"),
        ],
        urgent=urgent,
    )
    assert result.urgent_contact_ids == [any_store.contact_id_for("x-demo")]
    assert len(result.contact_ids) == 3


async def test_an_expedited_contact_is_delivered_while_the_pass_is_still_running(
    env: WorkflowEnvironment, any_store: Store, settings: Settings
) -> None:
    any_store.accept([track(f"x-load-{n}", "Page Viewed") for n in range(BACKLOG_CONTACTS)])
    # One contact in flight at a time: the pass over the backlog takes many round trips.
    relay = Relay(any_store, env.client, settings.task_queue, concurrency=1, scan=10_000)
    running = asyncio.create_task(relay.run_forever())
    try:
        await eventually(_probe(relay), bool)
        await asyncio.sleep(0.2)  # the first pass has read the backlog and is delivering
        result = any_store.accept(
            [track("x-hand", "Demo Requested")], urgent=frozenset({"Demo Requested"})
        )
        relay.expedite(result.urgent_contact_ids)
        (hand,) = result.urgent_contact_ids
        await eventually(lambda: _delivered(any_store, hand), lambda n: n == 1, within=10)
        ordinary_done = await _delivered(any_store) - 1
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    # The pass marks its deliveries when it ends: none are marked if the hand-raiser went first.
    assert ordinary_done < BACKLOG_CONTACTS, "the hand-raiser waited for the whole pass"


def _probe(relay: Relay) -> Callable[[], Awaitable[bool]]:
    async def active() -> bool:
        return relay.active

    return active


async def _delivered(store: Store, contact_id: str | None = None) -> int:
    query = select(OutboxRow.id).where(OutboxRow.delivered_at.is_not(None))
    if contact_id is not None:
        query = query.where(OutboxRow.contact_id == contact_id)
    with store.engine.connect() as connection:
        return len(list(connection.scalars(query)))


async def test_a_hand_raisers_workflow_gets_task_priority_one_ordinary_ones_keep_the_default(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    relay = Relay(store, env.client, settings.task_queue)
    urgent = frozenset({"Demo Requested"})
    store.accept([track("x-prio-known", "Page Viewed"), track("x-prio-plain", "Page Viewed")])
    await relay.drain_once()  # both workflows exist, with the default priority
    raised = store.accept(
        [track("x-prio-known", "Demo Requested"), track("x-prio-new", "Demo Requested")],
        urgent=urgent,
    )
    for contact_id in raised.urgent_contact_ids:
        await relay.drain_once(contact_id)  # what the express lane runs
    keys = {
        user: await _priority_key(env, store.contact_id_for(user))
        for user in ("x-prio-known", "x-prio-new", "x-prio-plain")
    }
    assert keys == {"x-prio-known": 1, "x-prio-new": 1, "x-prio-plain": 0}


async def _priority_key(env: WorkflowEnvironment, contact_id: str) -> int:
    """The workflow's priority key as the server keeps it (0: unset, i.e. the default)."""
    description = await env.client.get_workflow_handle(contact_workflow_id(contact_id)).describe()
    key: int = description.raw_description.workflow_execution_info.priority.priority_key
    return key
