"""The contact workflow starts its children: journeys on enrollment, the handoff on MQL."""

from __future__ import annotations

from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

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
