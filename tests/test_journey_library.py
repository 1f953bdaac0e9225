"""Every journey of the library, simulated end to end in time-skipped weeks.

Each case scripts what a contact does and checks which messages go out on which day, and how
the journey ends. The simulation runs the real workflow, the real send-time rules check and
the real send path (recorded, not delivered).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from definitions import JOURNEY, POLICIES, load_journey_library, read_file
from definitions.checks import check_definitions
from definitions.service import shipped_set
from rules import compile_rules
from starter.simulate import (
    SimulationResult,
    Timeline,
    load_timeline,
    simulate,
    simulation_environment,
)
from tests.conftest import REPO


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def journey_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping dev server whose timers fire at once (see tests/journey_support.py)."""
    async with simulation_environment() as environment:
        yield environment


LIBRARY = REPO / "config" / "journeys"
CONFIG = REPO / "config"


async def run(env: WorkflowEnvironment, name: str, timeline: dict[str, Any]) -> SimulationResult:
    definition = read_file(JOURNEY, LIBRARY / f"{name}.yaml")
    script = Timeline.model_validate(timeline)
    return await simulate(definition, script, config_dir=CONFIG, env=env)


def sent(result: SimulationResult) -> list[tuple[float, str]]:
    """(day, step) of every message that went out."""
    return [(round(s.day, 2), s.step) for s in result.steps if s.outcome == "sent"]


def requested(result: SimulationResult) -> list[str]:
    return [s.step for s in result.steps if s.outcome == "requested"]


def test_the_library_validates_and_compiles_with_the_policies() -> None:
    journeys = load_journey_library(LIBRARY)
    assert len(journeys) >= 6
    engine = compile_rules(
        [j.enrollment for j in journeys], read_file(POLICIES, CONFIG / "policies.yaml")
    )
    assert check_definitions(shipped_set(CONFIG, LIBRARY)) == [], "references resolve"
    assert engine.version
    priorities = {j.name: j.priority for j in journeys}
    assert priorities["whitepaper-nurture"] is not None
    assert {j.exclusivity_group for j in journeys if j.category in ("trial", "nurture")} == {
        "lifecycle"
    }


async def test_whitepaper_nurture_sends_on_day_0_2_5_10_20_to_a_quiet_contact(
    journey_env: WorkflowEnvironment,
) -> None:
    result = await run(journey_env, "whitepaper-nurture", {})
    assert sent(result) == [
        (0, "d0-confirmation"),
        (2, "d2-blog"),
        (3, "d3-resend"),
        (5, "d5-case-study"),
        (10, "d10-overview"),
        (20, "d20-last-note"),
    ]
    assert result.outcome == "completed" and len(result.emails) == 6
    assert result.emails[2] != result.emails[1], "the Day-3 resend has a new subject"
    assert requested(result)[-2:] == ["d20-disengaged", "d20-recycle"]


async def test_whitepaper_nurture_follows_an_engaged_contact_to_sales(
    journey_env: WorkflowEnvironment,
) -> None:
    timeline = load_timeline(LIBRARY / "timelines" / "whitepaper-engaged.yaml")
    result = await run(journey_env, "whitepaper-nurture", timeline.model_dump())
    assert sent(result) == [
        (0, "d0-confirmation"),
        (2, "d2-deep-dive"),
        (5, "d5-industry-case-study"),
        (5, "d5-sdr-heads-up"),
        (10, "d10-demo-invite"),
        (10, "d10-sdr-alert"),
        (10, "d10-sdr-slack"),
        (20, "d20-qualified-note"),
    ]
    assert requested(result)[-1] == "d20-handoff"
    assert result.emails[2] == "How a Fintech team did it"
    assert [s.outcome for s in result.steps if s.step == "d3-opened"] == ["no match"]


async def test_a_booked_meeting_converts_the_whitepaper_nurture(
    journey_env: WorkflowEnvironment,
) -> None:
    result = await run(
        journey_env, "whitepaper-nurture", {"events": [{"at": "4d", "event": "Meeting Booked"}]}
    )
    assert result.outcome == "goal"
    assert sent(result) == [(0, "d0-confirmation"), (2, "d2-blog"), (3, "d3-resend")]


