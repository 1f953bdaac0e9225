"""The rules module as ops and support see it: who enters which journey, what is sent, and why.

Every test compiles real journey enrollments and policies into the real durable_rules ruleset
and asks for decisions; nothing is mocked.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from audience.facts import ContactFacts
from definitions import POLICIES, read_file
from journeys.enrollment import JourneyEnrollment, parse_enrollment
from models.decisions import (
    ENROLL_REQUEST_EVENT,
    ActiveEnrollment,
    ConsentFacts,
    Decision,
    DecisionRequest,
    EventOccurred,
    ListEntered,
    Occurrence,
    PastEnrollment,
    Review,
    SendRequested,
    StageEntered,
    explain_decision,
)
from revops.errors import ConfigError
from rules import RulesEngine, compile_rules, live_sessions
from rules.policies import HoldPolicy, Policies, parse_policies, with_hand_raisers
from scoring.model import ScoringModel
from tests.conftest import REPO

HAND_RAISERS = ScoringModel(version="t").hand_raisers
"""The scoring model's hand-raisers: the one place they are named (the engine gets them)."""

NOW = datetime(2025, 6, 4, 15, 0, tzinfo=UTC)  # a Wednesday, 11:00 in New York

DEMO = {
    "name": "Demo Follow-up",
    "trigger": {"event": "Demo Requested"},
    "category": "demo_ready",
    "exclusivity_group": "main",
    "marketing": False,
    "reenrollment": "every_time",
}
TRIAL = {
    "name": "Trial Onboarding",
    "trigger": {"event": "Trial Started", "properties": {"plan": "Pro"}},
    "category": "trial",
    "exclusivity_group": "main",
    "on_preempt": "pause",
}
NURTURE = {
    "name": "Whitepaper Nurture",
    "trigger": {"event": "Content Downloaded"},
    "category": "nurture",
    "exclusivity_group": "main",
    "exit": {"stage": {"at_least": "MQL"}},
    "reenrollment": "every_time",
}
WEBINAR = {
    "name": "Webinar Follow-up",
    "trigger": {"event": "Webinar Attended"},
    "priority": 30,
    "exclusivity_group": "events",
    "reenrollment": {"once_per_days": 30},
}
NEWSLETTER = {
    "name": "Newsletter",
    "trigger": {"list": "Newsletter Subscribers"},
    "category": "nurture",
    "entry": {"trait": "industry", "in": ["Software", "Fintech"]},
}
CUSTOMER = {
    "name": "Customer Onboarding",
    "trigger": {"stage": "Customer"},
    "priority": 70,
    "acquisition": False,
    "marketing": False,
}
ALL = [DEMO, TRIAL, NURTURE, WEBINAR, NEWSLETTER, CUSTOMER]


def journeys(*specs: dict[str, Any]) -> list[JourneyEnrollment]:
    """Enrollment definitions as they would come out of journey YAML files."""
    return [parse_enrollment(spec, f"journeys/{spec['name']}.yaml") for spec in specs]


def engine(*specs: dict[str, Any], policies: Policies | None = None) -> RulesEngine:
    """A compiled engine for these journeys (all of ALL by default) and policies."""
    return compile_rules(
        journeys(*(specs or ALL)), with_hand_raisers(policies or Policies(), HAND_RAISERS)
    )


def request(occurrence: Occurrence, **fields: Any) -> DecisionRequest:
    """A decision request at NOW for one contact; ``fields`` override anything."""
    contact = ContactFacts(
        contact_id="c-1",
        now=fields.pop("now", NOW),
        stage=fields.pop("stage", "Lead"),
        traits=fields.pop("traits", {}),
        lists=frozenset(fields.pop("lists", ())),
    )
    return DecisionRequest(contact=contact, occurrence=occurrence, **fields)


def active(name: str, priority: int, group: str | None = "main", **fields: Any) -> ActiveEnrollment:
    """A running enrollment, entered two days before NOW unless told otherwise."""
    return ActiveEnrollment(
        journey=name,
        version=fields.pop("version", 1),
        priority=priority,
        exclusivity_group=group,
        enrolled_at=fields.pop("enrolled_at", NOW - timedelta(days=2)),
        **fields,
    )


def send(journey: str = "Whitepaper Nurture", **fields: Any) -> SendRequested:
    """A journey step asking to send an email now."""
    return SendRequested(journey=journey, step=fields.pop("step", "day-2"), **fields)


def kinds(decision: Decision) -> list[tuple[str, str | None]]:
    """(kind, journey) of every action, in order."""
    return [(a.kind, a.journey) for a in decision.actions]


def rules_fired(decision: Decision) -> list[str]:
    """Names of the rules that fired, in order."""
    return [entry.rule for entry in decision.trace]


def verdict(decision: Decision) -> str:
    """The send verdict of a send decision: allow, defer or suppress."""
    return decision.actions[-1].kind


# ---------------------------------------------------------------------------------------------
# Suppression policies, each alone
# ---------------------------------------------------------------------------------------------


