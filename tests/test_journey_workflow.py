"""JourneyWorkflow on a real time-skipping dev server: every step type, goals, exits, pauses,
deferrals, version pinning, the parent contract and continue-as-new.

Sends go through the real send path to a real SMTP server (aiosmtpd) and a real HTTP server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import time, timedelta
from typing import Any

import pytest
import pytest_asyncio
import yaml
from temporalio.testing import WorkflowEnvironment

from audience.consent import Consent
from audience.facts import EventRecord
from definitions import JOURNEY as JOURNEY_DEFINITION
from definitions import Definitions, deployable_body
from journeys.contract import (
    JourneyInput,
    JourneyProgress,
    JourneyRequest,
    JourneyResult,
    JourneyStop,
)
from journeys.program import assign_variant, next_local_time
from models.search_attributes import JOURNEY, JOURNEY_VERSION
from revops.settings import Settings
from starter.simulate import simulation_environment
from store.effects import Ledger
from store.journeys import JourneyLog
from store.registry import Registry
from store.repo import Store
from tests.journey_parent import JourneyTestParent
from tests.journey_support import (
    contact,
    facts,
    journey,
    journey_worker,
    outcomes,
    progress,
    progress_when,
    read_signals,
    skip,
    start,
    tell,
    ten_am,
    took,
)
from tests.sinks import HttpSink, http_sink, smtp_sink
from tests.support import eventually, save_history, track
from workflows.journey import JourneyWorkflow


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def journey_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping dev server whose timers fire at once (see tests/journey_support.py)."""
    async with simulation_environment() as environment:
        yield environment


DAY = timedelta(days=1)


@pytest.fixture
def sinks(settings: Settings) -> Iterator[tuple[Settings, list[Any], HttpSink]]:
    """Settings pointing at a real SMTP server and a real HTTP server."""
    with smtp_sink() as (port, inbox), http_sink() as web:
        yield settings.model_copy(update={"smtp_port": port}), inbox, web


EVERY_STEP = """
steps:
  - id: never
    goal: {event: Never Happens}
  - id: hello
    send: {channel: email, name: Hello, subject: "Hello {{ contact.first_name }}",
           body: "Hi {{ contact.company }}"}
  - id: tag
    set: {trait: nurture_status, value: active}
  - id: join
    set: {list_add: Newsletter}
  - id: leave
    set: {list_remove: Re-nurture}
  - id: subject-test
    split:
      - variant: A
        steps: [{id: text-a, send: {channel: sms, text: "A: hi {{ journey }}"}}]
      - variant: B
        steps: [{id: text-b, send: {channel: sms, text: "B: hi {{ journey }}"}}]
  - id: pause-a-day
    wait: 1d
  - id: next-monday
    wait: {until: {weekday: Monday, time: "09:30"}}
  - id: clicked
    wait_for:
      event: Email Clicked
      where: {link: {contains: pricing}}
      timeout: 2d
      on_event:
        - {id: notify-crm, send: {channel: webhook, url: "SINK/hook", body: {kind: clicked}}}
      on_timeout:
        - {id: gave-up, exit: no click}
  - id: segment
    branch:
      - if: {trait: industry, eq: Retail}
        then: [{id: retail, exit: wrong industry}]
      - else:
          - id: alert-team
            send:
              channel: slack
              text: "{{ journey }}: pricing clicked"
              webhook_url: "SINK/slack"
  - id: follow-up-task
    send: {channel: crm_task, title: Call them, owner: rep-ana, due_in: 1d}
  - id: other-journey
    enroll: demo-follow-up
  - id: to-sales
    handoff: clicked pricing
"""


