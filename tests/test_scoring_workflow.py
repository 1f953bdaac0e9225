"""Scoring and lifecycle inside the contact workflow (time skipping, real dev server)."""

from __future__ import annotations

from datetime import timedelta

from temporalio.testing import WorkflowEnvironment

from revops.settings import Settings
from store.history import History, ScoreHistoryRow
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


async def test_icp_contact_becomes_mql_in_the_task_of_the_qualifying_event(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    async with running_worker(env.client, store, settings) as relay:
        await send(store, relay, track("u-icp", "Identify", type_="identify", traits=ICP_TRAITS))
        handle = handle_for(env.client, store, "u-icp")
        steps = [
            ("Pricing Page Viewed", 25),
            ("Case Study Viewed", 40),
            ("Pricing Page Viewed", 65),
        ]
        stages = []
        for number, (name, engagement) in enumerate(steps, start=2):
            await send(store, relay, track("u-icp", name))
            state = await eventually(lambda: state_of(handle), applied(number))
            assert state.scores is not None
            assert state.scores.engagement == engagement
            stages.append(state.stage)
    assert state.scores is not None
    assert state.scores.fit == 65
    assert stages[-1] == "MQL" and "MQL" not in stages[:-1]
    mql = state.stage_history[-1]
    assert mql.at == state.scores.computed_at, "promoted in the same step that scored the event"
    assert "model 2026.2" in mql.reason and "fit 65" in mql.reason
    assert state.scores.top_behaviours[0].startswith("Viewed the pricing page 2 times")


async def test_hand_raiser_qualifies_at_once(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    async with running_worker(env.client, store, settings) as relay:
        await send(store, relay, track("u-hand", "Demo Requested"))
        handle = handle_for(env.client, store, "u-hand")
        state = await eventually(lambda: state_of(handle), lambda s: s.stage is not None)
    assert state.stage == "MQL"
    assert state.stage_history[-1].reason.startswith("Hand-raiser")


async def test_engagement_decays_on_time_with_no_new_events(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    async with running_worker(env.client, store, settings, children=False) as relay:
        await send(store, relay, track("u-decay", "Case Study Viewed"))
        handle = handle_for(env.client, store, "u-decay")
        await eventually(lambda: state_of(handle), lambda s: s.scores is not None)
        seen = {}
        for day, total in ((59, 59), (61, 2), (121, 60)):
            await env.fast_forward(handle, timedelta(days=total))
            state = await state_of(handle)
            assert state.scores is not None
            seen[day] = state.scores.engagement
        history = await eventually(
            lambda: _scores(store, state.contact_id), lambda rows: rows[0].engagement == 0
        )
    assert seen == {59: 15, 61: 7.5, 121: 0}
    causes = [row.cause for row in history]
    assert causes.count("time passed (decay, windows)") >= 2


async def _scores(store: Store, contact_id: str) -> list[ScoreHistoryRow]:
    return History(store).scores(contact_id)


async def test_score_drop_after_mql_renurtures_without_demotion(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    async with running_worker(env.client, store, settings, children=False) as relay:
        traits = {**ICP_TRAITS}
        await send(store, relay, track("u-drop", "Identify", type_="identify", traits=traits))
        for _ in range(2):
            await send(store, relay, track("u-drop", "Pricing Page Viewed"))
        handle = handle_for(env.client, store, "u-drop")
        await eventually(lambda: state_of(handle), lambda s: s.stage == "MQL")
        await env.fast_forward(handle, timedelta(days=31))
        state = await eventually(lambda: state_of(handle), lambda s: s.renurture is not None)
    assert state.stage == "MQL", "a score drop never demotes"
    assert state.renurture is not None and "score fell" in state.renurture.reason
    assert "Re-nurture" in state.lists
    assert sum(1 for e in state.stage_history if e.stage == "MQL") == 1


async def test_enterprise_segment_uses_its_stricter_gate(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    async with running_worker(env.client, store, settings) as relay:
        big = {**ICP_TRAITS, "company_size": 5000}
        await send(store, relay, track("u-ent", "Identify", type_="identify", traits=big))
        for _ in range(2):  # engagement 50: passes the default gate (> 40), not Enterprise (> 50)
            await send(store, relay, track("u-ent", "Pricing Page Viewed"))
        handle = handle_for(env.client, store, "u-ent")
        state = await eventually(lambda: state_of(handle), lambda s: s.events_applied == 3)
        assert state.scores is not None and state.scores.segment == "Enterprise"
        assert state.stage != "MQL"
        await send(store, relay, track("u-ent", "Email Opened"))
        state = await eventually(lambda: state_of(handle), lambda s: s.events_applied == 4)
    assert state.stage == "MQL"


async def test_unsubscribe_pulls_engagement_down(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    async with running_worker(env.client, store, settings) as relay:
        await send(store, relay, track("u-unsub", "Webinar Attended"))
        handle = handle_for(env.client, store, "u-unsub")
        await eventually(lambda: state_of(handle), lambda s: s.scores is not None)
        now = await virtual_now(env, handle)
        await send(store, relay, track("u-unsub", "Unsubscribed", at=now))
        state = await eventually(lambda: state_of(handle), lambda s: s.events_applied == 2)
    assert state.consent.marketing_allowed is False
    assert state.scores is not None and state.scores.engagement == 0
