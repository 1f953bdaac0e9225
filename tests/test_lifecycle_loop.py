"""The lifecycle loop's pure parts, without Temporal: recycles, open opportunities, resumes,
stale steps and the reference checks of every definition.

The contact transitions run with the behaviours of this release switched on (``CURRENT``) and
off (``RELEASED``: what 1.0.0 did, which its histories replay).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from contacts.behaviour import RELEASED, Behaviour
from contacts.contract import ContactConfig, ContactState, Enrollment, HandoffRef
from contacts.recycling import fire_recycles
from contacts.requests import take_requests
from contacts.state import apply_events, decision_base
from definitions import RECYCLE, read_file
from definitions.checks import check_definitions
from definitions.service import shipped_set
from handoff.contract import HandoffUpdate
from journeys.contract import JourneyRequest
from journeys.definition import parse_journey
from journeys.program import late_policy
from journeys.steps import SendStep
from lifecycle.recycle import RecyclePolicy
from lifecycle.stages import LifecycleRules, Stage, StagePromotion
from models.decisions import ENROLL_REQUEST_EVENT, EventOccurred, ListEntered
from models.events import ContactEvent
from revops.errors import ConfigError
from revops.yamlio import load_yaml
from tests.conftest import REPO

NOW = datetime(2026, 5, 5, 15, 0, tzinfo=UTC)
DAY = timedelta(days=1)
CURRENT = Behaviour(recycle_policy=True, open_opportunity=True, resume_paused=True)
POLICY = read_file(RECYCLE, REPO / "config" / "recycle.yaml")
LIFECYCLE = LifecycleRules(
    promotions=[
        StagePromotion(event="Opportunity Created", stage=Stage.OPPORTUNITY),
        StagePromotion(event="Closed Won", stage=Stage.CUSTOMER),
    ]
)
CONFIG = ContactConfig(lifecycle=LIFECYCLE, recycle=POLICY)


def _event(name: str, n: int, **properties: Any) -> ContactEvent:
    return ContactEvent(
        message_id=f"m-{name}-{n}",
        kind="sales",
        name=name,
        timestamp=NOW,
        received_at=NOW,
        properties=properties,
    )


def _state(**fields: Any) -> ContactState:
    return ContactState(contact_id="c-1", created_at=NOW - 30 * DAY, **fields)


# ---- recycles ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "delay", "to_list", "to_journey"),
    [
        ("No Budget", 90, None, "renurture-closed-lost"),
        ("timing", 60, "Re-nurture", None),
        ("Competitor", 180, "Re-nurture", None),
        ("Something else", 90, "Re-nurture", None),
    ],
)
def test_closed_lost_recycles_by_its_reason(
    reason: str, delay: int, to_list: str | None, to_journey: str | None
) -> None:
    state = _state(stage=Stage.OPPORTUNITY)
    apply_events(state, [_event("Closed Lost", 1, reason=reason)], CONFIG, NOW, CURRENT)
    (wakeup,) = state.wakeups
    assert wakeup.at == NOW + delay * DAY
    assert (wakeup.cause, wakeup.to_list, wakeup.to_journey) == ("closed_lost", to_list, to_journey)
    assert reason in wakeup.reason
    assert state.stage == Stage.OPPORTUNITY, "recycling never demotes"


def test_without_the_patch_closed_lost_keeps_the_1_0_0_recycle() -> None:
    state = _state()
    apply_events(state, [_event("Closed Lost", 1, reason="No Budget")], CONFIG, NOW, RELEASED)
    (wakeup,) = state.wakeups
    assert (wakeup.at, wakeup.cause, wakeup.to_list) == (NOW + 90 * DAY, None, None)


def test_a_due_recycle_goes_to_its_list_or_is_proposed_for_its_journey() -> None:
    state = _state()
    apply_events(state, [_event("Closed Lost", 1, reason="No Budget")], CONFIG, NOW, CURRENT)
    assert fire_recycles(state, NOW + 89 * DAY, "Re-nurture").wakeups == []
    fired = fire_recycles(state, NOW + 90 * DAY, "Re-nurture")
    (asked,) = fired.occurrences
    assert isinstance(asked, EventOccurred) and asked.name == ENROLL_REQUEST_EVENT
    assert asked.properties["journey"] == "renurture-closed-lost"
    assert state.renurture is not None and "No Budget" in state.renurture.reason
    assert state.static_lists == []
    again = _state(static_lists=["Re-nurture"])
    apply_events(again, [_event("Closed Lost", 2, reason="Timing")], CONFIG, NOW, CURRENT)
    fired = fire_recycles(again, NOW + 60 * DAY, "Re-nurture")
    assert fired.occurrences == [ListEntered(list="Re-nurture")], "decided again when on it"


def test_a_rejection_recycles_by_the_reps_reason_and_a_journey_step_by_its_cause() -> None:
    state = _state(stage=Stage.MQL)
    state.handoff = HandoffRef(
        handoff_id="c-1-h1", workflow_id="handoff-c-1-1", started_at=NOW, trigger="score"
    )
    state.enrollments.append(
        Enrollment(enrollment_id="c-1-1", journey="whitepaper-nurture", version=2, enrolled_at=NOW)
    )
    rejected = HandoffUpdate(
        handoff_id="c-1-h1",
        owner="rep-a02",
        team=None,
        sla_state="rejected",
        deadline=None,
        first_contact_at=NOW,
        outcome="rejected",
        outcome_reason="Not Ready",
    )
    disengaged = JourneyRequest(enrollment_id="c-1-1", kind="recycle", name="disengaged")
    take_requests(state, [disengaged], [rejected], CONFIG, NOW, CURRENT)
    moments = {w.cause: (w.at, w.reason) for w in state.wakeups}
    assert moments["rejected"] == (NOW + 30 * DAY, "rejected by sales: Not Ready")
    assert moments["disengaged"] == (NOW + 60 * DAY, "disengaged in whitepaper-nurture")
    assert state.static_lists == [] and state.stage == Stage.MQL


def test_without_a_recycle_file_recycles_go_where_1_0_0_sent_them() -> None:
    released = RecyclePolicy()
    assert [(c, r.delay, r.to.list_) for c, r in released.causes.items()] == [
        ("score_drop", timedelta(0), "Re-nurture"),
        ("rejected", timedelta(0), "Re-nurture"),
        ("closed_lost", 90 * DAY, "Re-nurture"),
    ]


def test_every_recycle_needs_a_destination() -> None:
    with pytest.raises(ValueError, match="add closed_lost"):
        RecyclePolicy.model_validate(
            {"causes": {c: {"to": {"list": "X"}} for c in ("score_drop", "rejected")}}
        )
    with pytest.raises(ValueError, match="exactly one of: list, journey"):
        RecyclePolicy.model_validate({"causes": {"score_drop": {"to": {}}}})


# ---- open opportunities and resuming --------------------------------------------------------


def test_an_opportunity_is_open_until_it_is_won_or_lost() -> None:
    state = _state()
    apply_events(state, [_event("Opportunity Created", 1)], CONFIG, NOW, CURRENT)
    assert state.traits["opportunity_open"] is True
    apply_events(state, [_event("Closed Lost", 1, reason="Timing")], CONFIG, NOW, CURRENT)
    assert state.traits["opportunity_open"] is False
    apply_events(state, [_event("Opportunity Created", 2)], CONFIG, NOW, CURRENT)
    apply_events(state, [_event("Closed Won", 1)], CONFIG, NOW, CURRENT)
    assert state.traits["opportunity_open"] is False and state.stage == Stage.CUSTOMER
    old = _state()
    apply_events(old, [_event("Opportunity Created", 1)], CONFIG, NOW, RELEASED)
    assert "opportunity_open" not in old.traits


def test_a_journey_ending_while_another_is_paused_asks_the_rules_again() -> None:
    state = _state()
    for number, (journey, paused) in enumerate(
        [("whitepaper-nurture", True), ("demo-follow-up", False)], start=1
    ):
        state.enrollments.append(
            Enrollment(
                enrollment_id=f"c-1-{number}",
                journey=journey,
                version=1,
                enrolled_at=NOW,
                paused=paused,
                paused_by="demo-follow-up" if paused else None,
            )
        )
    finished = JourneyRequest(enrollment_id="c-1-2", kind="finished", outcome="completed")
    assert take_requests(_copy(state), [finished], [], CONFIG, NOW, CURRENT).review
    assert not take_requests(_copy(state), [finished], [], CONFIG, NOW, RELEASED).review
    base = decision_base(state, NOW)
    assert base.active_enrollments[0].paused_by == "demo-follow-up"
    assert base.handoff_open is False


def _copy(state: ContactState) -> ContactState:
    return state.model_copy(deep=True)


# ---- stale steps ------------------------------------------------------------------------------


def test_late_policy_by_step_journey_and_kind_of_message() -> None:
    journey = parse_journey(
        {
            "name": "late",
            "trigger": {"event": "X"},
            "category": "nurture",
            "late": {"after": "12h"},
            "steps": [
                {"id": "m", "send": {"channel": "email", "subject": "s", "body": "b"}},
                {
                    "id": "t",
                    "send": {
                        "channel": "email",
                        "subject": "s",
                        "body": "b",
                        "transactional": True,
                    },
                },
                {"id": "o", "send": {"channel": "sms", "text": "t", "if_late": "skip_to_next"}},
            ],
        },
        "late.yaml",
    )
    marketing, transactional, override = (s for s in journey.steps if isinstance(s, SendStep))
    assert late_policy(journey, marketing, NOW, NOW + timedelta(hours=12)) is None
    assert late_policy(journey, marketing, NOW, NOW + DAY) == "skip"
    assert late_policy(journey, transactional, NOW, NOW + DAY) == "send_late"
    assert late_policy(journey, override, NOW, NOW + DAY) == "skip_to_next"


# ---- definitions: references and YAML ---------------------------------------------------------


def test_the_shipped_definitions_name_only_what_exists() -> None:
    findings = check_definitions(shipped_set(REPO / "config", REPO / "config" / "journeys"))
    assert findings == []


def test_a_key_written_twice_is_refused_with_both_lines() -> None:
    with pytest.raises(
        ConfigError, match=r"lists.yaml: line 4: duplicate key 'kind' \(first on line 3\)"
    ):
        load_yaml("lists:\n  - name: A\n    kind: static\n    kind: dynamic\n", "lists.yaml")


def test_the_shipped_files_have_no_duplicate_keys() -> None:
    for path in sorted((REPO / "config").rglob("*.yaml")):
        load_yaml(path.read_text(encoding="utf-8"), str(path))
        assert yaml.safe_load(path.read_text(encoding="utf-8")) is not None