def test_unsubscribed_contact_gets_no_nurture_email() -> None:
    decision = engine().decide(request(send(), consent=ConsentFacts(unsubscribed=True)))
    assert verdict(decision) == "suppress"
    assert explain_decision(decision) == [
        "not sent (email 'day-2' of Whitepaper Nurture): unsubscribed"
    ]


def test_unsubscribed_contact_is_not_enrolled_in_a_marketing_journey() -> None:
    occurrence = EventOccurred(name="Content Downloaded")
    decision = engine().decide(request(occurrence, consent=ConsentFacts(unsubscribed=True)))
    assert kinds(decision) == [("suppress", "Whitepaper Nurture")]
    assert explain_decision(decision)[0] == "not enrolled in Whitepaper Nurture: unsubscribed"


def test_subscribed_contact_gets_the_nurture_email() -> None:
    decision = engine().decide(request(send()))
    assert verdict(decision) == "allow"


def test_contact_never_subscribed_gets_no_marketing() -> None:
    decision = engine().decide(request(send(), consent=ConsentFacts(subscribed=False)))
    assert verdict(decision) == "suppress"
    assert "not subscribed" in decision.actions[-1].reason


def test_gdpr_refusal_blocks_marketing_but_gdpr_not_applying_does_not() -> None:
    refused = engine().decide(request(send(), consent=ConsentFacts(gdpr_consent=False)))
    not_applicable = engine().decide(request(send(), consent=ConsentFacts(gdpr_consent=None)))
    assert verdict(refused) == "suppress"
    assert verdict(not_applicable) == "allow"


def test_ccpa_opt_out_blocks_marketing() -> None:
    decision = engine().decide(request(send(), consent=ConsentFacts(ccpa_opt_out=True)))
    assert decision.actions[-1].reason == "CCPA opt-out"


def test_hard_bounced_address_gets_no_marketing() -> None:
    decision = engine().decide(request(send(), hard_bounced=True))
    assert decision.actions[-1].reason == "address hard-bounced"


def test_spam_complaint_stops_marketing() -> None:
    decision = engine().decide(request(send(), spam_complaint=True))
    assert decision.actions[-1].reason == "spam complaint"


def test_competitor_gets_no_sales_email_but_transactional_still_goes() -> None:
    sales = engine().decide(request(send("Demo Follow-up"), is_competitor=True))
    receipt = engine().decide(
        request(send("Demo Follow-up", transactional=True), is_competitor=True)
    )
    assert verdict(sales) == "suppress"
    assert sales.actions[-1].reason == "contact is a competitor"
    assert verdict(receipt) == "allow"


def test_competitor_requesting_a_demo_is_neither_enrolled_nor_routed_to_sales() -> None:
    decision = engine().decide(request(EventOccurred(name="Demo Requested"), is_competitor=True))
    assert kinds(decision) == [("suppress", "Demo Follow-up")]
    assert decision.signals == ["hand_raiser"]


def test_sales_activity_in_the_last_14_days_suppresses_marketing() -> None:
    decision = engine().decide(
        request(send(), last_sales_activity_at=NOW - timedelta(days=13, hours=23))
    )
    assert verdict(decision) == "suppress"
    assert decision.actions[-1].reason.startswith("sales is working this contact")


def test_sales_activity_older_than_14_days_no_longer_suppresses() -> None:
    decision = engine().decide(request(send(), last_sales_activity_at=NOW - timedelta(days=14)))
    assert verdict(decision) == "allow"


def test_sales_only_journey_keeps_sending_while_sales_is_active() -> None:
    decision = engine().decide(
        request(send("Demo Follow-up"), last_sales_activity_at=NOW - timedelta(days=1))
    )
    assert verdict(decision) == "allow"


def test_sales_hold_is_configurable_and_can_be_turned_off() -> None:
    policies = parse_policies({"suppression": {"sales_activity_days": 0}})
    decision = engine(NURTURE, policies=policies).decide(
        request(send(), last_sales_activity_at=NOW - timedelta(days=1))
    )
    assert verdict(decision) == "allow"


def test_customer_leaves_acquisition_journeys_and_enters_customer_onboarding() -> None:
    running = [active("Whitepaper Nurture", 10)]
    decision = engine().decide(
        request(StageEntered(stage="Customer"), stage="Customer", active_enrollments=running)
    )
    assert kinds(decision) == [
        ("exit", "Whitepaper Nurture"),
        ("enroll", "Customer Onboarding"),
    ]
    assert decision.actions[0].reason == (
        "exit criteria met; customers (Customer) leave acquisition journeys"
    )


def test_customer_is_not_enrolled_in_an_acquisition_journey() -> None:
    decision = engine().decide(request(EventOccurred(name="Content Downloaded"), stage="Customer"))
    assert kinds(decision) == [("refuse", "Whitepaper Nurture")]


def test_transactional_email_is_exempt_from_cap_and_quiet_hours() -> None:
    night = datetime(2025, 6, 5, 3, 0, tzinfo=UTC)  # 23:00 in New York
    sends = [night - timedelta(days=d) for d in (1, 2, 3)]
    decision = engine().decide(
        request(
            send(transactional=True),
            now=night,
            time_zone="America/New_York",
            recent_marketing_sends=sends,
        )
    )
    assert verdict(decision) == "allow"
    assert decision.actions[-1].reason == "transactional"


