"""Lists and demand states: the shipped definitions, membership over time, and bad files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audience.demand_states import (
    DemandStatesConfig,
    current_demand_state,
    default_demand_states,
    evaluate_demand_state,
)
from audience.facts import ContactFacts, EventRecord
from audience.lists import (
    ListKind,
    ListsConfig,
    check_demand_state_names,
    diff_memberships,
    evaluate_memberships,
    lists_json_schema,
)
from definitions import DEMAND_STATES, LISTS, read_file
from revops.errors import ConfigError

CONFIG = Path(__file__).resolve().parent.parent / "config"
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)
TICK = timedelta(microseconds=1)
ICP = {"industry": "Software", "seniority": "VP", "company_size": 450}


@pytest.fixture(scope="module")
def lists() -> ListsConfig:
    config = read_file(LISTS, CONFIG / "lists.yaml")
    check_demand_state_names(config, default_demand_states().order, "lists.yaml")
    return config


def facts(
    now: datetime, events: list[tuple[str, datetime]] | None = None, **fields: Any
) -> ContactFacts:
    records = [
        EventRecord(name=name, at=at) for name, at in sorted(events or [], key=lambda e: e[1])
    ]
    return ContactFacts(contact_id="c1", now=now, events=records, **fields)


def views(*days: float) -> list[tuple[str, datetime]]:
    return [("Pricing Page Viewed", T0 + d * DAY) for d in days]


def members_at(
    config: ListsConfig, now: datetime, events: list[tuple[str, datetime]], **fields: Any
) -> frozenset[str]:
    return evaluate_memberships(config, facts(now, events, **fields)).members


def write(tmp_path: Path, text: str, name: str = "lists.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- The shipped lists over time -------------------------------------------------------------


def test_icp_contact_viewing_pricing_three_times_in_a_week_enters_and_leaves_on_time(
    lists: ListsConfig,
) -> None:
    timeline = views(0, 3, 6)
    assert "Pricing Engaged ICP" not in members_at(lists, T0 + 6 * DAY - TICK, timeline, traits=ICP)

    entered = evaluate_memberships(lists, facts(T0 + 6 * DAY, timeline, traits=ICP))
    assert "Pricing Engaged ICP" in entered.members
    assert entered.next_change_at == T0 + 7 * DAY  # the day-0 view leaves the 7-day window

    assert "Pricing Engaged ICP" in members_at(lists, T0 + 7 * DAY - TICK, timeline, traits=ICP)
    assert "Pricing Engaged ICP" not in members_at(lists, T0 + 7 * DAY, timeline, traits=ICP)


def test_pricing_views_on_days_0_3_8_never_enter_the_list(lists: ListsConfig) -> None:
    timeline = views(0, 3, 8)
    for hour in range(0, 24 * 20, 3):
        now = T0 + timedelta(hours=hour)
        assert "Pricing Engaged ICP" not in members_at(lists, now, timeline, traits=ICP)


def test_pricing_views_alone_do_not_qualify_outside_the_icp(lists: ListsConfig) -> None:
    outsider = {"industry": "Retail", "seniority": "VP"}
    assert "Pricing Engaged ICP" not in members_at(
        lists, T0 + 6 * DAY, views(0, 3, 6), traits=outsider
    )
    junior = {"industry": "Software", "title": "Marketing Associate"}
    assert "Pricing Engaged ICP" not in members_at(
        lists, T0 + 6 * DAY, views(0, 3, 6), traits=junior
    )


def test_senior_role_is_recognised_from_the_title(lists: ListsConfig) -> None:
    contact = {"industry": "fintech", "title": "Head of Revenue Operations"}
    assert "Pricing Engaged ICP" in members_at(lists, T0 + 6 * DAY, views(0, 3, 6), traits=contact)


def test_a_demo_request_keeps_membership_for_exactly_fourteen_days(lists: ListsConfig) -> None:
    timeline = [("Demo Requested", T0)]
    result = evaluate_memberships(lists, facts(T0, timeline))
    assert "Pricing Engaged ICP" in result.members
    assert result.next_change_at == T0 + 14 * DAY
    assert "Pricing Engaged ICP" in members_at(lists, T0 + 14 * DAY - TICK, timeline)
    later = evaluate_memberships(lists, facts(T0 + 14 * DAY, timeline))
    assert "Pricing Engaged ICP" not in later.members
    assert "Hand-Raisers" in later.members
    assert later.next_change_at == T0 + 30 * DAY


@pytest.mark.parametrize(
    ("size", "segment"),
    [
        (5000, "Enterprise"),
        (1000, "Enterprise"),
        (999, "Mid-Market"),
        (200, "Mid-Market"),
        ("150", "SMB"),
    ],
)
def test_company_size_puts_a_contact_in_exactly_one_segment(
    lists: ListsConfig, size: object, segment: str
) -> None:
    members = members_at(lists, T0, [], traits={"company_size": size})
    assert members & {"Enterprise", "Mid-Market", "SMB"} == {segment}


def test_free_and_competitor_email_domains_are_recognised(lists: ListsConfig) -> None:
    assert "Free Email Domain" in members_at(lists, T0, [], traits={"email_domain": "Gmail.com"})
    assert "Competitors" in members_at(
        lists, T0, [], traits={"email_domain": "sales@rivalcloud.io"}
    )


def test_gone_quiet_sees_the_fresh_engagement_list(lists: ListsConfig) -> None:
    # The stale snapshot says "engaged"; the fresh result of the list it refers to wins.
    stale = frozenset({"Engaged Last 30 Days"})
    old = [("Email Opened", T0)]
    result = evaluate_memberships(lists, facts(T0 + 31 * DAY, old, stage="Lead", lists=stale))
    assert "Gone Quiet" in result.members
    assert "Engaged Last 30 Days" not in result.members


# --- Nested and hand-managed lists ---------------------------------------------------------


NESTED = """
version: 1
lists:
  - name: Hot ICP
    when: {all: [{list: ICP}, {list: Hot}]}
  - name: Hot
    when: {event: Demo Requested, within: 2d}
  - name: ICP
    when: {trait: industry, eq: Software}
  - name: VIP
    kind: static
  - name: Do Not Contact
    kind: suppression
