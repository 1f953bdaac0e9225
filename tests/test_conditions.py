"""The condition language: parsing, evaluation and the exact moment a result expires."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from audience.conditions import (
    SHIPPED_DEMAND_STATES,
    Condition,
    Snapshot,
    condition_json_schema,
    evaluate,
    next_change_at,
    parse_condition,
    referenced_demand_states,
    referenced_lists,
)
from audience.facts import ContactFacts, EventRecord
from lifecycle.stages import STAGES as STAGE_ORDER
from revops.durations import format_duration, parse_duration
from revops.errors import ConfigError

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)
TICK = timedelta(microseconds=1)

PRICING_3_IN_7 = {"event": "Pricing Page Viewed", "at_least": 3, "within": "7d"}


def facts(
    now: datetime,
    events: list[tuple[str, datetime]] | None = None,
    *,
    props: dict[str, Any] | None = None,
    **fields: Any,
) -> ContactFacts:
    records = [EventRecord(name=n, at=at, properties=props or {}) for n, at in events or []]
    return ContactFacts(contact_id="c1", now=now, events=records, **fields)


def holds(data: object, contact: ContactFacts) -> bool:
    return evaluate(parse_condition(data), contact)


def views(*days: float) -> list[tuple[str, datetime]]:
    return [("Pricing Page Viewed", T0 + d * DAY) for d in days]


# --- Windows and their expiry ----------------------------------------------------------------


def test_three_pricing_views_in_a_week_qualify_until_the_first_one_is_seven_days_old() -> None:
    condition = parse_condition(PRICING_3_IN_7)
    timeline = views(0, 3, 6)

    assert not evaluate(condition, facts(T0 + 6 * DAY - TICK, timeline))
    at_third_view = facts(T0 + 6 * DAY, timeline)
    assert evaluate(condition, at_third_view)
    assert next_change_at(condition, at_third_view) == T0 + 7 * DAY
    assert evaluate(condition, facts(T0 + 7 * DAY - TICK, timeline))

    after = facts(T0 + 7 * DAY, timeline)
    assert not evaluate(condition, after)
    assert next_change_at(condition, after) is None


def test_pricing_views_spread_over_more_than_a_week_never_qualify() -> None:
    condition = parse_condition(PRICING_3_IN_7)
    timeline = views(0, 3, 8)
    for hour in range(24 * 20):
        assert not evaluate(condition, facts(T0 + timedelta(hours=hour), timeline))
    assert next_change_at(condition, facts(T0 + 8 * DAY, timeline)) is None


def test_a_demo_request_qualifies_for_exactly_fourteen_days() -> None:
    condition = parse_condition({"event": "Demo Requested", "within": "14d"})
    timeline = [("Demo Requested", T0)]
    assert evaluate(condition, facts(T0, timeline))
    assert next_change_at(condition, facts(T0, timeline)) == T0 + 14 * DAY
    assert evaluate(condition, facts(T0 + 14 * DAY - TICK, timeline))
    assert not evaluate(condition, facts(T0 + 14 * DAY, timeline))


def test_without_a_window_every_past_event_counts_forever() -> None:
    condition = parse_condition({"event": "Webinar Attended", "at_least": 2})
    contact = facts(T0 + 400 * DAY, [("Webinar Attended", T0), ("Webinar Attended", T0 + DAY)])
    assert evaluate(condition, contact)
    assert next_change_at(condition, contact) is None


def test_no_pricing_view_for_thirty_days_becomes_true_when_the_last_view_ages_out() -> None:
    quiet = parse_condition({"event": "Pricing Page Viewed", "at_most": 0, "within": "30d"})
    contact = facts(T0 + 10 * DAY, views(0, 5))
    assert not evaluate(quiet, contact)
    assert next_change_at(quiet, contact) == T0 + 35 * DAY
    assert holds({"event": "Pricing Page Viewed", "at_most": 0, "within": "30d"}, facts(T0))


def test_at_most_caps_the_count() -> None:
    once_or_twice = {"event": "Pricing Page Viewed", "at_least": 1, "at_most": 2, "within": "7d"}
    assert holds(once_or_twice, facts(T0 + 6 * DAY, views(5, 6)))
    assert not holds(once_or_twice, facts(T0 + 6 * DAY, views(4, 5, 6)))
    contact = facts(T0 + 6 * DAY, views(4, 5, 6))
    assert next_change_at(parse_condition(once_or_twice), contact) == T0 + 11 * DAY


def test_an_event_stamped_in_the_future_counts_from_its_own_time() -> None:
    condition = parse_condition({"event": "Demo Requested", "within": "1d"})
    contact = facts(T0, [("Demo Requested", T0 + timedelta(minutes=5))])
    assert not evaluate(condition, contact)
    assert next_change_at(condition, contact) == T0 + timedelta(minutes=5)


def test_any_of_two_windows_expires_when_the_later_one_does() -> None:
    condition = parse_condition(
        {
            "any": [
                {"event": "Demo Requested", "within": "14d"},
                {"event": "Contact Sales Submitted", "within": "30d"},
            ]
        }
    )
    contact = facts(T0 + DAY, [("Contact Sales Submitted", T0), ("Demo Requested", T0 + DAY)])
    assert next_change_at(condition, contact) == T0 + 30 * DAY


def test_a_window_that_cannot_matter_sets_no_timer() -> None:
    condition = parse_condition(
        {
            "all": [
                {"trait": "industry", "eq": "Software"},
                {"event": "Demo Requested", "within": "14d"},
            ]
        }
    )
    contact = facts(T0, [("Demo Requested", T0)], traits={"industry": "Retail"})
    assert not evaluate(condition, contact)
    assert next_change_at(condition, contact) is None


def test_next_change_skips_flips_that_do_not_change_the_result() -> None:
    # A true until day 7, B true until day 10, then A again true on day 8 (a future event).
    condition = parse_condition(
        {"any": [{"event": "A", "within": "7d"}, {"event": "B", "within": "10d"}]}
    )
    contact = facts(T0, [("A", T0), ("B", T0), ("A", T0 + 8 * DAY)])
    assert next_change_at(condition, contact) == T0 + 15 * DAY


def test_event_property_filters_use_the_same_operators_as_traits() -> None:
    condition = {
        "event": "Page Viewed",
        "where": {"path": {"contains": "/pricing"}, "context.locale": {"in": ["en-US"]}},
    }
    props = {"path": "/en/Pricing/enterprise", "context": {"locale": "en-us"}}
    assert holds(condition, facts(T0, [("Page Viewed", T0)], props=props))
    assert not holds(condition, facts(T0, [("Page Viewed", T0)], props={"path": "/blog"}))


# --- Traits, scores, stage, lists, demand states -------------------------------------------


@pytest.mark.parametrize(
    ("condition", "traits", "expected"),
    [
        ({"trait": "industry", "in": ["Software", "Fintech"]}, {"industry": "software"}, True),
        ({"trait": "industry", "not_in": ["Retail"]}, {}, True),
        ({"trait": "industry", "eq": "Software"}, {}, False),
        ({"trait": "industry", "ne": "Software"}, {"industry": ""}, True),
        ({"trait": "company_size", "gte": 1000}, {"company_size": "1200"}, True),
        ({"trait": "company_size", "between": [200, 999]}, {"company_size": 999}, True),
        ({"trait": "company_size", "between": [200, 999]}, {"company_size": 1000}, False),
        ({"trait": "company_size", "lt": 200}, {"company_size": "unknown"}, False),
        ({"trait": "company_size", "gt": 10, "lt": 20}, {"company_size": 15}, True),
        ({"trait": "title", "matches": "vp.*"}, {"title": "VP Marketing"}, True),
        ({"trait": "title", "matches": "vp"}, {"title": "SVP Sales"}, False),
        ({"trait": "title", "contains": "chief"}, {"title": "Chief Revenue Officer"}, True),
        ({"trait": "interests", "contains": "ABM"}, {"interests": ["abm", "seo"]}, True),
        ({"trait": "interests", "in": ["seo"]}, {"interests": ["abm", "seo"]}, True),
        ({"trait": "country", "exists": True}, {"country": "DE"}, True),
        ({"trait": "country", "exists": False}, {"country": None}, True),
        (
            {"trait": "email_domain", "domain_in": ["gmail.com"]},
            {"email_domain": "GMAIL.com"},
            True,
        ),
        ({"trait": "email", "domain_in": ["@acme.com"]}, {"email": "jo@eu.acme.com"}, True),
        ({"trait": "email", "domain_in": ["acme.com"]}, {"email": "jo@notacme.com"}, False),
        ({"trait": "trial", "eq": True}, {"trial": "true"}, True),
        ({"trait": "company.tier", "eq": 1}, {"company": {"tier": 1}}, True),
    ],
)
def test_trait_operators(condition: dict[str, Any], traits: dict[str, Any], expected: bool) -> None:
    assert holds(condition, facts(T0, traits=traits)) is expected


def test_scores_compare_numerically_and_an_unscored_contact_has_zero() -> None:
    assert holds({"score": "fit", "gte": 60}, facts(T0, scores={"fit": 60.0}))
    assert not holds({"score": "fit", "gt": 60}, facts(T0, scores={"fit": 60.0}))
    assert holds({"score": "engagement", "lte": 0}, facts(T0))


def test_stage_at_least_follows_the_lifecycle_order() -> None:
    assert STAGE_ORDER.index("SAL") == STAGE_ORDER.index("MQL") + 1
    assert holds({"stage": {"at_least": "MQL"}}, facts(T0, stage="SQL"))
    assert not holds({"stage": {"at_least": "MQL"}}, facts(T0, stage="Lead"))
    assert holds({"stage": {"at_most": "mql"}}, facts(T0, stage="Lead"))
    assert holds({"stage": {"in": ["SAL", "SQL"]}}, facts(T0, stage="SAL"))


def test_list_membership_is_read_from_the_facts() -> None:
    contact = facts(T0, lists=frozenset({"Enterprise"}))
    assert holds({"list": "Enterprise"}, contact)
    assert holds({"not": {"list": "SMB"}}, contact)


def test_demand_state_order_comes_from_the_snapshot() -> None:
    condition = parse_condition({"demand_state": {"at_least": "solution-aware"}})
    contact = facts(T0, demand_state="technical-validating")
    assert evaluate(condition, contact)
    custom = Snapshot.of(contact, demand_state_order=("technical-validating", "solution-aware"))
    assert not evaluate(condition, custom)
    assert holds({"demand_state": {"exists": False}}, facts(T0))
    assert holds(
        {"demand_state": {"in": ["post-purchase"]}}, facts(T0, demand_state="post-purchase")
    )


def test_combinators() -> None:
    contact = facts(T0, traits={"industry": "Software"})
    assert holds({"all": []}, contact)
    assert not holds({"any": []}, contact)
    assert holds(
        {"all": [{"trait": "industry", "eq": "software"}, {"not": {"list": "X"}}]}, contact
    )
    assert holds({"any": [{"list": "X"}, {"trait": "industry", "exists": True}]}, contact)


# --- Parsing and errors ------------------------------------------------------------------------


def test_bad_duration_names_the_field_path() -> None:
    bad = {"any": [{"event": "Pricing Page Viewed", "within": "7x"}]}
    with pytest.raises(ConfigError) as caught:
        parse_condition(bad, where="lists.yaml: lists[2].when")
    assert str(caught.value) == (
        "lists.yaml: lists[2].when.any[0].within: '7x' is not a duration (use 30m, 12h, 7d, 2w)"
    )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"trait": "industry"}, "trigger: needs an operator"),
        ({"trait": "industry", "gtee": 3}, "trigger.gtee: unknown field"),
        ({"tait": "industry"}, "trigger: a condition needs exactly one of"),
        ({"stage": {"at_least": "Prospect"}}, "trigger.stage: unknown stage 'Prospect'"),
        ({"not": {"trait": "t", "matches": "("}}, "trigger.not.matches: '(' is not a valid"),
        ({"event": "X", "at_least": 3, "at_most": 1}, "trigger: at_most (1) is below at_least"),
        ({"event": "X", "at_least": "three"}, "trigger.at_least: Input should be a valid integer"),
        ({"all": {"list": "A"}}, "trigger.all: should be a list"),
    ],
)
def test_parse_errors_name_the_file_and_field(data: object, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_condition(data, where="journey.yaml: trigger")
    assert str(caught.value).startswith("journey.yaml: " + expected)


def test_durations() -> None:
    assert parse_duration("30m") == timedelta(minutes=30)
    assert parse_duration("12h") == timedelta(hours=12)
    assert parse_duration("7d") == timedelta(days=7)
    assert parse_duration("2W") == timedelta(weeks=2)
    assert parse_duration(90) == timedelta(seconds=90)
    assert format_duration(timedelta(days=14)) == "14d"
    assert format_duration(timedelta(seconds=90)) == 90
    for bad in ("7x", "0d", "-1d", "", 1.5, True):
        with pytest.raises(ConfigError):
            parse_duration(bad)


def test_a_parsed_condition_dumps_back_to_the_same_yaml_shape() -> None:
    data = {
        "any": [
            {"all": [{"list": "Target Industry"}, PRICING_3_IN_7]},
            {"event": "Demo Requested", "within": "14d", "where": {"plan": {"in": ["pro"]}}},
            {"not": {"demand_state": {"at_least": "post-purchase"}}},
        ]
    }
    condition = parse_condition(data)
    dumped = condition.model_dump(exclude_none=True)
    assert dumped["any"][0]["all"][1] == {**PRICING_3_IN_7, "where": {}}
    assert parse_condition(dumped) == condition


def test_references_are_collected_for_dependency_ordering() -> None:
    condition: Condition = parse_condition(
        {"all": [{"list": "A"}, {"any": [{"not": {"list": "B"}}, {"demand_state": {"eq": "x"}}]}]}
    )
    assert referenced_lists(condition) == {"A", "B"}
    assert referenced_demand_states(condition) == {"x"}


def test_json_schema_describes_every_condition_form() -> None:
    schema = condition_json_schema()
    forms = set(schema["$defs"])
    assert {"TraitCondition", "EventCondition", "AllCondition", "NotCondition"} <= forms
    assert "in" in schema["$defs"]["TraitCondition"]["properties"]


# --- Property: next_change_at is exact -------------------------------------------------------

MINUTE = timedelta(minutes=1)


def _event_leaf(name: str, least: int | None, extra: int | None, within: int | None) -> object:
    leaf: dict[str, object] = {"event": name}
    if least is not None:
        leaf["at_least"] = least
    if extra is not None:
        leaf["at_most"] = (least or 0) + extra
    if within is not None:
        leaf["within"] = f"{within}m"
    return leaf


_leaves = st.builds(
    _event_leaf,
    name=st.sampled_from(["A", "B"]),
    least=st.none() | st.integers(0, 3),
    extra=st.none() | st.integers(0, 2),
    within=st.none() | st.integers(1, 120),
)
_trees = st.recursive(
    _leaves,
    lambda kids: st.one_of(
        st.lists(kids, max_size=3).map(lambda xs: {"all": xs}),
        st.lists(kids, max_size=3).map(lambda xs: {"any": xs}),
        kids.map(lambda x: {"not": x}),
    ),
    max_leaves=6,
)
_timelines = st.lists(st.tuples(st.sampled_from(["A", "B"]), st.integers(0, 300)), max_size=12)


@settings(max_examples=300, deadline=None)
@given(tree=_trees, timeline=_timelines, start=st.integers(0, 400))
def test_result_never_changes_before_next_change_at_and_does_change_there(
    tree: object, timeline: list[tuple[str, int]], start: int
) -> None:
    condition = parse_condition(tree)
    events = sorted(((name, T0 + minute * MINUTE) for name, minute in timeline), key=lambda e: e[1])
    snap = Snapshot.of(facts(T0 + start * MINUTE, events))
    result = condition.holds(snap)
    moment = next_change_at(condition, snap)
    horizon = T0 + 500 * MINUTE  # after every event and window edge
    end = moment if moment is not None else horizon
    minute = snap.now + MINUTE
    while minute < end:
        assert condition.holds(snap.at(minute)) == result, f"changed at {minute} before {moment}"
        minute += MINUTE
    if moment is not None:
        assert moment > snap.now
        assert condition.holds(snap.at(moment - TICK)) == result
        assert condition.holds(snap.at(moment)) != result


def test_without_an_order_demand_states_rank_as_the_shipped_file_says() -> None:
    shipped = yaml.safe_load((SHIPPED_DEMAND_STATES).read_text(encoding="utf-8"))
    names = tuple(state["name"] for state in shipped["states"])
    assert Snapshot.of(facts(T0)).demand_state_order == names
