"""Decisions, journey requests and handoff updates applied to a contact, without Temporal.

The rules activity and the contact workflow apply decisions with one function; the property
below checks that the contact's state after ``decide_enrollments`` is exactly what the rules
see next (``apply_decision``), for any mix of exits, pauses and enrollments, and that only
journeys whose state changes get a signal.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from contacts.contract import ContactConfig, ContactState, Enrollment, HandoffRef
from contacts.enrollments import (
    StopJourney,
    active_enrollments,
    apply_decision,
    decide_enrollments,
    past_enrollments,
)
from contacts.requests import ENROLL_REQUEST_EVENT, take_requests
from handoff.contract import HandoffUpdate
from journeys.contract import JourneyRequest
from journeys.definition import JourneyDefinition, parse_journey
from models.decisions import Action, ActionKind, Decision, EventOccurred

NOW = datetime(2026, 5, 5, 15, 0, tzinfo=UTC)
NAMES = ["Nurture", "Trial Onboarding", "Demo Follow-up", "Webinar"]


def _definition(name: str, version: int = 3) -> JourneyDefinition:
    body = {
        "name": name,
        "version": version,
        "trigger": {"event": "Test Started"},
        "category": "nurture",
        "steps": [{"id": "s1", "wait": "1d"}],
    }
    return parse_journey(body, "test")


def _decision(*actions: tuple[ActionKind, str]) -> Decision:
    return Decision(
        contact_id="c-1",
        decided_at=NOW,
        occurrence_kind="event",
        occurrence="event Test Started",
        actions=[
            Action(kind=kind, journey=journey, version=1, priority=10, reason=f"{kind} {journey}")
            for kind, journey in actions
        ],
        ruleset_version="v-test",
    )


def _state(*running: tuple[str, bool]) -> ContactState:
    state = ContactState(contact_id="c-1", created_at=NOW - timedelta(days=30))
    for number, (journey, paused) in enumerate(running, start=1):
        state.enrollments.append(
            Enrollment(
                enrollment_id=f"c-1-{number}",
                journey=journey,
                version=1,
                enrolled_at=NOW - timedelta(days=number),
                paused=paused,
                workflow_id=f"journey-c-1-{number}",
            )
        )
    state.enrollment_counter = len(running)
    return state


def test_an_exit_stops_the_child_and_a_pause_keeps_the_enrollment() -> None:
    state = _state(("Nurture", False), ("Webinar", False))
    decision = _decision(("exit", "Nurture"), ("pause", "Webinar"))
    commands = decide_enrollments(state, decision, {}, NOW)
    assert commands.stop == [
        StopJourney("journey-c-1-1", "exit Nurture", pause=False),
        StopJourney("journey-c-1-2", "pause Webinar", pause=True),
    ]
    assert [(e.journey, e.paused) for e in state.enrollments] == [("Webinar", True)]


def test_an_exit_wins_over_a_pause_and_a_paused_journey_is_not_paused_again() -> None:
    state = _state(("Nurture", False), ("Webinar", True))
    decision = _decision(("pause", "Nurture"), ("exit", "Nurture"), ("pause", "Webinar"))
    commands = decide_enrollments(state, decision, {}, NOW)
    assert [(s.workflow_id, s.pause) for s in commands.stop] == [("journey-c-1-1", False)]
    assert [(e.journey, e.paused) for e in state.enrollments] == [("Webinar", True)]


def test_an_enrollment_pins_the_definition_and_starts_one_child() -> None:
    state = _state(("Nurture", False))
    definition = _definition("Trial Onboarding", version=3)
    commands = decide_enrollments(
        state, _decision(("enroll", "Trial Onboarding")), {"Trial Onboarding": definition}, NOW
    )
    (start,) = commands.start
    assert start.definition is definition
    assert start.enrollment.enrollment_id == "c-1-2"
    assert start.enrollment.workflow_id == "journey-c-1-trial-onboarding-2"
    assert (start.enrollment.version, start.enrollment.enrolled_at) == (3, NOW)
    assert state.enrollments[-1] == start.enrollment
    assert [(p.journey, p.enrolled_at) for p in state.past_enrollments] == [
        ("Trial Onboarding", NOW)
    ]


def test_a_journey_without_a_valid_definition_is_enrolled_but_starts_nothing() -> None:
    state = _state()
    commands = decide_enrollments(state, _decision(("enroll", "Webinar")), {}, NOW)
    assert commands.start == []
    (enrollment,) = state.enrollments
    assert (enrollment.journey, enrollment.version, enrollment.workflow_id) == ("Webinar", 1, None)


RUNNING = st.dictionaries(st.sampled_from(NAMES), st.booleans(), max_size=len(NAMES))
ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(["exit", "pause", "resume", "enroll", "suppress"]), st.sampled_from(NAMES)
    ),
    max_size=6,
)


@given(running=RUNNING, actions=ACTIONS, startable=st.sets(st.sampled_from(NAMES)))
def test_the_contact_keeps_what_the_rules_see_next(
    running: dict[str, bool], actions: list[tuple[ActionKind, str]], startable: set[str]
) -> None:
    state = _state(*running.items())
    decision = _decision(*actions)
    definitions = {name: _definition(name) for name in startable}
    versions = {name: d.version for name, d in definitions.items()}
    seen = apply_decision(
        decision, active_enrollments(state), past_enrollments(state), versions, NOW
    )
    before = {e.workflow_id: e.paused for e in state.enrollments}
    commands = decide_enrollments(state, decision, definitions, NOW)
    assert active_enrollments(state) == seen.active
    assert past_enrollments(state) == seen.past
    for stop in commands.stop:  # a signal only for a child whose state changes
        assert stop.workflow_id in before
        assert stop.pause is False or before[stop.workflow_id] is False
    for resumed in commands.resume:  # only a paused child resumes, and it runs afterwards
        assert before[resumed] is True
        assert any(e.workflow_id == resumed and not e.paused for e in state.enrollments)
    assert [s.enrollment.journey for s in commands.start] == [
        e.journey for e in seen.enrolls if e.journey in startable
    ]
    ids = [e.enrollment_id for e in state.enrollments]
    assert len(ids) == len(set(ids)), "enrollment ids are never reused"


def test_requests_change_traits_lists_and_ask_for_enrollments_and_the_handoff() -> None:
    state = _state(("Nurture", False), ("Webinar", False))
    requests = [
        JourneyRequest(enrollment_id="c-1-1", kind="set_trait", name="plan", value="trial"),
        JourneyRequest(enrollment_id="c-1-1", kind="list_add", name="Newsletter"),
        JourneyRequest(enrollment_id="c-1-1", kind="enroll", name="Demo Follow-up"),
        JourneyRequest(enrollment_id="c-1-1", kind="handoff", value="trial ending"),
        JourneyRequest(enrollment_id="c-1-1", kind="finished", outcome="completed"),
    ]
    found = take_requests(state, requests, [], ContactConfig(), NOW)
    assert state.traits["plan"] == "trial"
    assert state.static_lists == ["Newsletter"]
    assert found.occurrences == [
        EventOccurred(name=ENROLL_REQUEST_EVENT, properties={"journey": "Demo Follow-up"})
    ]
    assert found.handoff is True and found.handoff_updated is False
    assert [e.journey for e in state.enrollments] == ["Webinar"]


def test_a_rejected_handoff_is_kept_and_sends_the_contact_to_renurture() -> None:
    state = _state()
    state.handoff = HandoffRef(
        handoff_id="c-1-h1", workflow_id="handoff-c-1-1", started_at=NOW, trigger="score"
    )
    update = HandoffUpdate(
        handoff_id="c-1-h1",
        owner="rep-a02",
        team="amer-general",
        sla_state="rejected",
        deadline=None,
        first_contact_at=NOW,
        outcome="rejected",
        outcome_reason="Competitor",
    )
    found = take_requests(state, [], [update], ContactConfig(), NOW)
    assert found.handoff_updated is True
    assert state.handoff.owner == "rep-a02" and state.handoff.outcome == "rejected"
    assert state.renurture is not None and "Competitor" in state.renurture.reason
    assert state.static_lists == ["Re-nurture"]
