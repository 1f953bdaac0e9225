"""HandoffWorkflow on the real dev server: routing, notices, SLA timers in business time, outcomes.

Handoffs are started directly (as the contact workflow starts its child); Slack and email go
to real local sinks; time moves with per-workflow time skipping of the handoff itself.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from handoff.contract import SalesActivity, SlaStatus
from revops.settings import Settings
from store.effects import Ledger
from store.repo import Store
from store.routing_state import RoutingBook
from store.sla import SlaBook
from tests.handoff_support import (
    add_rep,
    handoff_config,
    handoff_input,
    known_contact,
    notification_sinks,
    routing_body,
    set_rep,
    sla_of,
    start_handoff,
)
from tests.sinks import part_of
from tests.support import eventually, running_worker, save_history, virtual_now
from workflows.handoff import HandoffWorkflow

NEW_YORK = ZoneInfo("America/New_York")
SECOND = timedelta(seconds=1)


async def advance_to(
    env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any], at: datetime
) -> None:
    """Move the handoff's clock to ``at`` (its timers due by then fire, in order)."""
    now = await virtual_now(env, handle)
    if at > now:
        await env.fast_forward(handle, at - now)


async def owner_of(handle: WorkflowHandle[Any, Any]) -> SlaStatus:
    """The SLA once an owner is chosen."""
    return await eventually(lambda: sla_of(handle), lambda s: s.owner is not None)


def said(texts: list[str], start: str) -> list[str]:
    """The messages starting with ``start``."""
    return [text for text in texts if text.startswith(start)]


async def listed(value: Any) -> Any:
    """Make a plain value (or a callable's result) awaitable, for ``eventually``."""
    return value() if callable(value) else value


async def say(handle: WorkflowHandle[Any, Any], name: str, **properties: Any) -> None:
    """Forward one sales activity, as the contact workflow does."""
    activity = SalesActivity(name=name, at=datetime.now(UTC), properties=properties)
    await handle.signal(HandoffWorkflow.sales_activity, activity)


# --- notices and first touch ----------------------------------------------------------------