async def test_every_step_type_runs_in_order_through_the_real_channels(
    journey_env: WorkflowEnvironment, store: Store, sinks: tuple[Settings, list[Any], HttpSink]
) -> None:
    settings, inbox, web = sinks
    definition = journey(EVERY_STEP.replace("SINK", web.url))
    who = contact(store, "u-every")
    async with journey_worker(journey_env, store, settings):
        handle = await start(journey_env, settings, definition, who, facts=None)
        await progress_when(
            handle, lambda p: p.current_step == "pause-a-day" and p.status == "waiting"
        )
        await skip(journey_env, handle, ten_am() + DAY)
        monday = next_local_time(ten_am() + DAY, "UTC", time(9, 30), ["mon"])
        await skip(journey_env, handle, monday)
        await progress_when(handle, lambda p: p.current_step == "clicked" and p.status == "waiting")
        now = await journey_env.get_current_time(handle)
        blog = EventRecord(name="Email Clicked", at=now, properties={"link": "/blog"})
        await tell(handle, who, blog, at=now, traits={"industry": "Software"})
        pricing = EventRecord(name="Email Clicked", at=now, properties={"link": "/pricing"})
        await tell(handle, who, pricing, at=now, traits={"industry": "Software"})
        result = await handle.result()
        state = await progress(handle)
        await save_history(handle, "journey_every_step")
        description = await handle.describe()
    variant = assign_variant(who, definition.name, "subject-test", definition.steps[5].split)  # type: ignore[union-attr]
    sms = f"text-{variant.lower()}"
    assert outcomes(state) == [
        ("never", "watching"),
        ("hello", "sent"),
        ("tag", "requested"),
        ("join", "requested"),
        ("leave", "requested"),
        ("subject-test", f"variant {variant}"),
        (sms, "sent"),
        ("pause-a-day", "waited"),
        ("next-monday", "waited"),
        ("clicked", "event"),
        ("notify-crm", "sent"),
        ("segment", "else"),
        ("alert-team", "sent"),
        ("follow-up-task", "sent"),
        ("other-journey", "requested"),
        ("to-sales", "requested"),
        ("end", "completed"),
    ]
    assert isinstance(result, JourneyResult) and result.outcome == "completed"
    waited_until = next(s for s in state.steps if s.step == "next-monday").at
    assert (waited_until.weekday(), waited_until.hour, waited_until.minute) == (0, 9, 30)
    (mail,) = inbox
    assert mail["Subject"] == "Hello Ada" and mail["List-Unsubscribe"]
    hook, slack = web.received
    assert hook.path == "/hook" and hook.json()["kind"] == "clicked"
    assert slack.json() == {"text": f"{definition.name}: pricing clicked"}
    assert [t.title for t in Ledger(store).tasks("rep-ana")] == ["Call them"]
    assert [(r.kind, r.name) for r in state.requests] == [
        ("set_trait", "nurture_status"),
        ("list_add", "Newsletter"),
        ("list_remove", "Re-nurture"),
        ("enroll", "demo-follow-up"),
        ("handoff", None),
        ("finished", None),
    ]
    assert JourneyLog(store).variant_stats(definition.name)[0].variant == variant
    attributes = description.typed_search_attributes
    assert attributes.get(JOURNEY) == definition.name and attributes.get(JOURNEY_VERSION) == "1"


SPLIT_WITH_GOAL = """
steps:
  - id: demo
    goal: {event: Demo Requested}
  - id: offer
    split:
      - variant: short
        steps: [{id: offer-short, send: {channel: email, subject: "Demo?", body: "Book one."}}]
      - variant: long
        steps: [{id: offer-long, send: {channel: email, subject: "A demo, tailored", body: "…"}}]
  - id: wait-a-week
    wait: 7d
  - id: reminder
    send: {channel: email, subject: "Still interested?", body: "…"}
"""


async def test_goal_met_while_waiting_ends_the_journey_as_a_conversion(
    journey_env: WorkflowEnvironment, store: Store, sinks: tuple[Settings, list[Any], HttpSink]
) -> None:
    settings, inbox, _ = sinks
    definition = journey(SPLIT_WITH_GOAL)
    who = contact(store, "u-goal")
    async with journey_worker(journey_env, store, settings):
        handle = await start(journey_env, settings, definition, who)
        await progress_when(handle, lambda p: p.current_step == "wait-a-week")
        await skip(journey_env, handle, ten_am() + 2 * DAY)
        await tell(handle, who, "Demo Requested", at=ten_am() + 2 * DAY)
        result: JourneyResult = await handle.result()
        await save_history(handle, "journey_goal_conversion")
    assert result.outcome == "goal"
    assert [m["Subject"] for m in inbox] in (["Demo?"], ["A demo, tailored"])
    (stats,) = JourneyLog(store).variant_stats(definition.name)
    assert (stats.assigned, stats.sent, stats.converted) == (1, 1, 1)
    (conversion,) = JourneyLog(store).conversions(definition.name)
    assert conversion.goal_step == "demo"


