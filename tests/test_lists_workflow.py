"""Lists and demand states evaluated in the contact workflow, on events and on window expiry."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from gateway.relay import Relay
from models.events import StaticListChange
from revops.settings import Settings
from store.history import History, ListMembershipRow
from store.repo import Store
from tests.support import (
    ICP_TRAITS,
    applied,
    eventually,
    handle_for,
    running_worker,
    send,
    state_of,
    track,
    virtual_now,
)
from workflows.contact import ContactWorkflow

LIST = "Pricing Engaged ICP"


async def _views_on_days(
    env: WorkflowEnvironment, store: Store, relay: Relay, user: str, days: list[int]
) -> tuple[WorkflowHandle[Any, Any], datetime]:
    """An ICP contact who views pricing on the given days (day 0 = the first view)."""
    await send(store, relay, track(user, "Identify", type_="identify", traits=ICP_TRAITS))
    handle = handle_for(env.client, store, user)
    await eventually(lambda: state_of(handle), lambda s: s.events_applied == 1)
    start = await virtual_now(env, handle)
    for number, day in enumerate(days, start=2):
        now = await virtual_now(env, handle)
        if start + timedelta(days=day) > now:
            await env.fast_forward(handle, start + timedelta(days=day) - now)
        at = await virtual_now(env, handle)
        await send(store, relay, track(user, "Pricing Page Viewed", at=at))
        await eventually(lambda: state_of(handle), applied(number))
    return handle, start


async def test_three_views_in_seven_days_enter_and_the_list_is_left_when_the_window_ends(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    async with running_worker(env.client, store, settings, children=False) as relay:
        handle, start = await _views_on_days(env, store, relay, "u-l1", [0, 3, 6])
        state = await state_of(handle)
        assert LIST in state.lists, "entered in the task of the third view"
        entered_at = state.list_since[LIST]
        await env.fast_forward(handle, start + timedelta(days=7) - entered_at - timedelta(hours=1))
        assert LIST in (await state_of(handle)).lists
        await env.fast_forward(handle, timedelta(hours=2))
        state = await eventually(lambda: state_of(handle), lambda s: LIST not in s.lists)
        stays = await eventually(
            lambda: _stays(store, state.contact_id), lambda rows: rows[0].left_at is not None
        )
    (stay,) = stays
    assert stay.left_at is not None
    left = (
        stay.left_at.replace(tzinfo=start.tzinfo) if stay.left_at.tzinfo is None else stay.left_at
    )
    assert timedelta(days=7) <= left - start < timedelta(days=7, minutes=1)


async def test_views_on_days_0_3_and_8_never_enter(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    async with running_worker(env.client, store, settings, children=False) as relay:
        handle, _ = await _views_on_days(env, store, relay, "u-l2", [0, 3, 8])
        state = await state_of(handle)
    assert LIST not in state.lists
    assert all(r.contact_id != state.contact_id for r in History(store).list_activity(LIST))


async def test_a_demo_request_keeps_membership_for_exactly_14_days(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    async with running_worker(env.client, store, settings, children=False) as relay:
        await send(store, relay, track("u-l3", "Demo Requested"))
        handle = handle_for(env.client, store, "u-l3")
        state = await eventually(lambda: state_of(handle), lambda s: LIST in s.lists)
        requested = state.events[-1].at
        now = await virtual_now(env, handle)
        await env.fast_forward(handle, requested + timedelta(days=14) - now - timedelta(minutes=5))
        assert LIST in (await state_of(handle)).lists
        await env.fast_forward(handle, timedelta(minutes=10))
        state = await eventually(lambda: state_of(handle), lambda s: LIST not in s.lists)
    assert state.stage == "MQL", "the hand-raiser stays an MQL"


async def test_static_lists_are_added_and_removed_by_hand(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    async with running_worker(env.client, store, settings) as relay:
        await send(store, relay, track("u-l4", "Signed Up"))
        handle = handle_for(env.client, store, "u-l4")
        await eventually(lambda: state_of(handle), lambda s: s.stage == "Lead")
        await handle.signal(
            ContactWorkflow.set_list_membership,
            StaticListChange(list_name="Event Attendees", member=True),
        )
        await eventually(lambda: state_of(handle), lambda s: "Event Attendees" in s.lists)
        await eventually(lambda: _counts(store), lambda c: c.get("Event Attendees") == 1)
        await handle.signal(
            ContactWorkflow.set_list_membership,
            StaticListChange(list_name="Event Attendees", member=False),
        )
        state = await eventually(
            lambda: state_of(handle), lambda s: "Event Attendees" not in s.lists
        )
        counts = await eventually(
            lambda: _counts(store), lambda c: c.get("Event Attendees") is None
        )
    assert "Event Attendees" not in counts and state.stage == "Lead"


async def _counts(store: Store) -> dict[str, int]:
    return History(store).list_counts()


async def _stays(store: Store, contact_id: str) -> list[ListMembershipRow]:
    return [r for r in History(store).list_activity(LIST) if r.contact_id == contact_id]


async def _demand_rows(store: Store, contact_id: str) -> list[str]:
    return [row.state for row in History(store).demand_states(contact_id)]


async def test_demand_state_progresses_with_history_and_search_attribute(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    async with running_worker(env.client, store, settings) as relay:
        await send(store, relay, track("u-ds", "Signed Up"))
        handle = handle_for(env.client, store, "u-ds")
        await eventually(lambda: state_of(handle), lambda s: s.demand_state == "problem-aware")
        await send(
            store,
            relay,
            track("u-ds", "Integration Docs Viewed"),
            track("u-ds", "Security Page Viewed"),
        )
        await eventually(
            lambda: state_of(handle), lambda s: s.demand_state == "technical-validating"
        )
        await send(
            store, relay, track("u-ds", "Pricing Page Viewed"), track("u-ds", "Pricing Page Viewed")
        )
        state = await eventually(
            lambda: state_of(handle), lambda s: s.demand_state == "commercial-negotiating"
        )
        description = await handle.describe()
        await eventually(
            lambda: _demand_rows(store, state.contact_id),
            lambda rows: rows[-1:] == ["commercial-negotiating"],
        )
    path = [(e.previous, e.state) for e in state.demand_history]
    assert path == [
        (None, "problem-aware"),
        ("problem-aware", "technical-validating"),
        ("technical-validating", "commercial-negotiating"),
    ]
    attributes = {key.name: value for key, value in description.typed_search_attributes}
    assert attributes["DemandState"] == "commercial-negotiating"
