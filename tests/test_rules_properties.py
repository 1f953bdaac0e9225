"""Properties of the rules over simulated weeks of one contact's life.

Hypothesis generates random orderings of product events, unsubscribes, sales activity and
journey sends, hours to days apart. A tiny pure simulator applies every decision the way the
contact workflow does (enrollments through ``contacts.enrollments.apply_decision``; it keeps
sends and deferred sends) and checks after each one what a customer would notice if it broke:

- no marketing email after an unsubscribe was accepted;
- never two running journeys of one exclusivity group at once;
- never more marketing emails than the cap in any rolling 7 days.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from audience.conditions import evaluate, parse_condition
from audience.facts import ContactFacts
from contacts.enrollments import apply_decision
from journeys.enrollment import parse_enrollment
from models.decisions import (
    ActiveEnrollment,
    ConsentFacts,
    Decision,
    DecisionRequest,
    EventOccurred,
    Occurrence,
    PastEnrollment,
    SendRequested,
)
from rules import RulesEngine, compile_rules, live_sessions
from rules.policies import Policies

START = datetime(2025, 3, 3, 13, 0, tzinfo=UTC)  # spans the US DST change of March 9
CAP, WINDOW = 3, timedelta(days=7)

JOURNEYS: list[dict[str, Any]] = [
    {
        "name": "Demo Follow-up",
        "trigger": {"event": "Demo Requested"},
        "category": "demo_ready",
        "exclusivity_group": "main",
        "marketing": False,
        "reenrollment": "every_time",
    },
    {
        "name": "Trial Onboarding",
        "trigger": {"event": "Trial Started"},
        "category": "trial",
        "exclusivity_group": "main",
        "on_preempt": "pause",
        "reenrollment": {"once_per_days": 10},
    },
    {
        "name": "Whitepaper Nurture",
        "trigger": {"event": "Content Downloaded"},
        "category": "nurture",
        "exclusivity_group": "main",
        "reenrollment": "every_time",
    },
    {
        "name": "Webinar Follow-up",
        "trigger": {"event": "Webinar Attended"},
        "category": "nurture",
        "priority": 30,
        "exclusivity_group": "events",
        "reenrollment": "every_time",
    },
    {
        "name": "Pricing Nurture",
        "trigger": {"event": "Pricing Viewed"},
        "priority": 20,
        "exclusivity_group": "events",
        "reenrollment": "every_time",
    },
    {
        "name": "Product Updates",
        "trigger": {"event": "Signed Up"},
        "priority": 5,
        "reenrollment": "every_time",
    },
]
MARKETING = {spec["name"]: bool(spec.get("marketing", True)) for spec in JOURNEYS}
EVENTS = [str(spec["trigger"]["event"]) for spec in JOURNEYS]


def _engine() -> RulesEngine:
    specs = [parse_enrollment(spec) for spec in JOURNEYS]
    return compile_rules(specs, Policies())


@dataclass
class Simulator:
    """One contact, applying decisions as the contact workflow would; checks invariants."""

    engine: RulesEngine
    time_zone: str
    now: datetime = START
    unsubscribed_at: datetime | None = None
    last_sales_at: datetime | None = None
    running: dict[str, ActiveEnrollment] = field(default_factory=dict)
    past: list[PastEnrollment] = field(default_factory=list)
    emails: list[datetime] = field(default_factory=list)  # marketing emails actually sent
    pending: list[tuple[datetime, SendRequested]] = field(default_factory=list)
    steps: int = 0

    # -- driving ----------------------------------------------------------------------------

    def advance(self, hours: int) -> None:
        """Let time pass; deferred sends are asked for again exactly when they said."""
        target = self.now + timedelta(hours=hours)
        while self.pending and min(p[0] for p in self.pending) <= target:
            self.pending.sort(key=lambda p: p[0])
            until, retry = self.pending.pop(0)
            self.now = max(self.now, until)
            if retry.journey in self.running and not self.running[retry.journey].paused:
                self.decide(retry)
        self.now = target

    def act(self, action: str) -> None:
        """One thing happening to the contact."""
        if action == "unsubscribe":
            self.unsubscribed_at = self.unsubscribed_at or self.now
        elif action == "sales activity":
            self.last_sales_at = self.now
        elif action == "journeys send":
            for name, enrollment in sorted(self.running.items()):
                if not enrollment.paused:
                    self.steps += 1
                    self.decide(SendRequested(journey=name, step=f"step-{self.steps}"))
        elif action == "receipt":
            self.decide(
                SendRequested(journey="Trial Onboarding", step="receipt", transactional=True)
            )
        else:
            self.decide(EventOccurred(name=action))

    def decide(self, occurrence: Occurrence) -> Decision:
        """Ask the rules, apply what they say (as the workflow does), check the invariants."""
        decision = self.engine.decide(self.request(occurrence))
        outcome = apply_decision(decision, list(self.running.values()), self.past, {}, self.now)
        self.running = {e.journey: e for e in outcome.active}
        self.past = outcome.past
        for action in decision.actions:
            self.apply(action.model_dump(), occurrence)
        self.check_groups()
        return decision

    def request(self, occurrence: Occurrence) -> DecisionRequest:
        """What the contact workflow knows right now."""
        return DecisionRequest(
            contact=ContactFacts(contact_id="c-prop", now=self.now, stage="Lead"),
            time_zone=self.time_zone,
            consent=ConsentFacts(unsubscribed=self.unsubscribed_at is not None),
            active_enrollments=list(self.running.values()),
            past_enrollments=self.past,
            last_sales_activity_at=self.last_sales_at,
            recent_marketing_sends=[t for t in self.emails if t > self.now - WINDOW],
            occurrence=occurrence,
        )

    # -- applying ---------------------------------------------------------------------------

    def apply(self, action: dict[str, Any], occurrence: Occurrence) -> None:
        """Act on a send's answer (enrollments changed in ``decide``)."""
        kind = action["kind"]
        if kind == "defer":
            assert isinstance(occurrence, SendRequested)
            assert action["until"] > self.now, "a deferral must move forward in time"
            self.pending.append((action["until"], occurrence))
        elif kind == "allow":
            assert isinstance(occurrence, SendRequested)
            self.sent(occurrence)

    def sent(self, send: SendRequested) -> None:
        """An email went out: check it against the unsubscribe and the cap."""
        if send.transactional or not MARKETING[send.journey] or send.channel != "email":
            return
        assert self.unsubscribed_at is None, (
            f"marketing email {send.step} of {send.journey} at {self.now} "
            f"after unsubscribe at {self.unsubscribed_at}"
        )
        self.emails.append(self.now)
        in_window = [t for t in self.emails if self.now - WINDOW < t <= self.now]
        assert len(in_window) <= CAP, f"{len(in_window)} marketing emails in 7 days at {self.now}"

    def check_groups(self) -> None:
        """At most one running (not paused) journey per exclusivity group."""
        groups = [
            e.exclusivity_group
            for e in self.running.values()
            if e.exclusivity_group and not e.paused
        ]
        assert len(groups) == len(set(groups)), f"two journeys of one group: {self.running}"