async def test_demand_state_nurture_branches_on_the_buying_state(
    journey_env: WorkflowEnvironment,
) -> None:
    timeline = {
        "contact": {"demand_state": "technical-validating", "lists": ["Engaged Last 30 Days"]},
        "events": [
            {"at": "10d", "event": "Pricing Page Viewed"},
            {"at": "12d", "event": "Pricing Page Viewed"},
        ],
    }
    result = await run(journey_env, "demand-state-nurture", timeline)
    days = [day for day, _ in sent(result)]
    steps = [step for _, step in sent(result)]
    assert days == [0, 4, 8, 14, 21]
    assert steps[0] == "t1-integration-docs" and steps[2] == "t3-se-meeting"
    assert steps[1] in ("t2-case-study-a", "t2-case-study-b")
    assert steps[-1] == "t5-talk-to-sales" and requested(result) == ["t5-handoff"]


async def test_demand_state_nurture_releases_a_contact_that_becomes_an_mql(
    journey_env: WorkflowEnvironment,
) -> None:
    timeline = {"events": [{"at": "6d", "stage": "MQL"}]}
    result = await run(journey_env, "demand-state-nurture", timeline)
    assert result.outcome == "exited"
    assert sent(result)[0] == (0, "t1-problem")
    assert len(sent(result)) == 2


async def test_trial_onboarding_follows_product_usage_through_the_trial(
    journey_env: WorkflowEnvironment,
) -> None:
    usage = [{"at": f"{20 + n}h", "event": "Feature Used"} for n in range(20)]
    timeline = {"events": [{"at": "5h", "event": "Setup Completed"}, *usage]}
    result = await run(journey_env, "trial-onboarding", timeline)
    hour = 1 / 24
    assert sent(result) == [
        (round(hour, 2), "h1-welcome"),
        (round(hour, 2), "h1-community"),
        (1, "d1-advanced"),
        (3, "d3-power-user"),
        (7, "d7-midpoint"),
        (12, "d12-pricing"),
        (14, "d14-upgrade"),
        (16, "churned-survey"),
    ]
    assert requested(result) == ["d14-handoff", "churned-reengage"]


async def test_an_extended_trial_gets_an_in_app_checklist_support_and_a_sales_touch(
    journey_env: WorkflowEnvironment,
) -> None:
    timeline = {"events": [{"at": "15d", "event": "Trial Extended"}]}
    result = await run(journey_env, "trial-onboarding", timeline)
    outcomes = {s.step: s.outcome for s in result.steps}
    assert outcomes["trial-end"] == "event" and outcomes["d14-extension"] == "sent"
    assert outcomes["extended-in-app"] == "skipped", "a simulation has no product endpoint"
    assert outcomes["extended-support"] == "sent" and "churned-survey" not in outcomes
    assert requested(result) == ["extended-sales-touch"]


async def test_trial_onboarding_ends_when_the_trial_converts(
    journey_env: WorkflowEnvironment,
) -> None:
    timeline = {"events": [{"at": "4d", "event": "Subscription Started"}]}
    result = await run(journey_env, "trial-onboarding", timeline)
    assert result.outcome == "goal"
    assert [step for _, step in sent(result)][-1] == "d3-reengage"


async def test_webinar_reminds_before_and_follows_up_attendees_after(
    journey_env: WorkflowEnvironment,
) -> None:
    timeline = load_timeline(LIBRARY / "timelines" / "webinar-attendee.yaml")
    result = await run(journey_env, "webinar", timeline.model_dump())
    after = round(2 / 24, 2)
    assert sent(result) == [
        (0, "confirmation"),
        (3, "agenda"),
        (7, "logistics"),
        (9, "final-reminder"),
        (round(10 - 1 / 24, 2), "starting-soon"),
        (round(10 + 2 / 24, 2), "thanks-recording"),
        (11, "high-sales-follow-up"),
        (13, "related-read"),
        (17, "demo-invite"),
        (24, "survey"),
    ]
    assert requested(result) == ["attendee-list", "high-handoff"]
    follow_up = next(s for s in result.steps if s.step == "high-sales-follow-up")
    assert follow_up.day - (10 + after) < 1, "sales follows up within 24 hours"
    assert any("sms.example" in url for url in result.http_posts)