# ---------------------------------------------------------------------------------------------
# Priority and exclusivity
# ---------------------------------------------------------------------------------------------


def test_demo_request_preempts_trial_onboarding_which_pauses() -> None:
    decision = engine().decide(
        request(
            EventOccurred(name="Demo Requested"),
            active_enrollments=[active("Trial Onboarding", 50)],
        )
    )
    assert kinds(decision) == [("pause", "Trial Onboarding"), ("enroll", "Demo Follow-up")]
    assert explain_decision(decision)[:2] == [
        "paused Trial Onboarding: pre-empted by Demo Follow-up (priority 90 > 50)",
        "enrolled in Demo Follow-up (version 1): triggered by event Demo Requested",
    ]


def test_preempted_journey_without_pause_setting_exits() -> None:
    decision = engine().decide(
        request(
            EventOccurred(name="Trial Started", properties={"plan": "Pro"}),
            active_enrollments=[active("Whitepaper Nurture", 10)],
        )
    )
    assert kinds(decision) == [("exit", "Whitepaper Nurture"), ("enroll", "Trial Onboarding")]


def test_trial_is_refused_while_demo_follow_up_runs() -> None:
    decision = engine().decide(
        request(
            EventOccurred(name="Trial Started", properties={"plan": "Pro"}),
            active_enrollments=[active("Demo Follow-up", 90)],
        )
    )
    assert kinds(decision) == [("refuse", "Trial Onboarding")]
    assert explain_decision(decision) == [
        "not enrolled in Trial Onboarding: in Demo Follow-up (priority 90 > 50)"
    ]


def test_running_journey_keeps_its_place_against_an_equal_priority() -> None:
    decision = engine().decide(
        request(
            EventOccurred(name="Trial Started", properties={"plan": "Pro"}),
            active_enrollments=[active("Old Trial", 50)],
        )
    )
    assert kinds(decision) == [("refuse", "Trial Onboarding")]
    assert decision.actions[0].reason == "in Old Trial (priority 50 = 50)"


def test_journeys_of_different_groups_run_side_by_side() -> None:
    decision = engine().decide(
        request(
            EventOccurred(name="Webinar Attended"),
            active_enrollments=[active("Demo Follow-up", 90)],
        )
    )
    assert kinds(decision) == [("enroll", "Webinar Follow-up")]


def test_one_event_triggering_two_journeys_of_a_group_enrolls_only_the_higher() -> None:
    fast = {**DEMO, "name": "Fast Track", "category": None, "priority": 95}
    decision = engine(DEMO, fast, NURTURE).decide(request(EventOccurred(name="Demo Requested")))
    assert kinds(decision) == [("enroll", "Fast Track"), ("refuse", "Demo Follow-up")]
    assert decision.actions[1].reason == "Fast Track wins (priority 95 > 90)"


def test_a_vetoed_higher_journey_does_not_block_a_lower_one() -> None:
    upsell = {**NURTURE, "name": "Upsell", "category": None, "priority": 60, "exit": None}
    upsell["trigger"] = {"event": "Content Downloaded"}
    decision = engine(NURTURE, upsell).decide(
        request(EventOccurred(name="Content Downloaded"), traits={}, stage="MQL")
    )
    # Whitepaper Nurture's exit criteria (MQL) are met, so it is refused; Upsell wins alone.
    assert ("enroll", "Upsell") in kinds(decision)
    hopeful = engine(NURTURE, {**upsell, "entry": {"stage": {"eq": "Customer"}}}).decide(
        request(EventOccurred(name="Content Downloaded"))
    )
    assert kinds(hopeful) == [("enroll", "Whitepaper Nurture"), ("refuse", "Upsell")]
    assert hopeful.actions[1].reason == "entry criteria not met"


def test_equal_priorities_in_one_group_are_refused_at_compile_time() -> None:
    twin = {**TRIAL, "name": "Trial Twin", "trigger": {"event": "Trial Twin"}}
    with pytest.raises(ConfigError, match="priorities in a group must differ"):
        engine(TRIAL, twin)


def test_journey_without_priority_or_known_category_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"'Mystery' \(version 1\): priority: missing"):
        engine({"name": "Mystery", "trigger": {"event": "X"}})


def test_same_journey_version_twice_is_refused() -> None:
    with pytest.raises(ConfigError, match="version 1 defined twice"):
        engine(DEMO, DEMO)


def test_invalid_enrollment_names_file_and_field() -> None:
    with pytest.raises(ConfigError, match=r"journeys/x.yaml: on_preempt: "):
        parse_enrollment({**DEMO, "on_preempt": "explode"}, "journeys/x.yaml")
    with pytest.raises(ConfigError, match="a trigger needs one of: event, list, stage"):
        parse_enrollment({**DEMO, "trigger": {"when": "now"}}, "journeys/x.yaml")