ACTIONS = st.sampled_from(
    [*EVENTS, "unsubscribe", "sales activity", "receipt"] + ["journeys send"] * 6
)
STEPS = st.lists(st.tuples(st.integers(min_value=1, max_value=60), ACTIONS), max_size=45)
ZONES = st.sampled_from(["America/New_York", "Europe/London", "Asia/Tokyo", "UTC"])


@settings(max_examples=120, deadline=None)
@given(steps=STEPS, time_zone=ZONES)
def test_simulated_weeks_keep_unsubscribe_exclusivity_and_cap(
    steps: list[tuple[int, str]], time_zone: str
) -> None:
    sim = Simulator(_engine(), time_zone)
    for hours, action in steps:
        sim.advance(hours)
        sim.act(action)
    sim.advance(24 * 14)  # let every deferred send come due
    assert live_sessions() == 0


@settings(max_examples=40, deadline=None)
@given(sends=st.lists(st.integers(min_value=0, max_value=7 * 24 * 60 - 1), max_size=8))
def test_a_deferred_send_fits_under_the_cap_exactly_when_it_comes_due(sends: list[int]) -> None:
    sim = Simulator(_engine(), "UTC")
    sim.emails = [START - timedelta(minutes=m) for m in sends]
    sim.running["Product Updates"] = ActiveEnrollment(
        journey="Product Updates", version=1, priority=5, enrolled_at=START
    )
    decision = sim.decide(SendRequested(journey="Product Updates", step="one"))
    action = decision.actions[-1]
    if action.kind == "defer":
        assert action.until is not None
        retry = sim.engine.decide(
            sim.request(SendRequested(journey="Product Updates", step="one")).model_copy(
                update={
                    "contact": ContactFacts(contact_id="c-prop", now=action.until),
                }
            )
        )
        assert retry.actions[-1].kind == "allow"
        just_before = action.until - timedelta(seconds=1)
        early = sim.engine.decide(
            sim.request(SendRequested(journey="Product Updates", step="one")).model_copy(
                update={"contact": ContactFacts(contact_id="c-prop", now=just_before)}
            )
        )
        assert early.actions[-1].kind == "defer"
    else:
        assert action.kind == "allow"


# ---------------------------------------------------------------------------------------------
# Trigger property filters and the condition language: one equality
# ---------------------------------------------------------------------------------------------

_OPERANDS: list[bool | int | float | str] = [True, False, 1, 0, 2.5, "1", "2.50", "Pro", "TRUE"]
_FILTERS = [
    {
        "name": f"Plan {index}",
        "trigger": {"event": "Plan Chosen", "properties": {"plan": operand}},
        "priority": index + 1,
        "reenrollment": "every_time",
    }
    for index, operand in enumerate(_OPERANDS)
]
_VALUES = st.one_of(
    st.sampled_from([True, False, 1.0, 2.5, " 1 ", "1.0", "2.5", "pro", "PRO ", "true", "yes", ""]),
    st.sampled_from([1e-9, "1e-9", 1e20, "-1e16", 0.0, "0"]),  # beyond what the engine holds
    st.integers(-3, 3),
    st.text(alphabet="pPrRoO1.5 tue", max_size=5),
)


@settings(max_examples=200, deadline=None)
@given(value=_VALUES)
def test_a_trigger_filter_matches_exactly_when_the_condition_language_says_equal(
    value: bool | int | float | str,
) -> None:
    engine = compile_rules([parse_enrollment(spec) for spec in _FILTERS], Policies())
    contact = ContactFacts(contact_id="c-eq", now=START, traits={"plan": value})
    occurrence = EventOccurred(name="Plan Chosen", properties={"plan": value})
    fired = {
        entry.rule
        for entry in engine.decide(DecisionRequest(contact=contact, occurrence=occurrence)).trace
    }
    for index, operand in enumerate(_OPERANDS):
        condition = parse_condition({"trait": "plan", "eq": operand})
        assert (f"trigger.Plan {index}" in fired) == evaluate(condition, contact), (operand, value)