async def test_webinar_day_after_split_by_engagement(journey_env: WorkflowEnvironment) -> None:
    moderate = {
        "trigger_properties": {"starts_at": "start+10d"},
        "events": [{"at": "10d", "event": "Webinar Attended"}],
    }
    result = await run(journey_env, "webinar", moderate)
    steps = [step for _, step in sent(result)]
    assert "moderate-content" in steps and "high-sales-follow-up" not in steps
    low = await run(journey_env, "webinar", {"trigger_properties": {"starts_at": "start+10d"}})
    assert "low-newsletter" in requested(low)
    assert "next-webinar" in [step for _, step in sent(low)]


async def test_webinar_no_show_gets_the_recording_and_a_late_registration_skips_reminders(
    journey_env: WorkflowEnvironment,
) -> None:
    result = await run(journey_env, "webinar", {"trigger_properties": {"starts_at": "start+2d"}})
    steps = [step for _, step in sent(result)]
    assert steps[:3] == ["confirmation", "final-reminder", "starting-soon"]
    assert "sorry-we-missed-you" in steps and "thanks-recording" not in steps
    skipped = [s.step for s in result.steps if s.outcome == "skipped"]
    assert skipped == ["wait-7d-before", "wait-3d-before"]


async def test_renurture_after_a_no_budget_loss_starts_when_the_recycle_enrolls_it(
    journey_env: WorkflowEnvironment,
) -> None:
    timeline = {"events": [{"at": "8d", "event": "Email Clicked"}]}
    result = await run(journey_env, "renurture-closed-lost", timeline)
    assert sent(result) == [(0, "r1-whats-new"), (7, "r2-roi"), (14, "r3-rep-task")]
    assert requested(result) == ["r3-handoff"]


async def test_renurture_sends_three_touches_then_the_newsletter_and_leaves_the_list(
    journey_env: WorkflowEnvironment,
) -> None:
    result = await run(journey_env, "renurture", {"contact": {"lists": ["Re-nurture"]}})
    assert sent(result) == [(0, "n1-checking-in"), (7, "n2-case-study")]
    assert requested(result) == ["n3-newsletter", "n4-off-the-list"]
    engaged = await run(
        journey_env, "renurture", {"events": [{"at": "9d", "event": "Email Clicked"}]}
    )
    assert requested(engaged) == ["n3-back-to-sales", "n4-off-the-list"]


async def test_customer_onboarding_hands_the_customer_to_success(
    journey_env: WorkflowEnvironment,
) -> None:
    timeline = {"contact": {"stage": "Customer", "scores": {"engagement": 70}}}
    result = await run(journey_env, "customer-onboarding", timeline)
    assert sent(result) == [
        (0, "csm-kickoff"),
        (0, "welcome"),
        (0, "cs-channel"),
        (3, "setup-guide"),
        (7, "setup-help-task"),
        (30, "health-check"),
        (30, "review-request"),
    ]


async def test_demo_follow_up_reminds_when_no_meeting_is_booked(
    journey_env: WorkflowEnvironment,
) -> None:
    result = await run(journey_env, "demo-follow-up", {})
    assert sent(result) == [(0, "confirmation"), (2, "booking-reminder"), (2, "rep-nudge")]
    assert requested(result) == ["to-sales"]
    booked = await run(
        journey_env, "demo-follow-up", {"events": [{"at": "1d", "event": "Meeting Booked"}]}
    )
    assert booked.outcome == "goal" and len(sent(booked)) == 1


@pytest.mark.parametrize("path", sorted(LIBRARY.glob("*.yaml")), ids=lambda p: Path(p).stem)
def test_every_library_file_names_its_journey_like_the_file(path: Path) -> None:
    assert read_file(JOURNEY, path).name == path.stem