async def test_first_touch_within_the_window_meets_the_sla(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    contact = known_contact(store, "u-touch")
    data = handoff_input(contact, handoff_config())
    with notification_sinks(settings) as sinks:
        async with running_worker(env.client, store, sinks.settings):
            handle = await start_handoff(env.client, sinks.settings, data)
            status = await owner_of(handle)
            assert (status.owner, status.team, status.state) == (
                "rep-a02",
                "amer-general",
                "waiting",
            )
            await eventually(lambda: listed(sinks.slack), lambda texts: len(texts) == 1)
            await say(handle, "Sales Call Logged")
            status = await eventually(lambda: sla_of(handle), lambda s: s.state == "met")
            record = await eventually(
                lambda: listed(SlaBook(store).get(data.handoff_id)),
                lambda r: r is not None and r.state == "met",
            )
            await save_history(handle, "handoff_first_touch")
    assert status.sla_met is True and status.first_contact_at is not None
    assert record.first_contact_date is not None and record.sla_met is True
    assert record.mql_date == data.mql_at and record.owner == "rep-a02"


async def test_the_owner_is_told_the_top_three_behaviours_demand_state_and_scores(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    contact = known_contact(store, "u-notice")
    data = handoff_input(contact, handoff_config())
    with notification_sinks(settings) as sinks:
        async with running_worker(env.client, store, sinks.settings):
            handle = await start_handoff(env.client, sinks.settings, data)
            status = await owner_of(handle)
            await eventually(lambda: listed(sinks.slack), lambda texts: len(texts) == 1)
            await eventually(lambda: listed(sinks.inbox), lambda mails: len(mails) == 1)
            await eventually(
                lambda: listed(Ledger(store).tasks("rep-a02")), lambda tasks: len(tasks) == 1
            )
    (text,) = sinks.slack()
    assert text.startswith("New hand-raiser for AMER SDR 1 (rep-a02): first touch by")
    assert "Top behaviours: Demo Requested, Pricing Page Viewed, Case Study Viewed" in text
    assert "Email Opened" not in text
    assert "Demand state: commercial-negotiating (came from solution-aware)" in text
    assert "Scores: fit 65, engagement 80" in text
    assert "revops contacts why u-notice" in text
    (mail,) = sinks.mails_to("sdr-a02@example.com")
    assert "Case Study Viewed" in part_of(mail, "plain") and mail["List-Unsubscribe"] is None
    (task,) = Ledger(store).tasks("rep-a02")
    assert task.kind == "handoff_assigned" and task.contact_id == contact
    assert task.due_at is not None and task.due_at.replace(tzinfo=UTC) == status.deadline
    assert "commercial-negotiating" in task.description
    assert "u-notice@x.io" not in text + task.description, "no contact address in notices"


# --- routing --------------------------------------------------------------------------------


async def test_named_account_beats_specialists_which_beat_round_robin(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    config = handoff_config()
    leads: dict[str, dict[str, Any]] = {
        "u-bank": {"account_domain": "www.BigBank.example", "country": "GB"},
        "u-clinic": {"country": "DE", "industry": "Healthcare"},
        "u-shop-1": {"country": "US"},
        "u-shop-2": {"country": "US"},
    }
    with notification_sinks(settings) as sinks:
        async with running_worker(env.client, store, sinks.settings):
            owners = {}
            for user_id, lead in leads.items():
                data = handoff_input(known_contact(store, user_id), config, **lead)
                handle = await start_handoff(env.client, sinks.settings, data)
                owners[user_id] = (await owner_of(handle)).owner
    assert owners == {
        "u-bank": "rep-e01",
        "u-clinic": "rep-h01",
        "u-shop-1": "rep-a02",
        "u-shop-2": "rep-a03",
    }
    (bank,) = RoutingBook(store).decisions(contact_id=store.resolve("u-bank"))
    assert bank.method == "named_account" and bank.config_version == "2026.1"
    assert any("owned by rep-e01" in step for step in bank.trace)
    (clinic,) = RoutingBook(store).decisions(contact_id=store.resolve("u-clinic"))
    assert clinic.team == "emea-healthcare"


async def test_out_of_office_and_full_reps_are_skipped_until_capacity_frees(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    today = datetime.now(NEW_YORK).date()
    body = routing_body()
    away = [{"start": str(today - timedelta(days=1)), "end": str(today + timedelta(days=1))}]
    set_rep(body, "rep-a02", out_of_office=away)
    set_rep(body, "rep-a03", max_open_leads=1)
    add_rep(body, "rep-a04", "amer-general", timezone="America/New_York")
    config = handoff_config(body)
    with notification_sinks(settings) as sinks:
        async with running_worker(env.client, store, sinks.settings):
            handles = []
            for n in range(3):
                data = handoff_input(known_contact(store, f"u-cap-{n}"), config)
                handles.append(await start_handoff(env.client, sinks.settings, data))
                await owner_of(handles[-1])
            owners = [(await sla_of(h)).owner for h in handles]
            await say(handles[0], "Lead Accepted")
            await eventually(
                lambda: listed(RoutingBook(store).state),
                lambda state: state.open_leads.get("rep-a03") == 0,
            )
            data = handoff_input(known_contact(store, "u-cap-3"), config)
            fourth = (await owner_of(await start_handoff(env.client, sinks.settings, data))).owner
    assert owners == ["rep-a03", "rep-a04", "rep-a04"]
    assert fourth == "rep-a03", "an accepted lead frees its rep's capacity"
    trace = RoutingBook(store).decisions(contact_id=store.resolve("u-cap-2"))[0].trace
    assert any("skipped rep-a02, out of office" in step for step in trace)
    assert any("skipped rep-a03, at capacity (1 of 1 open leads)" in step for step in trace)


async def test_twelve_handoffs_at_once_take_fair_turns_over_three_reps(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    body = routing_body()
    add_rep(body, "rep-a04", "amer-general", timezone="America/Chicago")
    config = handoff_config(body)
    inputs = [handoff_input(known_contact(store, f"u-rr-{n}"), config) for n in range(12)]
    with notification_sinks(settings) as sinks:
        async with running_worker(env.client, store, sinks.settings):
            handles = await asyncio.gather(
                *(start_handoff(env.client, sinks.settings, data) for data in inputs)
            )
            statuses = await asyncio.gather(*(owner_of(handle) for handle in handles))
    load = Counter(status.owner for status in statuses)
    assert load == {"rep-a02": 4, "rep-a03": 4, "rep-a04": 4}
    assert RoutingBook(store).state().open_leads == dict(load)


# --- SLA timers -------------------------------------------------------------------------------


async def test_reminder_then_breach_escalates_to_the_manager(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    contact = known_contact(store, "u-late")
    data = handoff_input(contact, handoff_config())
    with notification_sinks(settings) as sinks:
        async with running_worker(env.client, store, sinks.settings):
            handle = await start_handoff(env.client, sinks.settings, data)
            first = await owner_of(handle)
            assert first.reminder_at is not None and first.deadline is not None
            await advance_to(env, handle, first.reminder_at + SECOND)
            reminded = await eventually(lambda: sla_of(handle), lambda s: s.reminders == 1)
            await eventually(
                lambda: listed(sinks.slack), lambda texts: bool(said(texts, "Reminder"))
            )
            await advance_to(env, handle, first.deadline + SECOND)
            breached = await eventually(lambda: sla_of(handle), lambda s: s.breaches == 1)
            await eventually(
                lambda: listed(sinks.slack), lambda texts: bool(said(texts, "SLA breached"))
            )
            record = SlaBook(store).get(data.handoff_id)
    assert (reminded.state, reminded.breaches) == ("waiting", 0)
    assert (breached.state, breached.escalations, breached.sla_met) == ("escalated", 1, False)
    assert breached.owner == "rep-a02", "the first breach escalates; it does not reassign"
    escalations = [t for t in Ledger(store).tasks("mgr-amer") if t.kind == "handoff_escalation"]
    assert len(escalations) == 1 and "rep-a02" in escalations[0].title
    assert len(sinks.mails_to("sdr-a02@example.com")) == 2, "assignment and reminder"
    assert record is not None and (record.reminders, record.breaches) == (1, 1)


async def test_second_breach_reassigns_to_the_next_rep_with_a_new_sla(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    contact = known_contact(store, "u-cold")
    data = handoff_input(contact, handoff_config())
    with notification_sinks(settings) as sinks:
        async with running_worker(env.client, store, sinks.settings):
            handle = await start_handoff(env.client, sinks.settings, data)
            first = await owner_of(handle)
            assert first.reassign_at is not None
            await advance_to(env, handle, first.reassign_at + SECOND)
            moved = await eventually(lambda: sla_of(handle), lambda s: s.reassignments == 1)
            await eventually(
                lambda: listed(sinks.slack),
                lambda texts: bool(said(texts, "New hand-raiser for AMER SDR 2")),
            )
            await say(handle, "Sales Email Sent")
            await eventually(lambda: sla_of(handle), lambda s: s.first_contact_at is not None)
            await save_history(handle, "handoff_reassignment")
    assert (moved.owner, moved.state, moved.breaches) == ("rep-a03", "reassigned", 2)
    assert moved.deadline is not None and moved.deadline > first.reassign_at
    (texts,) = [said(sinks.slack(), "New hand-raiser for AMER SDR 2")]
    assert "reassigned from rep-a02" in texts[0]
    reassignment = RoutingBook(store).decisions(handoff_id=data.handoff_id)[-1]
    assert (reassignment.step, reassignment.rep_id) == ("1", "rep-a03")
    assert reassignment.decision["reassigned_from"] == "rep-a02"
    assert RoutingBook(store).state().open_leads == {"rep-a02": 0, "rep-a03": 1}
    record = SlaBook(store).get(data.handoff_id)
    assert record is not None and [t.owner for t in record.turns] == ["rep-a02", "rep-a03"]


async def test_deadline_skips_a_new_york_holiday_and_the_weekend(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    # Thursday 24 Dec 2026, 17:20 in New York: 10 minutes left that day; Friday is a holiday.
    mql_at = datetime(2026, 12, 24, 17, 20, tzinfo=NEW_YORK)
    data = handoff_input(known_contact(store, "u-xmas"), handoff_config(), mql_at=mql_at)
    with notification_sinks(settings) as sinks:
        async with running_worker(env.client, store, sinks.settings):
            handle = await start_handoff(env.client, sinks.settings, data)
            status = await owner_of(handle)
            assert status.deadline == datetime(2026, 12, 28, 8, 35, tzinfo=NEW_YORK)
            assert status.reminder_at == datetime(2026, 12, 28, 8, 31, 15, tzinfo=NEW_YORK)
            await advance_to(env, handle, status.deadline - timedelta(minutes=1))
            before = await eventually(lambda: sla_of(handle), lambda s: s.reminders == 1)
            await advance_to(env, handle, status.deadline + timedelta(minutes=1))
            after = await eventually(lambda: sla_of(handle), lambda s: s.breaches == 1)
    assert before.breaches == 0 and before.state == "waiting"
    assert after.state == "escalated" and status.calendar == "amer"


async def test_no_sales_reply_25_hours_after_the_mql_warns_the_manager(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    data = handoff_input(known_contact(store, "u-quiet"), handoff_config(), trigger="score")
    with notification_sinks(settings) as sinks:
        async with running_worker(env.client, store, sinks.settings):
            handle = await start_handoff(env.client, sinks.settings, data)
            status = await owner_of(handle)
            assert status.policy == "score-mql"
            await advance_to(env, handle, data.mql_at + timedelta(hours=25) + SECOND)
            warnings = await eventually(
                lambda: listed(lambda: _tasks(store, "mgr-amer", "handoff_reply_warning")),
                lambda tasks: len(tasks) == 1,
            )
    assert "No sales reply" in warnings[0].description


def _tasks(store: Store, owner: str, kind: str) -> list[Any]:
    return [task for task in Ledger(store).tasks(owner) if task.kind == kind]


# --- sales outcomes ---------------------------------------------------------------------------


async def test_accepting_the_lead_ends_the_sla_and_frees_capacity(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    data = handoff_input(known_contact(store, "u-yes"), handoff_config())
    with notification_sinks(settings) as sinks:
        async with running_worker(env.client, store, sinks.settings):
            handle = await start_handoff(env.client, sinks.settings, data)
            await owner_of(handle)
            await say(handle, "Lead Accepted")
            status = await eventually(lambda: sla_of(handle), lambda s: s.state == "accepted")
            state = await eventually(
                lambda: listed(RoutingBook(store).state),
                lambda s: s.open_leads.get("rep-a02") == 0,
            )
            running = (await handle.describe()).status
    assert status.sla_met is True and status.accepted_at is not None
    assert status.reminder_at is not None
    assert state.open_leads == {"rep-a02": 0}
    assert running == WorkflowExecutionStatus.RUNNING, "it waits for the opportunity to close"


async def test_rejected_lead_records_the_reason_and_ends_the_handoff(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    data = handoff_input(known_contact(store, "u-no"), handoff_config())
    with notification_sinks(settings) as sinks:
        async with running_worker(env.client, store, sinks.settings):
            handle = await start_handoff(env.client, sinks.settings, data)
            await owner_of(handle)
            await say(handle, "Lead Rejected", reason="Student, not a buyer")
            result = await handle.result()
            record = await eventually(
                lambda: listed(SlaBook(store).get(data.handoff_id)),
                lambda r: r is not None and r.outcome is not None,
            )
    assert (result.outcome, result.outcome_reason) == ("rejected", "Student, not a buyer")
    assert record.state == "rejected" and record.outcome_reason == "Student, not a buyer"
    assert RoutingBook(store).state().open_leads == {"rep-a02": 0}


async def test_closed_won_hands_off_to_customer_success_with_what_sales_gathered(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    data = handoff_input(known_contact(store, "u-won"), handoff_config())
    with notification_sinks(settings) as sinks:
        async with running_worker(env.client, store, sinks.settings):
            handle = await start_handoff(env.client, sinks.settings, data)
            await owner_of(handle)
            await say(handle, "Meeting Booked")
            await say(handle, "Lead Accepted")
            await say(handle, "Opportunity Created", amount=50000)
            await say(handle, "Closed Won", amount=52000, term="3 years")
            result = await handle.result()
            (task,) = await eventually(
                lambda: listed(lambda: Ledger(store).tasks("cs-team")), lambda t: len(t) == 1
            )
            await save_history(handle, "handoff_closed_won")
    assert result.outcome == "closed_won" and result.sla_met is True
    assert task.kind == "handoff_customer_success" and task.title == "Onboard new customer"
    description = task.description
    assert "Top behaviours: Demo Requested, Pricing Page Viewed, Case Study Viewed" in description
    assert "Sales owner: rep-a02 (amer-general)" in description
    assert "Deal notes from sales: amount=52000, term=3 years" in description
    today = f"{await virtual_now(env, handle):%Y-%m-%d}"
    assert f"accepted {today}" in description and f"won {today}" in description
    assert any(text.startswith("Closed won") for text in sinks.slack())


async def test_closed_lost_records_the_outcome(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    data = handoff_input(known_contact(store, "u-lost-deal"), handoff_config(), trigger="score")
    with notification_sinks(settings) as sinks:
        async with running_worker(env.client, store, sinks.settings):
            handle = await start_handoff(env.client, sinks.settings, data)
            await owner_of(handle)
            await say(handle, "Lead Accepted")
            await say(handle, "Closed Lost", reason="No Budget")
            result = await handle.result()
    assert (result.outcome, result.outcome_reason) == ("closed_lost", "No Budget")
    record = SlaBook(store).get(data.handoff_id)
    assert record is not None and record.state == "closed" and record.outcome == "closed_lost"


async def test_support_filters_breached_handoffs_by_sla_state(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    """``SlaState`` follows the SLA in the Temporal UI: waiting, then escalated on a breach."""
    contact = known_contact(store, "u-sla-attr")
    data = handoff_input(contact, handoff_config())

    async def found(query: str) -> list[str]:
        return [w.id async for w in env.client.list_workflows(query)]

    with notification_sinks(settings) as sinks:
        async with running_worker(env.client, store, sinks.settings):
            handle = await start_handoff(env.client, sinks.settings, data)
            first = await owner_of(handle)
            waiting = f'SlaState = "waiting" AND WorkflowId = "{data.handoff_id}"'
            assert await eventually(lambda: found(waiting), bool) == [data.handoff_id]
            assert first.deadline is not None
            await advance_to(env, handle, first.deadline + SECOND)
            await eventually(lambda: sla_of(handle), lambda s: s.breaches == 1)
            breached = f'SlaState IN ("breached", "escalated") AND WorkflowId = "{data.handoff_id}"'
            assert await eventually(lambda: found(breached), bool) == [data.handoff_id]
            await save_history(handle, "handoff_sla_state_attribute")
