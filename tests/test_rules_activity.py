"""The rules activity: occurrences of one step decided in order, recorded with explanations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from temporalio.testing import ActivityEnvironment

from activities.rules import RulesActivities
from audience.facts import ContactFacts, EventRecord
from contacts.contract import DecideStepInput
from definitions import Definitions
from models.decisions import DecisionRequest, EventOccurred, ListEntered, Review
from rules import live_sessions
from store.decisions import DecisionLog
from store.registry import Registry
from store.repo import Store
from tests.conftest import REPO

NOW = datetime(2026, 5, 5, 15, 0, tzinfo=UTC)

JOURNEYS = {
    "nurture": {
        "name": "Nurture",
        "trigger": {"list": "Engaged Last 30 Days"},
        "category": "nurture",
        "exclusivity_group": "acquisition",
        "steps": [{"id": "s1", "wait": "1d"}],
    },
    "demo": {
        "name": "Demo Follow-up",
        "trigger": {"event": "Demo Requested"},
        "category": "demo_ready",
        "exclusivity_group": "acquisition",
        "steps": [{"id": "s1", "wait": "1h"}],
    },
}


def _journeys_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "journeys"
    folder.mkdir()
    for name, body in JOURNEYS.items():
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(body))
    return folder


def _definitions(store: Store, tmp_path: Path) -> Definitions:
    return Definitions(Registry(store), REPO / "config", _journeys_dir(tmp_path))


def _request(events: list[str]) -> DecisionRequest:
    facts = ContactFacts(
        contact_id="c-rules",
        now=NOW,
        stage="Lead",
        events=[EventRecord(name=n, at=NOW) for n in events],
    )
    return DecisionRequest(contact=facts, occurrence=Review())


def test_a_demo_request_enrolls_demo_follow_up_and_pre_empts_nurture(
    store: Store, tmp_path: Path
) -> None:
    activities = RulesActivities(store, _definitions(store, tmp_path))
    step = DecideStepInput(
        base=_request(["Email Opened", "Demo Requested"]),
        occurrences=[
            ListEntered(list="Engaged Last 30 Days"),
            EventOccurred(name="Demo Requested"),
        ],
    )
    result = ActivityEnvironment().run(activities.decide_step, step)
    first, second = result.decisions
    assert first.journeys("enroll") == ["Nurture"]
    assert second.journeys("enroll") == ["Demo Follow-up"]
    assert second.journeys("exit") + second.journeys("pause") == ["Nurture"]
    assert set(result.journeys) == {"Nurture", "Demo Follow-up"}
    assert result.journeys["Demo Follow-up"].definition.steps[0].id == "s1"
    recorded = DecisionLog(store).recent("c-rules")
    assert len(recorded) == 2
    assert any("Demo Follow-up" in line for line in recorded[0].explanation)
    assert live_sessions() == 0


def test_a_lower_priority_journey_is_refused_while_a_higher_one_runs(
    store: Store, tmp_path: Path
) -> None:
    activities = RulesActivities(store, _definitions(store, tmp_path))
    step = DecideStepInput(
        base=_request(["Demo Requested", "Email Opened"]),
        occurrences=[
            EventOccurred(name="Demo Requested"),
            ListEntered(list="Engaged Last 30 Days"),
        ],
    )
    result = ActivityEnvironment().run(activities.decide_step, step)
    assert result.decisions[1].journeys("enroll") == []
    lines = DecisionLog(store).recent("c-rules")[0].explanation
    assert any("Nurture" in line and "Demo Follow-up" in line for line in lines)


def test_sales_activity_seconds_ago_is_decided_without_engine_errors(
    store: Store, tmp_path: Path
) -> None:
    """A tiny float (days since a sales touch a second ago) once crashed the native parser."""
    activities = RulesActivities(store, _definitions(store, tmp_path))
    base = _request(["Opportunity Created"]).model_copy(
        update={"last_sales_activity_at": NOW - timedelta(seconds=0.05)}
    )
    step = DecideStepInput(base=base, occurrences=[EventOccurred(name="Opportunity Created")])
    result = ActivityEnvironment().run(activities.decide_step, step)
    assert len(result.decisions) == 1
