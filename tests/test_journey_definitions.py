"""Journey definitions without a server: validation messages, the schema file, the flat
program, stable A/B assignment, wait arithmetic, A/B significance, and the registry view."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
import yaml

from analysis.ab_test import ArmResult, read_split, two_proportion_p_value
from audience.facts import EventRecord
from definitions import JOURNEY, Definitions, deployable_body, read_file
from journeys.definition import parse_journey
from journeys.enrollment import JourneyEnrollment
from journeys.program import Program, assign_variant, next_local_time, wait_until
from journeys.steps import SplitStep, Until
from revops.errors import ConfigError
from starter.journeys_cli import schema_text
from store.journeys import JourneyLog, summarise
from store.registry import Registry
from store.repo import Store
from tests.conftest import REPO
from tests.journey_support import contact

BAD = """
name: broken
trigger: {event: Content Downloaded}
category: nurture
steps:
  - id: welcome
    send: {channel: email, subject: "Hi {{ contact.first_name ", body: "Hello"}
  - id: later
    wait: 2 days
  - id: branchy
    branch:
      - if: {score: engagement, gte: 40}
        then:
          - id: deep
            sned: {channel: email, subject: x, body: y}
  - id: welcome
    exit: done
"""


def test_a_bad_journey_file_names_the_file_the_step_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BAD, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        read_file(JOURNEY, path)
    lines = str(caught.value).splitlines()
    assert f"{path}: steps[0] (welcome).send.email.subject: template syntax error" in lines[0]
    assert f"{path}: steps[1] (later).wait.for: '2 days' is not a duration" in lines[1]
    assert lines[2].startswith(f"{path}: steps[2] (branchy).branch[0].then[0] (deep): a step")
    assert "got keys: id, sned" in lines[2]


def test_a_step_id_used_twice_is_refused() -> None:
    data = yaml.safe_load(BAD.replace('"Hi {{ contact.first_name "', "Hi")).copy()
    data["steps"] = [data["steps"][0], data["steps"][3]]
    with pytest.raises(ConfigError, match="step id 'welcome' is used twice"):
        parse_journey(data, "dup.yaml")


def test_a_journey_is_its_enrollment_plus_steps_with_the_same_yaml_keys() -> None:
    definition = read_file(JOURNEY, REPO / "config" / "journeys" / "whitepaper-nurture.yaml")
    enrollment = definition.enrollment
    assert type(enrollment) is JourneyEnrollment
    raw = yaml.safe_load((REPO / "config" / "journeys" / "whitepaper-nurture.yaml").read_text())
    keys = {k: v for k, v in raw.items() if k in JourneyEnrollment.model_fields}
    assert enrollment == JourneyEnrollment.model_validate(keys)


def test_the_committed_schema_matches_the_models() -> None:
    committed = (REPO / "config" / "journeys" / "schema.json").read_text(encoding="utf-8")
    assert committed == schema_text(), "run `revops journeys schema` and commit the result"
    schema = json.loads(committed)
    assert "steps" in schema["required"]


def test_the_program_numbers_steps_depth_first_and_resumes_after_nested_lists() -> None:
    definition = read_file(JOURNEY, REPO / "config" / "journeys" / "whitepaper-nurture.yaml")
    program = Program.of(definition)
    assert program.numbers["booked-meeting"] == 1
    assert program.successor["d2-deep-dive"] == "wait-to-d3"
    assert program.successor["d2-blog"] == "wait-to-d3"
    assert program.successor["d3-resend"] == "wait-to-d5"
    assert program.successor["d20-disengaged"] == "d20-recycle"
    assert program.successor["d20-recycle"] is None
    assert program.label("d5-case-study") == "email 'Case study' step 15"


def test_variant_assignment_is_stable_and_follows_the_weights() -> None:
    split = parse_journey(
        {
            "name": "ab",
            "trigger": {"event": "X"},
            "category": "nurture",
            "steps": [
                {
                    "id": "subject",
                    "split": [
                        {"variant": "A", "weight": 80, "steps": []},
                        {"variant": "B", "weight": 20, "steps": []},
                    ],
                }
            ],
        }
    ).steps[0]
    assert isinstance(split, SplitStep)
    counts = Counter(assign_variant(f"c{n}", "ab", "subject", split.split) for n in range(4000))
    assert 0.77 < counts["A"] / 4000 < 0.83
    assert assign_variant("c7", "ab", "subject", split.split) == assign_variant(
        "c7", "ab", "subject", split.split
    )


def test_waiting_until_a_weekday_uses_the_contacts_zone_across_a_dst_change() -> None:
    friday = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)  # Berlin moves to summer time on Sunday
    monday = next_local_time(friday, "Europe/Berlin", time(9, 0), ["mon"])
    assert monday == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    assert next_local_time(monday, "Europe/Berlin", time(9, 0)) == monday + timedelta(days=1)


def test_waiting_for_a_time_held_by_an_event() -> None:
    start = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    events = [
        EventRecord(
            name="Webinar Registered", at=start, properties={"starts_at": "2026-06-10T16:00:00Z"}
        )
    ]
    seven_before = Until(event="Webinar Registered", property="starts_at", before=timedelta(days=7))
    assert wait_until(seven_before, start, "UTC", events) == datetime(2026, 6, 3, 16, tzinfo=UTC)
    assert wait_until(seven_before, start, "UTC", []) is None


def test_a_winner_is_named_only_at_significance_and_with_enough_sends() -> None:
    assert two_proportion_p_value(60, 500, 30, 500) < 0.01
    clear = read_split("s", [ArmResult("A", 500, 500, 60), ArmResult("B", 500, 500, 30)])
    assert clear.winner == "A" and clear.verdict.startswith("winner A")
    close = read_split("s", [ArmResult("A", 500, 500, 40), ArmResult("B", 500, 500, 36)])
    assert close.winner is None and close.verdict.startswith("no winner yet")
    small = read_split("s", [ArmResult("A", 20, 20, 15), ArmResult("B", 20, 20, 1)])
    assert small.winner is None and "need 100" in small.verdict


def test_deployed_versions_win_over_library_files_and_carry_the_registry_number(
    store: Store,
) -> None:
    registry = Registry(store)
    raw = yaml.safe_load((REPO / "config" / "journeys" / "webinar.yaml").read_text())
    registry.deploy(JOURNEY.name, "webinar", deployable_body(raw), author="t")
    raw["description"] = "v2"
    registry.deploy(JOURNEY.name, "webinar", deployable_body(raw), author="t")
    journeys = Definitions(registry, REPO / "config", REPO / "config" / "journeys").journeys()
    assert (journeys["webinar"].version, journeys["webinar"].description) == (2, "v2")
    assert journeys["whitepaper-nurture"].version == 2, "a file never deployed: its own version"


def test_bounces_complaints_and_sales_outreach_are_read_from_the_event_log(store: Store) -> None:
    from tests.support import track

    who = contact(store, "u-deliver")
    store.accept(
        [
            track("u-deliver", "Email Bounced", properties={"type": "soft"}),
            track("u-deliver", "Sales Call Logged", type_="sales"),
        ]
    )
    facts = JourneyLog(store).deliverability(who)
    assert (facts.hard_bounced, facts.spam_complaint) == (False, False)
    assert facts.last_sales_activity_at is not None
    now = datetime.now(UTC)
    assert summarise([("Spam Complaint", {}, now)]).spam_complaint
    assert JourneyLog(store).unsubscribe(who, now)
    row = store.contact(who)
    assert row is not None and row.consent["subscribed"] is False


def test_assignments_and_conversions_are_recorded_once_on_both_databases(any_store: Store) -> None:
    log, now = JourneyLog(any_store), datetime.now(UTC)
    for _ in range(2):  # an activity may run twice: nothing is counted twice
        log.assigned("e1", "c1", "j", 1, "subject", "A", now)
        log.assigned("e2", "c2", "j", 1, "subject", "B", now)
        log.variant_sent("e1", "subject", now)
        log.variant_sent("e2", "subject", now)
        log.converted("e1", "c1", "j", 1, "goal", now)
    stats = {s.variant: (s.assigned, s.sent, s.converted) for s in log.variant_stats("j")}
    assert stats == {"A": (1, 1, 1), "B": (1, 1, 0)}
    assert len(log.conversions("j")) == 1