# ---------------------------------------------------------------------------------------------
# Re-enrollment
# ---------------------------------------------------------------------------------------------


def test_reenrollment_once_refuses_a_second_entry() -> None:
    past = [PastEnrollment(journey="Trial Onboarding", enrolled_at=NOW - timedelta(days=90))]
    decision = engine().decide(
        request(
            EventOccurred(name="Trial Started", properties={"plan": "pro"}), past_enrollments=past
        )
    )
    assert kinds(decision) == [("refuse", "Trial Onboarding")]
    assert decision.actions[0].reason == "entered before and re-enrollment is once only"


def test_reenrollment_every_time_enters_again_but_not_while_running() -> None:
    past = [PastEnrollment(journey="Whitepaper Nurture", enrolled_at=NOW - timedelta(hours=1))]
    again = engine().decide(
        request(EventOccurred(name="Content Downloaded"), past_enrollments=past)
    )
    running = engine().decide(
        request(
            EventOccurred(name="Content Downloaded"),
            active_enrollments=[active("Whitepaper Nurture", 10)],
        )
    )
    assert kinds(again) == [("enroll", "Whitepaper Nurture")]
    assert kinds(running) == [("refuse", "Whitepaper Nurture")]
    assert running.actions[0].reason == "already in it (version 1)"


def test_reenrollment_once_per_30_days() -> None:
    def entered(days_ago: float) -> Decision:
        past = [
            PastEnrollment(journey="Webinar Follow-up", enrolled_at=NOW - timedelta(days=days_ago))
        ]
        return engine().decide(
            request(EventOccurred(name="Webinar Attended"), past_enrollments=past)
        )

    assert kinds(entered(29.9)) == [("refuse", "Webinar Follow-up")]
    assert entered(29.9).actions[0].reason == (
        "entered 29.9 days ago; re-enrollment is once per 30 days"
    )
    assert kinds(entered(30)) == [("enroll", "Webinar Follow-up")]


# ---------------------------------------------------------------------------------------------
# Triggers and criteria
# ---------------------------------------------------------------------------------------------


def test_event_property_filter_ignores_case_and_reads_numeric_strings() -> None:
    plan = {
        **TRIAL,
        "trigger": {"event": "Trial Started", "properties": {"plan": "Pro", "seats": 5}},
    }
    eng = engine(plan)
    matching = EventOccurred(name="Trial Started", properties={"plan": "PRO", "seats": "5"})
    other = EventOccurred(name="Trial Started", properties={"plan": "Free", "seats": 5})
    missing = EventOccurred(name="Trial Started", properties={"plan": "Pro"})
    assert kinds(eng.decide(request(matching))) == [("enroll", "Trial Onboarding")]
    assert eng.decide(request(other)).actions == []
    assert eng.decide(request(missing)).actions == []


def test_list_trigger_with_entry_criteria() -> None:
    occurrence = ListEntered(list="Newsletter Subscribers")
    fits = engine().decide(request(occurrence, traits={"industry": "software"}))
    does_not = engine().decide(request(occurrence, traits={"industry": "Retail"}))
    assert kinds(fits) == [("enroll", "Newsletter")]
    assert kinds(does_not) == [("refuse", "Newsletter")]
    assert explain_decision(does_not) == ["not enrolled in Newsletter: entry criteria not met"]


def test_exit_criteria_end_a_running_journey_and_stop_its_send() -> None:
    decision = engine().decide(
        request(send(), stage="MQL", active_enrollments=[active("Whitepaper Nurture", 10)])
    )
    assert kinds(decision) == [("exit", "Whitepaper Nurture"), ("suppress", "Whitepaper Nurture")]
    assert decision.actions[1].reason == "Whitepaper Nurture is left: exit criteria met"


def test_event_nothing_listens_to_changes_nothing() -> None:
    decision = engine().decide(request(EventOccurred(name="Page Viewed")))
    assert decision.actions == []
    assert explain_decision(decision) == ["no change: nothing to do for event Page Viewed"]


# ---------------------------------------------------------------------------------------------
# Quiet hours (contact's time zone, DST-correct)
# ---------------------------------------------------------------------------------------------


def test_quiet_hours_depend_on_the_contacts_time_zone() -> None:
    moment = datetime(2025, 6, 4, 23, 30, tzinfo=UTC)  # 19:30 New York, 08:30 Tokyo next day
    new_york = engine().decide(request(send(), now=moment, time_zone="America/New_York"))
    tokyo = engine().decide(request(send(), now=moment, time_zone="Asia/Tokyo"))
    berlin = engine().decide(request(send(), now=moment, time_zone="Europe/Berlin"))  # 01:30
    assert verdict(new_york) == "allow"
    assert verdict(tokyo) == "allow"
    assert verdict(berlin) == "defer"
    assert berlin.actions[-1].until == datetime(2025, 6, 5, 6, 0, tzinfo=UTC)  # 08:00 CEST
    assert (
        berlin.actions[-1].reason == "quiet hours 20:00-08:00 in Europe/Berlin (local time 01:30)"
    )


