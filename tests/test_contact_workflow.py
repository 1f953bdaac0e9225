"""ContactWorkflow on the real dev server: stages, dedupe, continue-as-new, timers."""

from __future__ import annotations

from datetime import timedelta

from temporalio.testing import WorkflowEnvironment

from models.events import ContactEvent, EventBatch, StageOverride
from models.ingest import IncomingEvent
from revops.settings import Settings
from store.repo import Store
from store.schema import StageHistoryRow
from tests.support import (
    eventually,
    handle_for,
    running_worker,
    save_history,
    send,
    state_of,
    track,
)
from workflows.contact import ContactWorkflow


async def test_signed_up_contact_becomes_lead_with_timestamped_history(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    async with running_worker(env.client, store, settings) as relay:
        await send(store, relay, track("u-lead", "Signed Up"))
        handle = handle_for(env.client, store, "u-lead")
        state = await eventually(lambda: state_of(handle), lambda s: s.stage == "Lead")
    assert [e.stage for e in state.stage_history] == ["Lead"]
    assert state.stage_history[0].reason == "Signed Up"
    assert state.stage_history[0].at.tzinfo is not None
    stored = store.stage_history(state.contact_id)
    assert [row.stage for row in stored] == ["Lead"]


async def test_first_event_without_a_promotion_makes_a_subscriber(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    async with running_worker(env.client, store, settings) as relay:
        await send(store, relay, track("u-sub", "Newsletter Opened"))
        handle = handle_for(env.client, store, "u-sub")
        state = await eventually(lambda: state_of(handle), lambda s: s.stage is not None)
    assert state.stage == "Subscriber"


async def test_lower_stage_event_never_demotes(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    async with running_worker(env.client, store, settings) as relay:
        await send(store, relay, track("u-opp", "Opportunity Created", type_="sales"))
        await send(store, relay, track("u-opp", "Signed Up"))
        await send(store, relay, track("u-opp", "Lead Accepted", type_="sales"))
        handle = handle_for(env.client, store, "u-opp")
        state = await eventually(lambda: state_of(handle), lambda s: s.events_applied == 3)
    assert state.stage == "Opportunity"
    assert [e.stage for e in state.stage_history] == ["Opportunity"]
    assert state.stage_entered_at(state.stage) is not None


async def test_promotions_are_timestamped_in_order(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    async with running_worker(env.client, store, settings) as relay:
        await send(store, relay, track("u-path", "Signed Up"))
        handle = handle_for(env.client, store, "u-path")
        await eventually(lambda: state_of(handle), lambda s: s.stage == "Lead")
        await env.fast_forward(handle, timedelta(days=3))
        await send(store, relay, track("u-path", "Opportunity Created", type_="sales"))
        state = await eventually(lambda: state_of(handle), lambda s: s.stage == "Opportunity")
        await save_history(handle, "contact_promotions")
    lead, opportunity = state.stage_history
    assert opportunity.at - lead.at >= timedelta(days=3)


async def test_repeated_message_id_is_counted_once(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    event = track("u-dup", "Pricing Page Viewed", message_id="m-dup-1")
    async with running_worker(env.client, store, settings) as relay:
        await send(store, relay, event)
        handle = handle_for(env.client, store, "u-dup")
        await eventually(lambda: state_of(handle), lambda s: s.events_applied == 1)
        # Bypass the store's dedupe: the same messageId signalled again, as a retried relay would.
        pending = store.pending(limit=10)
        assert pending == []
        again = EventBatch(events=[_as_contact_event(event)])
        await handle.signal(ContactWorkflow.events, again)
        await handle.signal(ContactWorkflow.events, again)
        await send(store, relay, track("u-dup", "Case Study Viewed"))
        state = await eventually(lambda: state_of(handle), lambda s: s.events_applied >= 2)
    assert state.event_counts == {"Pricing Page Viewed": 1, "Case Study Viewed": 1}


async def test_continue_as_new_keeps_state_and_still_ignores_seen_message_ids(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    first = track("u-can", "Signed Up", message_id="m-can-first")
    async with running_worker(env.client, store, settings, history_limit=20) as relay:
        await send(store, relay, first)
        handle = handle_for(env.client, store, "u-can")
        first_run = (await handle.describe()).run_id
        for i in range(12):
            await send(store, relay, track("u-can", "Email Opened", message_id=f"m-can-{i}"))
        # The run continues as new once its step's handlers finish: the query can answer from
        # the old run a moment before, so wait for the new run rather than look once.
        state = await eventually(
            lambda: state_of(handle), lambda s: s.events_applied == 13 and s.runs >= 2
        )
        assert (await handle.describe()).run_id != first_run, "expected a continue-as-new"
        await handle.signal(ContactWorkflow.events, EventBatch(events=[_as_contact_event(first)]))
        await send(store, relay, track("u-can", "Case Study Viewed"))
        state = await eventually(lambda: state_of(handle), lambda s: s.events_applied == 14)
        await save_history(handle, "contact_after_continue_as_new")
    assert state.event_counts["Signed Up"] == 1
    assert state.event_counts["Email Opened"] == 12
    assert state.stage == "Lead"


async def test_manual_override_is_kept_as_an_audited_entry(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    async with running_worker(env.client, store, settings) as relay:
        await send(store, relay, track("u-man", "Opportunity Created", type_="sales"))
        handle = handle_for(env.client, store, "u-man")
        await eventually(lambda: state_of(handle), lambda s: s.stage == "Opportunity")
        await handle.signal(
            ContactWorkflow.override_stage,
            StageOverride(stage="Lead", reason="duplicate opportunity"),
        )
        state = await eventually(lambda: state_of(handle), lambda s: s.stage == "Lead")
        await save_history(handle, "contact_manual_override")
        rows = await eventually(
            lambda: _stored_history(store, state.contact_id), lambda rows: len(rows) == 2
        )
    override = state.stage_history[-1]
    assert override.override is True
    assert "duplicate opportunity" in override.reason
    assert rows[-1].override is True


async def test_closed_lost_recycles_to_renurture_after_the_policys_delay(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    async with running_worker(env.client, store, settings) as relay:
        await send(
            store,
            relay,
            track("u-lost", "Closed Lost", type_="sales", properties={"reason": "Timing"}),
        )
        handle = handle_for(env.client, store, "u-lost")
        state = await eventually(lambda: state_of(handle), lambda s: bool(s.wakeups))
        assert state.renurture is None and state.enrollments == []
        await env.fast_forward(handle, timedelta(days=59))
        assert (await state_of(handle)).renurture is None
        await env.fast_forward(handle, timedelta(days=2))
        state = await eventually(lambda: state_of(handle), lambda s: bool(s.past_enrollments))
        await save_history(handle, "contact_lifecycle_recycle_policy")
    assert state.renurture is not None
    assert "closed lost: Timing" in state.renurture.reason
    assert state.wakeups == []
    assert [e.journey for e in state.past_enrollments] == ["renurture"], "the list's journey"
    assert state.stage == "Subscriber", "recycling never moves the stage"


async def test_search_attributes_carry_opaque_id_and_stage_only(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    async with running_worker(env.client, store, settings) as relay:
        await send(
            store,
            relay,
            track("jane@example.com", "Signed Up", traits={"email": "jane@example.com"}),
        )
        handle = handle_for(env.client, store, "jane@example.com")
        await eventually(lambda: state_of(handle), lambda s: s.stage == "Lead")
        description = await handle.describe()
        state = await state_of(handle)
    attributes = {key.name: value for key, value in description.typed_search_attributes}
    assert attributes["ContactId"] == state.contact_id
    assert attributes["LifecycleStage"] == "Lead"
    assert "example.com" not in handle.id
    assert "jane" not in state.model_dump_json()
    assert state.traits["email_domain"] == "example.com"


async def _stored_history(store: Store, contact_id: str) -> list[StageHistoryRow]:
    return store.stage_history(contact_id)


def _as_contact_event(event: IncomingEvent) -> ContactEvent:
    return ContactEvent(
        message_id=event.message_id,
        kind=event.type,
        name=event.name,
        timestamp=event.timestamp,
        received_at=event.received_at,
        properties=event.properties,
    )
