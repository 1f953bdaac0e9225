"""The contact workflow starts its children: journeys on enrollment, the handoff on MQL."""

from __future__ import annotations

from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from models.events import StaticListChange
from revops.settings import Settings
from store.decisions import DecisionLog
from store.repo import Store
from tests.support import (
    ICP_TRAITS,
    eventually,
    handle_for,
    running_worker,
    save_history,
    send,
    state_of,
    track,
)
from workflows.contact import ContactWorkflow


async def test_a_trial_start_enrolls_trial_onboarding_as_a_pinned_child(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    async with running_worker(env.client, store, settings, auto_handoff=False) as relay:
        await send(store, relay, track("u-trial", "Trial Started"))
        handle = handle_for(env.client, store, "u-trial")
        state = await eventually(
            lambda: state_of(handle), lambda s: any(e.workflow_id for e in s.enrollments)
        )
        (enrollment,) = state.enrollments
        child = env.client.get_workflow_handle(enrollment.workflow_id or "")
        # The child publishes its Journey attribute in its own first task: wait for it.
        description = await eventually(
            child.describe, lambda d: any(k.name == "Journey" for k, _ in d.typed_search_attributes)
        )
        attributes = {k.name: v for k, v in description.typed_search_attributes}
        decisions = DecisionLog(store).recent(state.contact_id)
        await save_history(handle, "contact_with_journey")
    assert enrollment.journey == "trial-onboarding"
    assert description.status == WorkflowExecutionStatus.RUNNING
    assert attributes["Journey"] == "trial-onboarding"
    assert any("trial-onboarding" in line for row in decisions for line in row.explanation)


async def test_a_hand_raiser_starts_the_handoff_in_the_mql_task_and_learns_its_owner(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    traits = {**ICP_TRAITS, "country": "US"}
    async with running_worker(env.client, store, settings) as relay:
        await send(store, relay, track("u-hr", "Identify", type_="identify", traits=traits))
        await send(store, relay, track("u-hr", "Demo Requested"))
        handle = handle_for(env.client, store, "u-hr")
        state = await eventually(
            lambda: state_of(handle),
            lambda s: s.handoff is not None and s.handoff.owner is not None,
        )
        assert state.handoff is not None
        child = env.client.get_workflow_handle(state.handoff.workflow_id)
        description = await child.describe()
        await save_history(handle, "contact_with_handoff")
    mql = next(e for e in state.stage_history if e.stage == "MQL")
    assert state.handoff.started_at == mql.at, "routing starts in the task that made the MQL"
    assert state.handoff.trigger == "hand_raiser"
    assert description.status == WorkflowExecutionStatus.RUNNING
    assert description.task_queue == settings.priority_task_queue, "ordinary traffic waits"
    assert state.handoff.deadline is not None


async def test_a_hold_list_pauses_the_contacts_journeys_and_leaving_it_resumes_them(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    async with running_worker(env.client, store, settings, auto_handoff=False) as relay:
        await send(store, relay, track("u-hold", "Trial Started"))
        handle = handle_for(env.client, store, "u-hold")
        state = await eventually(
            lambda: state_of(handle), lambda s: any(e.workflow_id for e in s.enrollments)
        )
        trial = env.client.get_workflow_handle(state.enrollments[0].workflow_id or "")
        hold = StaticListChange(list_name="Sales Hold", member=True)
        await handle.signal(ContactWorkflow.set_list_membership, hold)
        held = await eventually(lambda: state_of(handle), lambda s: s.enrollments[0].paused)
        release = StaticListChange(list_name="Sales Hold", member=False)
        await handle.signal(ContactWorkflow.set_list_membership, release)
        freed = await eventually(lambda: state_of(handle), lambda s: not s.enrollments[0].paused)
        signals = await eventually(lambda: _signals(trial), lambda names: "resume" in names)
        rows = DecisionLog(store).recent(state.contact_id)
    lines = [line for row in rows for line in row.explanation]
    assert held.enrollments[0].paused_by == "hold" and freed.enrollments[0].paused_by is None
    assert "paused trial-onboarding: all automation held: on list Sales Hold" in lines
    assert any(line.startswith("resumed trial-onboarding") for line in lines)
    assert signals.index("stop") < signals.index("resume"), "the journey heard both, in order"


async def _signals(handle: WorkflowHandle[Any, Any]) -> list[str]:
    history = await handle.fetch_history()
    signaled = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    return [
        e.workflow_execution_signaled_event_attributes.signal_name
        for e in history.events
        if e.event_type == signaled
    ]