def test_quiet_hours_evening_defers_to_8am_next_day() -> None:
    evening = datetime(2025, 6, 5, 0, 15, tzinfo=UTC)  # 20:15 EDT on June 4
    decision = engine().decide(request(send(), now=evening, time_zone="America/New_York"))
    assert decision.actions[-1].until == datetime(2025, 6, 5, 12, 0, tzinfo=UTC)  # 08:00 EDT


def test_quiet_hours_across_spring_forward() -> None:
    # New York moves from EST (-5) to EDT (-4) at 02:00 on 2025-03-09.
    before = datetime(2025, 3, 9, 3, 0, tzinfo=UTC)  # 22:00 EST on March 8
    decision = engine().decide(request(send(), now=before, time_zone="America/New_York"))
    until = decision.actions[-1].until
    assert until == datetime(2025, 3, 9, 12, 0, tzinfo=UTC)  # 08:00 EDT, not 13:00
    assert until is not None
    assert until.astimezone(ZoneInfo("America/New_York")).hour == 8


def test_quiet_hours_across_fall_back() -> None:
    # New York moves from EDT (-4) back to EST (-5) at 02:00 on 2025-11-02.
    before = datetime(2025, 11, 2, 2, 0, tzinfo=UTC)  # 22:00 EDT on November 1
    decision = engine().decide(request(send(), now=before, time_zone="America/New_York"))
    assert decision.actions[-1].until == datetime(2025, 11, 2, 13, 0, tzinfo=UTC)  # 08:00 EST


def test_quiet_hours_ending_inside_a_dst_gap_move_to_the_first_real_minute() -> None:
    policies = parse_policies({"quiet_hours": {"start": "23:00", "end": "02:30"}})
    night = datetime(2025, 3, 9, 5, 0, tzinfo=UTC)  # 00:00 EST; 02:30 does not exist that night
    decision = engine(NURTURE, policies=policies).decide(
        request(send(), now=night, time_zone="America/New_York")
    )
    assert decision.actions[-1].until == datetime(2025, 3, 9, 7, 0, tzinfo=UTC)  # 03:00 EDT


def test_quiet_hours_window_inside_one_day() -> None:
    policies = parse_policies({"quiet_hours": {"start": "12:00", "end": "13:30"}})
    lunch = datetime(2025, 6, 4, 12, 10, tzinfo=UTC)
    decision = engine(NURTURE, policies=policies).decide(request(send(), now=lunch))
    assert decision.actions[-1].until == datetime(2025, 6, 4, 13, 30, tzinfo=UTC)


def test_quiet_hours_can_be_disabled() -> None:
    policies = parse_policies({"quiet_hours": {"enabled": False}})
    night = datetime(2025, 6, 4, 2, 0, tzinfo=UTC)
    assert verdict(engine(NURTURE, policies=policies).decide(request(send(), now=night))) == "allow"


# ---------------------------------------------------------------------------------------------
# Frequency cap
# ---------------------------------------------------------------------------------------------


def test_fourth_marketing_email_in_a_week_waits_until_the_oldest_leaves_the_window() -> None:
    oldest = NOW - timedelta(days=6, hours=20, minutes=7)
    sends = [oldest, NOW - timedelta(days=3), NOW - timedelta(hours=5)]
    decision = engine().decide(request(send(), recent_marketing_sends=sends))
    assert verdict(decision) == "defer"
    assert decision.actions[-1].until == oldest + timedelta(days=7)  # 2025-06-04 18:53 UTC
    assert "3 marketing sends in the last 7 days (max 3)" in decision.actions[-1].reason


def test_third_marketing_email_in_a_week_goes() -> None:
    sends = [NOW - timedelta(days=2), NOW - timedelta(days=1)]
    assert verdict(engine().decide(request(send(), recent_marketing_sends=sends))) == "allow"


def test_sends_older_than_the_window_do_not_count() -> None:
    sends = [NOW - timedelta(days=7), NOW - timedelta(days=8), NOW - timedelta(days=1)]
    assert verdict(engine().decide(request(send(), recent_marketing_sends=sends))) == "allow"


def test_cap_release_inside_quiet_hours_waits_for_the_morning() -> None:
    oldest = datetime(2025, 5, 29, 1, 0, tzinfo=UTC)  # leaves the window 21:00 EDT June 4
    sends = [oldest, NOW - timedelta(days=2), NOW - timedelta(days=1)]
    decision = engine().decide(
        request(send(), time_zone="America/New_York", recent_marketing_sends=sends)
    )
    assert decision.actions[-1].until == datetime(2025, 6, 5, 12, 0, tzinfo=UTC)  # 08:00 EDT


def test_cap_does_not_apply_to_sales_only_journeys_or_sms() -> None:
    sends = [NOW - timedelta(days=d) for d in (1, 2, 3)]
    sales = engine().decide(request(send("Demo Follow-up"), recent_marketing_sends=sends))
    sms = engine().decide(request(send(channel="sms"), recent_marketing_sends=sends))
    assert verdict(sales) == "allow"
    assert verdict(sms) == "allow"