"""


def test_nested_lists_are_evaluated_after_the_lists_they_refer_to(tmp_path: Path) -> None:
    config = read_file(LISTS, write(tmp_path, NESTED))
    assert [name for name, _ in config.evaluation_order] == ["Hot", "ICP", "Hot ICP"]
    timeline = [("Demo Requested", T0)]
    result = evaluate_memberships(config, facts(T0, timeline, traits={"industry": "Software"}))
    assert result.members == {"ICP", "Hot", "Hot ICP"}
    assert result.next_change_at == T0 + 2 * DAY
    after = evaluate_memberships(
        config, facts(T0 + 2 * DAY, timeline, traits={"industry": "Software"})
    )
    assert after.members == {"ICP"}
    assert after.next_change_at is None


def test_static_lists_follow_static_members(tmp_path: Path) -> None:
    config = read_file(LISTS, write(tmp_path, NESTED))
    contact = facts(T0)
    added = evaluate_memberships(config, contact, frozenset({"VIP", "Do Not Contact"})).members
    assert added == {"VIP", "Do Not Contact"}
    removed = evaluate_memberships(config, contact, frozenset({"Do Not Contact"})).members
    assert removed == {"Do Not Contact"}
    assert diff_memberships(added, removed) == ((), ("VIP",))
    assert config.suppression == {"Do Not Contact"}
    assert config.get("VIP") is not None and config.get("VIP").kind is ListKind.STATIC  # type: ignore[union-attr]


def test_static_members_cannot_force_a_dynamic_or_deleted_list(tmp_path: Path) -> None:
    config = read_file(LISTS, write(tmp_path, NESTED))
    members = evaluate_memberships(config, facts(T0), frozenset({"Hot", "Old Campaign"})).members
    assert members == frozenset()


def test_membership_changes_are_reported_in_a_stable_order() -> None:
    entered, left = diff_memberships({"b", "z"}, {"c", "a", "b"})
    assert entered == ("a", "c")
    assert left == ("z",)


# --- Bad files -----------------------------------------------------------------------------

HEAD = "version: 1\nlists:\n"
LIST_A = "  - {name: A, when: {trait: x, eq: 1}}\n"
LIST_B = "  - {name: B, when: {trait: x, eq: 1}}\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            HEAD + LIST_A + LIST_B + "  - name: C\n    when:\n      any:\n"
            "        - {event: Pricing Page Viewed, within: 7x}\n",
            "lists[2].when.any[0].within: '7x' is not a duration (use 30m, 12h, 7d, 2w)",
        ),
        (
            "version: 1\nlists:\n  - {name: A}\n",
            "lists[0]: dynamic list 'A' needs a `when` condition",
        ),
        (
            "version: 1\nlists:\n  - {name: A, kind: static, when: {list: A}}\n",
            "lists[0]: static list 'A' is managed by hand",
        ),
        (
            "version: 1\nlists:\n  - {name: A, kind: smart, when: {list: A}}\n",
            "lists[0].kind: Input should be",
        ),
        ("lists: []\n", "version: required field is missing"),
        (
            "version: 1\nlists:\n  - {name: A, when: {trait: x, eq: 1}, colour: red}\n",
            "lists[0].colour: unknown field",
        ),
        (
            HEAD + LIST_A + LIST_A,
            "lists[1].name: duplicate list name 'A' (first defined at lists[0])",
        ),
        (
            HEAD + LIST_A + "  - {name: B, when: {not: {list: Missing}}}\n",
            "lists[1].when: list 'B' refers to unknown list 'Missing' (defined lists: A, B)",
        ),
        ("version: 1\nlists: [\n", "not valid YAML"),
        ("- just\n- a list\n", "expected a mapping with `version` and `lists`, got list"),
    ],
)
def test_bad_list_files_are_refused_naming_the_file_and_field(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        read_file(LISTS, path)
    assert str(caught.value).startswith(f"{path}: {expected}")


@pytest.mark.parametrize(
    ("text", "cycle"),
    [
        (
            HEAD + "  - {name: A, when: {list: B}}\n  - {name: B, when: {any: [{list: C}]}}\n"
            "  - {name: C, when: {not: {list: A}}}\n",
            "lists[0].when: lists refer to each other in a cycle: 'A' -> 'B' -> 'C' -> 'A'",
        ),
        ("version: 1\nlists:\n  - {name: Self, when: {list: Self}}\n", "'Self' -> 'Self'"),
    ],
)
def test_list_reference_cycles_are_refused(tmp_path: Path, text: str, cycle: str) -> None:
    with pytest.raises(ConfigError, match="cycle") as caught:
        read_file(LISTS, write(tmp_path, text))
    assert cycle in str(caught.value)


def test_a_missing_list_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        read_file(LISTS, tmp_path / "nope.yaml")


def test_unknown_demand_states_in_lists_are_refused_when_states_are_known(tmp_path: Path) -> None:
    path = write(
        tmp_path, "version: 1\nlists:\n  - {name: A, when: {demand_state: {at_least: buying}}}\n"
    )
    read_file(LISTS, path)  # without the states it cannot be checked
    with pytest.raises(ConfigError, match=r"lists\[0\].when: unknown demand state 'buying'"):
        check_demand_state_names(read_file(LISTS, path), default_demand_states().order, str(path))


def test_lists_schema_is_exported_for_editors() -> None:
    schema = lists_json_schema()
    assert schema["properties"]["lists"]["type"] == "array"
    assert "EventCondition" in schema["$defs"]


# --- Demand states -------------------------------------------------------------------------


def test_shipped_demand_states_are_the_defaults() -> None:
    shipped = read_file(DEMAND_STATES, CONFIG / "demand_states.yaml")
    assert shipped == default_demand_states()
    assert shipped.order == (
        "unaware",
        "problem-aware",
        "solution-aware",
        "partner-evaluating",
        "technical-validating",
        "commercial-negotiating",
        "post-purchase",
    )


def test_demand_state_progresses_with_behaviour() -> None:
    states = default_demand_states()
    journey = [
        (0, "Email Opened", "problem-aware"),
        (2, "Case Study Viewed", "solution-aware"),
        (4, "Case Study Viewed", "partner-evaluating"),
        (6, "Integration Docs Viewed", "partner-evaluating"),
        (7, "Security Page Viewed", "technical-validating"),
        (10, "Pricing Page Viewed", "technical-validating"),
        (13, "Pricing Page Viewed", "commercial-negotiating"),
    ]
    events: list[tuple[str, datetime]] = []
    assert current_demand_state(states, facts(T0)) == "unaware"
    for day, name, expected in journey:
        events.append((name, T0 + day * DAY))
        assert current_demand_state(states, facts(T0 + day * DAY, events)) == expected, name
    assert (
        current_demand_state(states, facts(T0 + 14 * DAY, events, stage="Customer"))
        == "post-purchase"
    )


def test_demand_state_falls_back_when_behaviour_ages_out_exactly_on_time() -> None:
    states = default_demand_states()
    events = [("Pricing Page Viewed", T0), ("Pricing Page Viewed", T0 + 2 * DAY)]
    now = evaluate_demand_state(states, facts(T0 + 2 * DAY, events))
    assert now.state == "commercial-negotiating"
    assert now.next_change_at == T0 + 5 * DAY
    later = evaluate_demand_state(states, facts(T0 + 5 * DAY, events))
    assert later.state == "solution-aware"
    assert later.next_change_at == T0 + 62 * DAY
    assert evaluate_demand_state(states, facts(T0 + 62 * DAY, events)).state == "unaware"


def test_bad_demand_state_files_name_the_field(tmp_path: Path) -> None:
    warm = "  - {name: warm, when: {demand_state: {at_least: hot}}}\n"
    text = "version: 1\nstates:\n  - {name: cold}\n" + warm
    path = write(tmp_path, text, "demand_states.yaml")
    with pytest.raises(ConfigError) as caught:
        read_file(DEMAND_STATES, path)
    assert (
        str(caught.value)
        == f"{path}: states[1].when: unknown demand state 'hot' (states: cold, warm)"
    )


def test_a_custom_state_order_ranks_demand_state_conditions() -> None:
    states = DemandStatesConfig.model_validate(
        {
            "version": 1,
            "states": [
                {"name": "cold"},
                {"name": "warm", "when": {"event": "Email Opened", "within": "7d"}},
                {"name": "sticky-warm", "when": {"demand_state": {"at_least": "warm"}}},
            ],
        }
    )
    opened = [("Email Opened", T0)]
    assert current_demand_state(states, facts(T0, opened)) == "warm"
    assert current_demand_state(states, facts(T0, opened, demand_state="warm")) == "sticky-warm"


_DAYS_EVENTS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "Email Opened",
                "Case Study Viewed",
                "Pricing Page Viewed",
                "Integration Docs Viewed",
                "Security Page Viewed",
            ]
        ),
        st.integers(0, 60),
    ),
    max_size=10,
)


@settings(max_examples=60, deadline=None)
@given(timeline=_DAYS_EVENTS, start=st.integers(0, 80))
def test_demand_state_never_changes_before_its_next_change_at(
    timeline: list[tuple[str, int]], start: int
) -> None:
    states = default_demand_states()
    events = [(name, T0 + day * DAY) for name, day in timeline]
    result = evaluate_demand_state(states, facts(T0 + start * DAY, events))
    end = result.next_change_at or T0 + 160 * DAY
    day = T0 + (start + 1) * DAY
    while day < end:
        assert current_demand_state(states, facts(day, events)) == result.state
        day += DAY
    if result.next_change_at is not None:
        assert current_demand_state(states, facts(result.next_change_at, events)) != result.state
