"""The handoff's contract with the contact workflow: started as a child, it reports owner and SLA
changes back by signal; it survives continue-as-new with its timers and owner intact."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from temporalio import workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from temporalio.workflow import ParentClosePolicy

from handoff.contract import HandoffInput, HandoffUpdate, SalesActivity
from revops.settings import Settings
from store.repo import Store
from tests.handoff_support import (
    handoff_config,
    handoff_input,
    known_contact,
    notification_sinks,
    sla_of,
    start_handoff,
)
from tests.support import eventually, running_worker
from worker import WORKFLOWS, WorkerDeps
from workflows.handoff import HandoffParent, HandoffWorkflow


@workflow.defn(name="HandoffParentProbe", sandboxed=False)
class ParentProbe(HandoffParent):
    """Stands in for the contact workflow: starts the child, keeps every update it sends."""

    def __init__(self) -> None:
        self.updates: list[HandoffUpdate] = []

    @workflow.run
    async def run(self, data: HandoffInput) -> None:
        """Start the handoff as a child (abandoned on close, like the contact's) and wait."""
        await workflow.start_child_workflow(
            HandoffWorkflow.run,
            data,
            id=data.handoff_id,
            parent_close_policy=ParentClosePolicy.ABANDON,
        )
        await workflow.wait_condition(lambda: any(u.outcome for u in self.updates))

    @workflow.signal(name="handoff_update")
    def handoff_update(self, update: HandoffUpdate) -> None:
        """Keep the update."""
        self.updates.append(update)

    @workflow.query(name="updates")
    def seen(self) -> list[HandoffUpdate]:
        """Every update so far."""
        return self.updates


async def test_the_parent_hears_owner_and_sla_changes(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    contact = known_contact(store, "u-parent")
    data = handoff_input(contact, handoff_config())
    with notification_sinks(settings) as sinks:
        deps = WorkerDeps(store=store, settings=sinks.settings)
        async with Worker(
            env.client,
            task_queue=settings.task_queue,
            workflows=[*WORKFLOWS, ParentProbe],
            activities=deps.activities(),
            activity_executor=ThreadPoolExecutor(max_workers=8),
        ):
            parent = await env.client.start_workflow(
                ParentProbe.run, data, id=f"probe-{contact}", task_queue=settings.task_queue
            )
            child = env.client.get_workflow_handle(data.handoff_id)

            async def updates() -> list[HandoffUpdate]:
                return await parent.query(ParentProbe.seen)

            await eventually(updates, lambda seen: len(seen) == 1)
            touch = SalesActivity(name="Sales Call Logged", at=datetime.now(UTC))
            await child.signal(HandoffWorkflow.sales_activity, touch)
            await eventually(updates, lambda seen: seen[-1].sla_state == "met")
            reject = SalesActivity(
                name="Lead Rejected", at=datetime.now(UTC), properties={"reason": "Competitor"}
            )
            await child.signal(HandoffWorkflow.sales_activity, reject)
            await parent.result()
            seen = await updates()
    assigned, met, rejected = seen
    assert (assigned.owner, assigned.team, assigned.sla_state) == (
        "rep-a02",
        "amer-general",
        "waiting",
    )
    assert assigned.deadline is not None and assigned.first_contact_at is None
    assert met.sla_state == "met" and met.first_contact_at is not None
    assert (rejected.sla_state, rejected.outcome, rejected.outcome_reason) == (
        "rejected",
        "rejected",
        "Competitor",
    )
    assert rejected.model_dump(mode="json")["deadline"].endswith("Z")


async def test_continue_as_new_keeps_owner_timers_and_outcome_rules(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    data = handoff_input(known_contact(store, "u-chatty"), handoff_config(history_limit=20))
    with notification_sinks(settings) as sinks:
        async with running_worker(env.client, store, sinks.settings):
            handle = await start_handoff(env.client, sinks.settings, data)
            before = await eventually(lambda: sla_of(handle), lambda s: s.owner is not None)
            # The run started here, not the one running now: with a limit of 20 events the first
            # run may already have continued as new after its own assignment (its history is
            # about 26 events), and the noise below would then never make another run.
            first_run = handle.result_run_id
            for n in range(8):
                noise = SalesActivity(
                    name="Opportunity Stage Changed",
                    at=datetime.now(UTC) + timedelta(seconds=n),
                    properties={"stage": f"s{n}"},
                )
                await handle.signal(HandoffWorkflow.sales_activity, noise)
            await eventually(
                handle.describe, lambda d: d.run_id != first_run and d.run_id is not None
            )
            await handle.signal(
                HandoffWorkflow.sales_activity,
                SalesActivity(name="Lead Accepted", at=datetime.now(UTC)),
            )
            after = await eventually(lambda: sla_of(handle), lambda s: s.state == "accepted")
    assert (after.owner, after.deadline, after.mql_at) == (
        before.owner,
        before.deadline,
        before.mql_at,
    )