def test_cap_size_is_configurable() -> None:
    policies = parse_policies({"frequency_cap": {"max_sends": 5}})
    sends = [NOW - timedelta(days=d) for d in (1, 2, 3, 4)]
    decision = engine(NURTURE, policies=policies).decide(
        request(send(), recent_marketing_sends=sends)
    )
    assert verdict(decision) == "allow"


# ---------------------------------------------------------------------------------------------
# Forward chaining and the trace
# ---------------------------------------------------------------------------------------------


def test_demo_request_chains_hand_raiser_to_route_now_to_nurture_stepping_aside() -> None:
    webinar_nurture = {**WEBINAR, "category": "nurture", "priority": None}
    decision = engine(DEMO, webinar_nurture).decide(
        request(
            EventOccurred(name="Demo Requested"),
            active_enrollments=[active("Webinar Follow-up", 10, group="events")],
        )
    )
    fired = rules_fired(decision)
    chain = ["hand_raiser.detected", "hand_raiser.route_now", "hand_raiser.steps_aside"]
    assert [rule for rule in fired if rule in chain] == chain
    by_rule = {entry.rule: entry for entry in decision.trace}
    assert by_rule["hand_raiser.detected"].derived == ["signal:hand_raiser"]
    assert by_rule["hand_raiser.route_now"].facts_seen["h"]["name"] == "hand_raiser"
    assert by_rule["hand_raiser.steps_aside"].facts_seen["a"]["journey"] == "Webinar Follow-up"
    assert kinds(decision) == [("pause", "Webinar Follow-up"), ("enroll", "Demo Follow-up")]
    assert decision.signals == ["hand_raiser", "route_now"]
    assert decision.actions[0].reason == "hand-raiser (Demo Requested) routed to sales now"


def test_hand_raiser_keeps_nurture_from_starting() -> None:
    both = {**NURTURE, "trigger": {"event": "Demo Requested"}, "exclusivity_group": None}
    decision = engine(DEMO, both).decide(request(EventOccurred(name="Demo Requested")))
    assert kinds(decision) == [("enroll", "Demo Follow-up"), ("suppress", "Whitepaper Nurture")]
    assert "hand_raiser.suppresses_category" in rules_fired(decision)


def test_sales_activity_chain_is_visible_in_the_trace_with_the_facts_seen() -> None:
    decision = engine().decide(request(send(), last_sales_activity_at=NOW - timedelta(days=3)))
    fired = rules_fired(decision)
    chain = ["sales.recent_activity", "sales.active_suppresses_marketing", "send.suppressed"]
    assert [rule for rule in fired if rule in chain] == chain
    by_rule = {entry.rule: entry for entry in decision.trace}
    assert by_rule["sales.recent_activity"].facts_seen["k"]["sales_days_ago"] == 3.0
    assert by_rule["sales.recent_activity"].derived == ["signal:sales_active"]
    assert by_rule["sales.active_suppresses_marketing"].derived == ["block:sales_active"]
    assert by_rule["send.suppressed"].facts_seen["b"]["code"] == "sales"
    assert decision.actions[-1].reason == (
        "sales is working this contact (activity 3 days ago; 14-day hold)"
    )


def test_decisions_where_no_rule_fires_are_empty_and_safe() -> None:
    # A fresh ruleset: durable_rules 2.0.28 crashed the process when a session in which no
    # action ran was deleted from a never-used slot; the engine primes its slots first.
    quiet_policies = parse_policies({"frequency_cap": {"max_sends": 9}})
    eng = compile_rules(journeys(NURTURE), quiet_policies)
    for minute in range(2_000):
        decision = eng.decide(request(Review(), now=NOW + timedelta(minutes=minute)))
        assert decision.trace == []
        assert decision.actions == []
    assert decision.ruleset_version == eng.version
    assert live_sessions() == 0


def test_decision_survives_a_json_round_trip() -> None:
    decision = engine().decide(
        request(send(), time_zone="Asia/Tokyo", recent_marketing_sends=[NOW - timedelta(days=1)])
    )
    assert Decision.model_validate_json(decision.model_dump_json()) == decision


# ---------------------------------------------------------------------------------------------
# Versioning, sessions and threads
# ---------------------------------------------------------------------------------------------


def test_ruleset_version_follows_definitions_and_policies() -> None:
    base = engine()
    assert engine().version == base.version
    assert engine() is base
    assert engine(DEMO, TRIAL).version != base.version
    stricter = parse_policies({"frequency_cap": {"max_sends": 2}})
    assert engine(policies=stricter).version != base.version