async def test_no_event_before_the_timeout_takes_the_timeout_branch_and_exits(
    journey_env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    definition = journey("""
steps:
  - id: reply
    wait_for:
      event: Email Replied
      timeout: 2d
      on_event: [{id: thanks, set: {trait: replied, value: true}}]
      on_timeout: [{id: no-reply, exit: no reply within two days}]
  - id: never-reached
    set: {trait: reached, value: true}
""")
    who = contact(store, "u-timeout")
    async with journey_worker(journey_env, store, settings):
        handle = await start(journey_env, settings, definition, who)
        await progress_when(handle, lambda p: p.status == "waiting")
        await skip(journey_env, handle, ten_am() + 2 * DAY)
        result: JourneyResult = await handle.result()
        state = await progress(handle)
    assert result.outcome == "exited"
    assert outcomes(state) == [("reply", "timeout"), ("no-reply", "exit"), ("no-reply", "exited")]


async def test_exit_criteria_met_mid_journey_stop_the_next_send(
    journey_env: WorkflowEnvironment, store: Store, sinks: tuple[Settings, list[Any], HttpSink]
) -> None:
    settings, inbox, _ = sinks
    definition = journey("""
exit: {stage: {at_least: SQL}}
steps:
  - {id: first, send: {channel: email, subject: "One", body: "…"}}
  - {id: later, wait: 3d}
  - {id: second, send: {channel: email, subject: "Two", body: "…"}}
""")
    who = contact(store, "u-exit")
    async with journey_worker(journey_env, store, settings):
        handle = await start(journey_env, settings, definition, who)
        await progress_when(handle, took("first"))
        await tell(handle, who, at=ten_am() + timedelta(hours=1), stage="SQL")
        result: JourneyResult = await handle.result()
    assert result.outcome == "exited"
    assert [m["Subject"] for m in inbox] == ["One"]


async def test_paused_journey_holds_until_resumed_and_a_stop_ends_it(
    journey_env: WorkflowEnvironment, store: Store, sinks: tuple[Settings, list[Any], HttpSink]
) -> None:
    settings, inbox, _ = sinks
    definition = journey("""
steps:
  - {id: wait-one, wait: 1d}
  - {id: first, send: {channel: email, subject: "One", body: "…", transactional: true}}
  - {id: wait-two, wait: 1d}
  - {id: second, send: {channel: email, subject: "Two", body: "…", transactional: true}}
""")
    who = contact(store, "u-pause")
    async with journey_worker(journey_env, store, settings):
        handle = await start(journey_env, settings, definition, who)
        await progress_when(handle, lambda p: p.status == "waiting")
        pause = JourneyStop(reason="pre-empted by trial-onboarding", pause=True)
        await handle.signal(JourneyWorkflow.stop, pause)
        await skip(journey_env, handle, ten_am() + 2 * DAY)
        paused = await progress_when(handle, lambda p: p.status == "paused")
        assert paused.current_step == "first" and inbox == []
        await handle.signal(JourneyWorkflow.resume)
        await progress_when(handle, took("first"))
        await handle.signal(JourneyWorkflow.stop, JourneyStop(reason="exit criteria"))
        result: JourneyResult = await handle.result()
    assert result.outcome == "stopped"
    assert [m["Subject"] for m in inbox] == ["One"]


STALE = """
steps:
  - {id: wait-1, wait: 1d}
  - {id: m1, send: {channel: email, subject: "Day 1", body: "…"}}
  - {id: wait-2, wait: 1d}
  - {id: m2, send: {channel: email, subject: "Day 2", body: "…"}}
  - {id: wait-3, wait: 1d}
  - {id: m3, send: {channel: email, subject: "Day 3", body: "…"}}
  - {id: wait-8, wait: 5d}
  - {id: m8, send: {channel: email, subject: "Day 8", body: "…"}}
"""


async def _paused_past(
    env: WorkflowEnvironment, settings: Settings, store: Store, text: str, user: str, days: int
) -> Any:
    """Start ``text``, pause it in its first wait, move its clock ``days`` on, resume it."""
    who = contact(store, user)
    handle = await start(env, settings, journey(text), who)
    await progress_when(handle, lambda p: p.status == "waiting")
    await handle.signal(JourneyWorkflow.stop, JourneyStop(reason="pre-empted", pause=True))
    await read_signals(handle)  # paused before the clock moves (a race seen under load)
    await skip(env, handle, ten_am() + days * DAY)
    await progress_when(handle, lambda p: p.status == "paused")
    await handle.signal(JourneyWorkflow.resume)
    return handle


async def test_a_paused_journey_skips_its_stale_marketing_step_instead_of_a_burst(
    journey_env: WorkflowEnvironment, store: Store, sinks: tuple[Settings, list[Any], HttpSink]
) -> None:
    settings, inbox, _ = sinks
    async with journey_worker(journey_env, store, settings):
        handle = await _paused_past(journey_env, settings, store, STALE, "u-stale", 5)
        await progress_when(handle, lambda p: p.current_step == "wait-2" and p.status == "waiting")
        assert [m["Subject"] for m in inbox] == [], "the Day-1 email is four days late: skipped"
        await skip(journey_env, handle, ten_am() + 6 * DAY + timedelta(minutes=1))
        state = await progress_when(handle, took("m2"))
    skipped = next(s for s in state.steps if s.step == "m1")
    assert skipped.outcome == "skipped" and "stale" in skipped.detail and "(skip)" in skipped.detail
    assert [m["Subject"] for m in inbox] == ["Day 2"], "the rest keeps its intervals from now"


async def test_skip_to_next_leaves_out_what_is_past_and_keeps_the_original_schedule(
    journey_env: WorkflowEnvironment, store: Store, sinks: tuple[Settings, list[Any], HttpSink]
) -> None:
    settings, inbox, _ = sinks
    text = "late: {marketing: skip_to_next}\n" + STALE
    async with journey_worker(journey_env, store, settings):
        handle = await _paused_past(journey_env, settings, store, text, "u-catch-up", 5)
        await progress_when(handle, lambda p: p.current_step == "wait-8" and p.status == "waiting")
        assert inbox == [], "Days 1-3 passed while paused: none goes out"
        await skip(journey_env, handle, ten_am() + 8 * DAY + timedelta(minutes=1))
        state = await progress_when(handle, took("m8"))
        await save_history(handle, "journey_lifecycle_stale_steps")
    outcome = {s.step: s.outcome for s in state.steps}
    assert [outcome[step] for step in ("m1", "wait-2", "m2", "wait-3", "m3")] == ["skipped"] * 5
    m8 = next(s for s in state.steps if s.step == "m8")
    assert abs(m8.at - (ten_am() + 8 * DAY)) < timedelta(minutes=1), "Day 8 stays on Day 8"
    assert [m["Subject"] for m in inbox] == ["Day 8"]


async def test_a_goal_met_by_the_update_that_comes_with_a_stop_counts_as_a_conversion(
    journey_env: WorkflowEnvironment, store: Store, sinks: tuple[Settings, list[Any], HttpSink]
) -> None:
    settings, _, _ = sinks
    definition = journey("""
steps:
  - {id: converted, goal: {event: Subscription Started}}
  - {id: wait, wait: 3d}
  - {id: nudge, send: {channel: email, subject: "Still there?", body: "…"}}
""")
    who = contact(store, "u-goal-stop")
    async with journey_worker(journey_env, store, settings):
        handle = await start(journey_env, settings, definition, who)
        await progress_when(handle, lambda p: p.status == "waiting")
    # No worker: the contact's update and the rules' stop reach the journey together.
    await tell(handle, who, "Subscription Started", at=ten_am())
    await handle.signal(JourneyWorkflow.stop, JourneyStop(reason="customers leave acquisition"))
    async with journey_worker(journey_env, store, settings):
        result: JourneyResult = await handle.result()
        await save_history(handle, "journey_lifecycle_goal_before_stop")
    assert result.outcome == "goal"
    assert [c.goal_step for c in JourneyLog(store).conversions(definition.name)] == ["converted"]


async def test_over_the_weekly_cap_a_send_is_deferred_then_sent_with_a_new_key(
    journey_env: WorkflowEnvironment, store: Store, sinks: tuple[Settings, list[Any], HttpSink]
) -> None:
    settings, inbox, _ = sinks
    who = contact(store, "u-cap")
    ledger = Ledger(store)
    for n in range(3):  # three marketing emails from other journeys, just now
        ledger.claim(f"{who}/other/{n}", who, "email", True, "other journey")
        ledger.finish(f"{who}/other/{n}", "sent")
    definition = journey("""
steps:
  - {id: capped, send: {channel: email, subject: "Fourth this week", body: "…"}}
""")
    async with journey_worker(journey_env, store, settings):
        handle = await start(journey_env, settings, definition, who, enrollment_id="cap1")
        deferred = await progress_when(handle, took("capped"))
        assert deferred.steps[0].outcome == "deferred"
        assert "frequency cap" in deferred.steps[0].detail
        await journey_env.fast_forward(handle, None)
        state = await progress(handle)
    assert [s.outcome for s in state.steps if s.step == "capped"] == ["deferred", "sent"]
    assert [m["Subject"] for m in inbox] == ["Fourth this week"]
    keys = [row.key for row in ledger.sends(who)]
    assert f"{who}/cap1/capped~2" in keys


async def test_a_hard_bounce_suppresses_marketing_but_transactional_mail_still_goes(
    journey_env: WorkflowEnvironment, store: Store, sinks: tuple[Settings, list[Any], HttpSink]
) -> None:
    settings, inbox, _ = sinks
    who = contact(store, "u-bounce")
    store.accept([track("u-bounce", "Email Bounced", properties={"type": "hard"})])
    definition = journey("""
steps:
  - {id: newsletter, send: {channel: email, subject: "Newsletter", body: "…"}}
  - {id: receipt, send: {channel: email, subject: "Receipt", body: "…", transactional: true}}
""")
    async with journey_worker(journey_env, store, settings):
        handle = await start(journey_env, settings, definition, who)
        await handle.result()
        state = await progress(handle)
    newsletter = state.steps[0]
    assert (newsletter.outcome, "hard-bounced" in newsletter.detail) == ("suppressed", True)
    assert [m["Subject"] for m in inbox] == ["Receipt"]


PINNED = """
name: pinned-nurture
trigger: {event: Test Started}
category: nurture
steps:
  - {id: first, send: {channel: email, subject: "v1 first", body: "…"}}
  - {id: gap, wait: 2d}
  - {id: second, send: {channel: email, subject: "v1 second", body: "…"}}
"""


def at_gap(state: JourneyProgress) -> bool:
    """The pinned journey waits on its two-day timer."""
    return state.current_step == "gap" and state.status == "waiting"


async def test_a_running_v1_enrollment_keeps_v1_steps_after_v2_is_deployed(
    journey_env: WorkflowEnvironment, store: Store, sinks: tuple[Settings, list[Any], HttpSink]
) -> None:
    settings, inbox, _ = sinks
    registry = Registry(store)
    v1 = yaml.safe_load(PINNED)
    registry.deploy(JOURNEY_DEFINITION.name, "pinned-nurture", deployable_body(v1), author="test")
    (old,) = Definitions(registry, settings.config_dir).journeys().values()
    early = contact(store, "u-v1", email="early@acme.io")
    late = contact(store, "u-v2", email="late@acme.io")
    async with journey_worker(journey_env, store, settings):
        running = await start(journey_env, settings, old, early)
        await progress_when(running, at_gap)
        v2_text = PINNED.replace("v1 second", "v2 second").replace("v1 first", "v2 first")
        v2 = yaml.safe_load(v2_text)
        assert registry.deploy(
            JOURNEY_DEFINITION.name, "pinned-nurture", deployable_body(v2), author="t"
        )
        (new,) = Definitions(registry, settings.config_dir).journeys().values()
        fresh = await start(journey_env, settings, new, late)
        # Skip only once each journey's two-day timer exists: a clock moved while the first
        # send is still running makes the timer count from the new time, and it never fires.
        await progress_when(fresh, at_gap)
        await skip(journey_env, running, ten_am() + 2 * DAY)
        await skip(journey_env, fresh, ten_am() + 2 * DAY)
        await running.result()
        await fresh.result()
        await save_history(running, "journey_pinned_v1")
        versions = [
            (await h.describe()).typed_search_attributes.get(JOURNEY_VERSION)
            for h in (running, fresh)
        ]
    received: dict[str, list[str]] = {}
    for message in inbox:
        received.setdefault(str(message["To"]), []).append(str(message["Subject"]))
    assert (old.version, new.version, versions) == (1, 2, ["1", "2"])
    assert received == {
        "early@acme.io": ["v1 first", "v1 second"],
        "late@acme.io": ["v2 first", "v2 second"],
    }


async def test_the_parent_gets_each_request_and_finished_last(
    journey_env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    definition = journey("""
steps:
  - {id: tag, set: {trait: plan, value: trial}}
  - {id: newsletter, set: {list_add: Monthly Newsletter}}
  - {id: onboarding, enroll: trial-onboarding}
  - {id: quiet, recycle: disengaged}
  - {id: sales, handoff: {reason: trial ending}}
""")
    who = contact(store, "u-parent")
    data = JourneyInput(
        contact_id=who,
        enrollment_id="parent-e1",
        definition=definition,
        facts=facts(who),
        consent=Consent(),
    )
    async with journey_worker(journey_env, store, settings, JourneyTestParent):
        parent = await journey_env.client.start_workflow(
            JourneyTestParent.run, data, id=f"contact-{who}", task_queue=settings.task_queue
        )
        result = await parent.result()
        requests = await parent.query(JourneyTestParent.received)
    assert result.outcome == "completed"
    assert [(r.kind, r.name, r.value) for r in requests] == [
        ("set_trait", "plan", "trial"),
        ("list_add", "Monthly Newsletter", None),
        ("enroll", "trial-onboarding", None),
        ("recycle", "disengaged", None),
        ("handoff", None, "trial ending"),
        ("finished", None, None),
    ]
    assert all(isinstance(r, JourneyRequest) and r.enrollment_id == "parent-e1" for r in requests)
    assert requests[-1].outcome == "completed"


async def test_continue_as_new_keeps_the_position_and_sends_once(
    journey_env: WorkflowEnvironment, store: Store, sinks: tuple[Settings, list[Any], HttpSink]
) -> None:
    settings, inbox, _ = sinks
    definition = journey("""
steps:
  - {id: hello, send: {channel: email, subject: "Hello", body: "…"}}
  - {id: long-wait, wait: 5d}
  - {id: bye, send: {channel: email, subject: "Bye", body: "…"}}
""")
    who = contact(store, "u-can")
    async with journey_worker(journey_env, store, settings):
        handle = await start(journey_env, settings, definition, who, history_limit=40)
        first_run = (await handle.describe()).run_id
        await progress_when(handle, lambda p: p.current_step == "long-wait")
        for n in range(30):
            await tell(handle, who, f"Page Viewed {n}", at=ten_am() + timedelta(minutes=n))
        moved = await eventually(handle.describe, lambda d: d.run_id != first_run)
        assert moved.run_id != first_run
        await skip(journey_env, handle, ten_am() + 5 * DAY)
        await journey_env.client.get_workflow_handle(handle.id).result()
        state = await progress(journey_env.client.get_workflow_handle(handle.id))
        await save_history(
            journey_env.client.get_workflow_handle(handle.id, run_id=first_run),
            "journey_before_continue_as_new",
        )
    assert state.runs >= 2
    assert [m["Subject"] for m in inbox] == ["Hello", "Bye"]
    waited = next(s for s in state.steps if s.step == "long-wait")
    assert abs(waited.at - state.steps[0].at - 5 * DAY) < timedelta(seconds=1)