def _variety() -> list[DecisionRequest]:
    """Many different decisions: every occurrence kind, policy and contest."""
    occurrences: Sequence[Occurrence] = [
        EventOccurred(name="Demo Requested"),
        EventOccurred(name="Trial Started", properties={"plan": "pro"}),
        EventOccurred(name="Content Downloaded"),
        EventOccurred(name="Webinar Attended"),
        EventOccurred(name="Page Viewed"),
        ListEntered(list="Newsletter Subscribers"),
        StageEntered(stage="Customer"),
        send(),
        send("Demo Follow-up"),
        Review(),
    ]
    runs = [[], [active("Trial Onboarding", 50)], [active("Whitepaper Nurture", 10)]]
    requests = []
    for i in range(240):
        requests.append(
            request(
                occurrences[i % len(occurrences)],
                now=NOW + timedelta(hours=7 * i),
                time_zone=("America/New_York", "Asia/Tokyo", "UTC")[i % 3],
                stage=("Lead", "MQL", "Customer")[i % 7 % 3],
                consent=ConsentFacts(unsubscribed=i % 11 == 0),
                active_enrollments=runs[i % 3],
                last_sales_activity_at=NOW - timedelta(days=i % 20),
                recent_marketing_sends=[
                    NOW + timedelta(hours=7 * i - 24 * d) for d in range(i % 5)
                ],
            )
        )
    return requests


def test_ten_thousand_decisions_leave_no_live_session() -> None:
    # durable_rules holds at most 1,024 live sessions per ruleset; a leak would fail here.
    eng = engine()
    requests = _variety()
    for i in range(10_000):
        eng.decide(requests[i % len(requests)])
    assert live_sessions() == 0


def test_threads_deciding_at_once_agree_with_one_thread() -> None:
    eng = engine()
    requests = _variety()
    expected = [eng.decide(r).model_dump() for r in requests]
    start = threading.Barrier(8)

    def decide_all(offset: int) -> list[dict[str, Any]]:
        start.wait()
        order = requests[offset:] + requests[:offset]
        results = [eng.decide(r).model_dump() for r in order]
        return results[-offset:] + results[:-offset] if offset else results

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(decide_all, range(0, 240, 30)))
    assert all(outcome == expected for outcome in outcomes)
    assert live_sessions() == 0


# ---------------------------------------------------------------------------------------------
# Policies file and request validation
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Suppression lists, holds, open opportunities, resuming, requests by name
# ---------------------------------------------------------------------------------------------

DNC = {"suppression_lists": ["Do Not Contact"], "lists": ["Do Not Contact"]}
HOLD = Policies(hold=HoldPolicy(lists=["Sales Hold"]))


def test_a_suppression_list_keeps_marketing_out_and_names_the_list() -> None:
    nurture = engine().decide(request(EventOccurred(name="Content Downloaded"), **DNC))
    assert kinds(nurture) == [("suppress", "Whitepaper Nurture")]
    assert explain_decision(nurture) == [
        "not enrolled in Whitepaper Nurture: on suppression list Do Not Contact"
    ]
    mail = engine().decide(request(send(), **DNC))
    assert kinds(mail) == [("suppress", "Whitepaper Nurture")]
    assert mail.actions[0].reason == "on suppression list Do Not Contact"
    receipt = engine().decide(request(send(transactional=True), **DNC))
    assert kinds(receipt) == [("allow", "Whitepaper Nurture")]
    demo = engine().decide(request(EventOccurred(name="Demo Requested"), **DNC))
    assert ("enroll", "Demo Follow-up") in kinds(demo), "not marketing: still enrolls"


def test_the_policy_can_make_a_suppression_list_block_transactional_mail_too() -> None:
    strict = Policies.model_validate({"suppression": {"lists_block_transactional": True}})
    receipt = engine(policies=strict).decide(request(send(transactional=True), **DNC))
    assert kinds(receipt) == [("suppress", "Whitepaper Nurture")]
    demo = engine(policies=strict).decide(request(EventOccurred(name="Demo Requested"), **DNC))
    assert kinds(demo) == [("suppress", "Demo Follow-up")]


def test_a_hold_list_pauses_everything_and_leaving_it_resumes() -> None:
    running = [active("Trial Onboarding", 50), active("Customer Onboarding", 70, None)]
    held = engine(policies=HOLD).decide(
        request(ListEntered(list="Sales Hold"), lists=["Sales Hold"], active_enrollments=running)
    )
    assert kinds(held) == [("pause", "Trial Onboarding"), ("pause", "Customer Onboarding")]
    assert {a.by for a in held.actions} == {"hold"}
    assert held.actions[0].reason == "all automation held: on list Sales Hold"
    receipt = engine(policies=HOLD).decide(request(send(transactional=True), lists=["Sales Hold"]))
    assert kinds(receipt) == [("suppress", "Whitepaper Nurture")]
    paused = [a.model_copy(update={"paused": True, "paused_by": "hold"}) for a in running]
    free = engine(policies=HOLD).decide(request(Review(), active_enrollments=paused))
    assert kinds(free) == [("resume", "Trial Onboarding"), ("resume", "Customer Onboarding")]
    still = engine(policies=HOLD).decide(
        request(Review(), lists=["Sales Hold"], active_enrollments=paused)
    )
    assert kinds(still) == []


def test_no_automated_marketing_while_an_opportunity_is_open() -> None:
    open_deal = {"traits": {"opportunity_open": True}}
    mail = engine().decide(request(send(), **open_deal))
    assert mail.actions[0].reason == (
        "an opportunity is open: no automated marketing until it is won or lost"
    )
    assert kinds(engine().decide(request(send(transactional=True), **open_deal))) == [
        ("allow", "Whitepaper Nurture")
    ]
    closed = engine().decide(request(send(), traits={"opportunity_open": False}))
    assert kinds(closed) == [("allow", "Whitepaper Nurture")]


def test_a_pause_names_who_paused_and_the_journey_resumes_once_that_ended() -> None:
    preempted = engine().decide(
        request(
            EventOccurred(name="Demo Requested"),
            active_enrollments=[active("Trial Onboarding", 50)],
        )
    )
    assert preempted.actions[0].by == "Demo Follow-up"
    paused = active("Trial Onboarding", 50, paused=True, paused_by="Demo Follow-up")
    held = engine().decide(
        request(Review(), active_enrollments=[paused, active("Demo Follow-up", 90)])
    )
    assert kinds(held) == []
    resumed = engine().decide(request(Review(), active_enrollments=[paused]))
    assert kinds(resumed) == [("resume", "Trial Onboarding")]
    assert explain_decision(resumed) == [
        "resumed Trial Onboarding: nothing holds it any more (what paused it has ended)"
    ]


def test_a_hand_raisers_pause_holds_while_sales_has_the_lead() -> None:
    nurture = {**NURTURE, "exclusivity_group": "nurture"}
    raised = engine(DEMO, nurture).decide(
        request(
            EventOccurred(name="Contact Sales Submitted"),
            active_enrollments=[active("Whitepaper Nurture", 10, "nurture")],
        )
    )
    assert [(a.kind, a.by) for a in raised.actions] == [("pause", "hand-raiser")]
    paused = active("Whitepaper Nurture", 10, "nurture", paused=True, paused_by="hand-raiser")
    with_sales = request(Review(), active_enrollments=[paused], handoff_open=True)
    assert kinds(engine(DEMO, nurture).decide(with_sales)) == []
    done = request(Review(), active_enrollments=[paused], handoff_open=False)
    assert kinds(engine(DEMO, nurture).decide(done)) == [("resume", "Whitepaper Nurture")]


def test_on_resume_exit_ends_a_paused_journey_instead() -> None:
    trial = {**TRIAL, "on_resume": "exit"}
    paused = active("Trial Onboarding", 50, paused=True, paused_by="Demo Follow-up")
    decision = engine(DEMO, trial).decide(request(Review(), active_enrollments=[paused]))
    assert kinds(decision) == [("exit", "Trial Onboarding")]


def test_a_journey_without_a_trigger_enrolls_on_a_request_naming_it() -> None:
    recycled = {"name": "Re-nurture", "category": "nurture", "exclusivity_group": "main"}
    asked = EventOccurred(
        name=ENROLL_REQUEST_EVENT, properties={"journey": "Re-nurture", "reason": "recycled"}
    )
    decision = engine(DEMO, recycled).decide(request(asked))
    assert kinds(decision) == [("enroll", "Re-nurture")]
    assert decision.actions[0].reason == (
        "triggered by a request to enroll in Re-nurture (recycled)"
    )
    refused = engine(DEMO, recycled).decide(request(asked, **DNC))
    assert kinds(refused) == [("suppress", "Re-nurture")]
    other = EventOccurred(name=ENROLL_REQUEST_EVENT, properties={"journey": "Demo Follow-up"})
    assert kinds(engine(DEMO, recycled).decide(request(other))) == [("enroll", "Demo Follow-up")]


def test_shipped_policies_file_holds_the_spec_defaults() -> None:
    policies = read_file(POLICIES, REPO / "config" / "policies.yaml")
    assert policies == Policies(hold=HoldPolicy(lists=["Sales Hold"]))
    assert policies.frequency_cap.max_sends == 3
    assert policies.suppression.sales_activity_days == 14
    assert policies.priorities == {"demo_ready": 90, "trial": 50, "nurture": 10}


def test_bad_policies_file_is_a_config_error_naming_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "policies.yaml"
    bad.write_text("frequency_cap:\n  max_sends: 0\n  colour: blue\n")
    with pytest.raises(ConfigError) as caught:
        read_file(POLICIES, bad)
    message = str(caught.value)
    assert f"{bad}: frequency_cap.max_sends: " in message
    assert f"{bad}: frequency_cap.colour: unknown field" in message


def test_unquoted_quiet_hours_time_is_refused_with_a_hint(tmp_path: Path) -> None:
    bad = tmp_path / "policies.yaml"
    bad.write_text("quiet_hours:\n  start: 20:00\n")
    with pytest.raises(ConfigError, match=r"quiet_hours.start: write times as quoted 'HH:MM'"):
        read_file(POLICIES, bad)


def test_unknown_time_zone_and_naive_now_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        request(Review(), time_zone="Mars/Olympus")
    with pytest.raises(ValueError, match=r"contact\.now must be timezone-aware"):
        request(Review(), now=datetime(2025, 6, 4, 15, 0))
