"""Routing and SLA plans as sales ops sees them: who gets the lead and why, fair turns,
absences and capacity respected, and the timers of the handoff."""

from __future__ import annotations

import copy
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from audience.facts import ContactFacts
from definitions import ROUTING, read_file
from handoff.routing import (
    RoutingConfig,
    RoutingDecision,
    RoutingInput,
    RoutingState,
    SlaDuration,
    apply_decision,
    next_rep_for_reassignment,
    parse_routing,
    plan_route,
    release_lead,
    route,
    sla_for,
)
from revops.errors import ConfigError

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 6, 9, 8, 0, tzinfo=UTC)  # Tuesday 10:00 in Berlin
REPO = Path(__file__).resolve().parents[1]

BASE: dict[str, Any] = {
    "version": "test-7",
    "regions": {"EMEA": ["DE", "AT", "FR"], "APAC": ["JP"]},
    "calendars": [
        {
            "name": "berlin",
            "timezone": "Europe/Berlin",
            "hours": {"mon-fri": "09:00-17:00"},
            "holidays": ["2026-05-25"],
        },
        {"name": "new-york", "timezone": "America/New_York", "hours": {"mon-fri": "09:00-17:00"}},
    ],
    "teams": [
        {"name": "dach", "manager": "mgr-emea", "calendar": "berlin", "countries": ["DE", "AT"]},
        {"name": "emea", "manager": "mgr-emea", "calendar": "berlin", "regions": ["EMEA"]},
        {
            "name": "emea-health",
            "manager": "mgr-emea",
            "calendar": "berlin",
            "regions": ["EMEA"],
            "verticals": ["Healthcare"],
        },
        {
            "name": "enterprise",
            "manager": "mgr-ent",
            "calendar": "new-york",
            "segments": ["enterprise"],
        },
    ],
    "reps": [
        {"id": "mgr-emea", "name": "M E", "email": "me@example.com", "in_rotation": False},
        {"id": "mgr-ent", "name": "M N", "email": "mn@example.com", "in_rotation": False},
        {"id": "dach-1", "name": "Dora", "email": "d1@example.com", "team": "dach"},
        {"id": "dach-2", "name": "Dieter", "email": "d2@example.com", "team": "dach"},
        {"id": "dach-3", "name": "Dana", "email": "d3@example.com", "team": "dach"},
        {"id": "dach-4", "name": "Dirk", "email": "d4@example.com", "team": "dach"},
        {"id": "emea-1", "name": "Ella", "email": "e1@example.com", "team": "emea"},
        {"id": "health-1", "name": "Hanna", "email": "h1@example.com", "team": "emea-health"},
        {"id": "ent-1", "name": "Enzo", "email": "n1@example.com", "team": "enterprise"},
        {"id": "ent-2", "name": "Erin", "email": "n2@example.com", "team": "enterprise"},
        {"id": "queue", "name": "Queue", "email": "q@example.com", "in_rotation": False},
    ],
    "named_accounts": {"BigBank.example": "ent-1"},
    "fallback": {"owner": "queue", "calendar": "berlin", "escalate_to": "mgr-emea"},
}


def make_config(**changes: Any) -> RoutingConfig:
    """BASE with top-level fields replaced, or reps patched by id via ``rep_<id>={...}``."""
    data = copy.deepcopy(BASE)
    for key, value in changes.items():
        if key.startswith("rep_"):
            rep_id = key.removeprefix("rep_").replace("_", "-")
            next(rep for rep in data["reps"] if rep["id"] == rep_id).update(value)
        else:
            data[key] = value
    return parse_routing(data, "test.yaml")


def lead(**fields: Any) -> RoutingInput:
    return RoutingInput(contact_id="c0001", **fields)


EMPTY = RoutingState()


# --- precedence -------------------------------------------------------------------------------


def test_named_account_owner_wins_over_territory_team() -> None:
    decision = route(
        make_config(), lead(account_domain="bigbank.example", country="DE"), EMPTY, NOW
    )
    assert decision.rep_id == "ent-1"
    assert decision.method == "named_account"
    assert decision.cursor is None
    assert "bigbank.example is owned by ent-1" in decision.trace[0]


def test_named_account_matches_regardless_of_case_and_www() -> None:
    decision = route(make_config(), lead(account_domain="WWW.BigBank.Example"), EMPTY, NOW)
    assert decision.rep_id == "ent-1"


def test_named_account_owner_keeps_the_account_even_at_capacity() -> None:
    config = make_config(rep_ent_1={"max_open_leads": 1})
    state = RoutingState(open_leads={"ent-1": 5})
    decision = route(config, lead(account_domain="bigbank.example"), state, NOW)
    assert decision.rep_id == "ent-1"


def test_absent_named_account_owner_is_covered_by_their_team() -> None:
    away = {"out_of_office": [{"start": "2026-06-08", "end": "2026-06-12"}]}
    config = make_config(rep_ent_1=away)
    decision = route(config, lead(account_domain="bigbank.example", country="DE"), EMPTY, NOW)
    assert decision.rep_id == "ent-2"
    assert decision.team == "enterprise"
    assert decision.method == "round_robin"
    assert any("out of office 2026-06-08..2026-06-12" in step for step in decision.trace)


def test_territory_team_round_robin_without_named_account() -> None:
    decision = route(make_config(), lead(account_domain="small.example", country="de"), EMPTY, NOW)
    assert (decision.team, decision.rep_id, decision.method) == ("dach", "dach-1", "round_robin")
    assert decision.cursor is not None
    assert (decision.cursor.team, decision.cursor.rep_id) == ("dach", "dach-1")
    assert decision.manager_id == "mgr-emea"
    assert decision.calendar == "berlin"


def test_country_team_is_preferred_over_region_team() -> None:
    plan = plan_route(make_config(), lead(country="AT", region="EMEA"), NOW)
    assert plan.teams == ("dach", "emea")


def test_region_is_inferred_from_the_country() -> None:
    decision = route(make_config(), lead(country="FR"), EMPTY, NOW)
    assert (decision.team, decision.rep_id) == ("emea", "emea-1")
    assert "territory: country FR is in region emea" in decision.trace


def test_a_country_in_two_regions_is_refused() -> None:
    with pytest.raises(ConfigError, match="DE is already in emea"):
        make_config(regions={"EMEA": ["DE"], "DACH": ["de"]})


def test_unquoted_norway_in_yaml_gets_a_helpful_error(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    data = copy.deepcopy(BASE)
    del data["regions"]
    path.write_text(_dump(data) + "regions: {EMEA: [DE, NO]}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"regions\.EMEA\[1\]: .*quote country codes"):
        read_file(ROUTING, path)


def test_vertical_specialist_is_preferred_over_generalists_in_the_territory() -> None:
    plan = plan_route(make_config(), lead(country="DE", region="EMEA", industry="healthcare"), NOW)
    assert plan.teams == ("emea-health", "dach", "emea")


def test_segment_specialist_refuses_other_segments_and_says_why() -> None:
    plan = plan_route(make_config(), lead(country="DE", segment="smb"), NOW)
    assert "enterprise" not in plan.teams
    assert (
        "territory: team enterprise skipped, it serves segments enterprise, the lead has smb"
        in plan.trace
    )


def test_lead_no_team_covers_goes_to_the_fallback_owner_with_the_reason() -> None:
    decision = route(make_config(), lead(country="JP", region="APAC"), EMPTY, NOW)
    assert decision.rep_id == "queue"
    assert decision.method == "fallback"
    assert decision.team is None
    assert decision.manager_id == "mgr-emea"
    assert decision.trace[-1] == (
        "fallback: no team covers the lead; assigned to the fallback queue owner queue"
    )
    assert any("team dach skipped, it does not cover JP" in step for step in decision.trace)


# --- availability -----------------------------------------------------------------------------


def test_out_of_office_rep_is_skipped_with_the_reason() -> None:
    config = make_config(
        rep_dach_1={"out_of_office": [{"start": "2026-06-01", "end": "2026-06-09"}]}
    )
    decision = route(config, lead(country="DE"), EMPTY, NOW)
    assert decision.rep_id == "dach-2"
    assert "round-robin in dach: skipped dach-1, out of office 2026-06-01..2026-06-09" in (
        decision.trace
    )


def test_out_of_office_is_judged_by_the_reps_own_date() -> None:
    # 20:00 UTC on the 8th is already the 9th in Sydney, where the absence begins.
    sydney_rep = {
        "timezone": "Australia/Sydney",
        "out_of_office": [{"start": "2026-06-09", "end": "2026-06-09"}],
    }
    config = make_config(rep_dach_1=sydney_rep)
    evening = datetime(2026, 6, 8, 20, 0, tzinfo=UTC)
    assert route(config, lead(country="DE"), EMPTY, evening).rep_id == "dach-2"
    assert (
        route(config, lead(country="DE"), EMPTY, evening - timedelta(hours=12)).rep_id == "dach-1"
    )


def test_rep_at_capacity_is_skipped() -> None:
    config = make_config(rep_dach_1={"max_open_leads": 3})
    decision = route(config, lead(country="DE"), RoutingState(open_leads={"dach-1": 3}), NOW)
    assert decision.rep_id == "dach-2"
    assert "round-robin in dach: skipped dach-1, at capacity (3 of 3 open leads)" in decision.trace


def test_whole_team_unavailable_falls_over_to_the_next_team() -> None:
    full = {"max_open_leads": 0}
    config = make_config(rep_dach_1=full, rep_dach_2=full, rep_dach_3=full, rep_dach_4=full)
    decision = route(config, lead(country="DE", region="EMEA"), EMPTY, NOW)
    assert (decision.team, decision.rep_id) == ("emea", "emea-1")
    assert "round-robin in dach: nobody available" in decision.trace


# --- round-robin ------------------------------------------------------------------------------


def test_round_robin_continues_after_the_last_assigned_rep() -> None:
    state = RoutingState(cursors={"dach": "dach-2"})
    assert route(make_config(), lead(country="DE"), state, NOW).rep_id == "dach-3"
    state = RoutingState(cursors={"dach": "dach-4"})
    assert route(make_config(), lead(country="DE"), state, NOW).rep_id == "dach-1"


def test_round_robin_is_fair_over_many_leads_with_one_rep_away() -> None:
    config = make_config(
        rep_dach_3={"out_of_office": [{"start": "2026-06-01", "end": "2026-06-30"}]}
    )
    state = RoutingState()
    for index in range(301):
        decision = route(config, lead(country="DE"), state, NOW + timedelta(minutes=index))
        state = apply_decision(state, decision)
    counts = Counter({rep: held for rep, held in state.open_leads.items() if held})
    assert set(counts) == {"dach-1", "dach-2", "dach-4"}
    assert max(counts.values()) - min(counts.values()) <= 1
    assert sum(counts.values()) == 301


def test_round_robin_fills_capacity_then_uses_the_fallback() -> None:
    capped = {f"rep_dach_{n}": {"max_open_leads": 2} for n in range(1, 5)}
    config = make_config(regions={}, **capped)
    state = RoutingState()
    owners = []
    for _ in range(9):
        decision = route(config, lead(country="DE"), state, NOW)
        state = apply_decision(state, decision)
        owners.append(decision.rep_id)
    assert Counter(owners) == {"dach-1": 2, "dach-2": 2, "dach-3": 2, "dach-4": 2, "queue": 1}


def test_releasing_a_lead_frees_capacity() -> None:
    config = make_config(rep_dach_1={"max_open_leads": 1})
    state = RoutingState(open_leads={"dach-1": 1})
    assert route(config, lead(country="DE"), state, NOW).rep_id == "dach-2"
    freed = release_lead(state, "dach-1")
    assert route(config, lead(country="DE"), freed, NOW).rep_id == "dach-1"
    assert release_lead(freed, "dach-1").open_leads["dach-1"] == 0


# --- reassignment -----------------------------------------------------------------------------


def test_reassignment_picks_a_colleague_never_the_rep_who_breached() -> None:
    state = RoutingState(cursors={"dach": "dach-1"})
    decision = next_rep_for_reassignment(
        make_config(), lead(country="DE"), state, NOW, tried=["dach-1", "dach-2"]
    )
    assert decision.rep_id == "dach-3"
    assert decision.reassigned_from == "dach-2"
    assert decision.trace[0].startswith("reassignment: dach-2 breached the SLA twice")
    assert "round-robin in dach: skipped dach-2, already had this lead" in decision.trace


def test_reassignment_of_a_named_account_goes_to_the_owners_team() -> None:
    decision = next_rep_for_reassignment(
        make_config(), lead(account_domain="bigbank.example"), EMPTY, NOW, tried=["ent-1"]
    )
    assert (decision.team, decision.rep_id) == ("enterprise", "ent-2")


def test_reassignment_with_nobody_left_goes_to_the_fallback_owner() -> None:
    decision = next_rep_for_reassignment(
        make_config(), lead(country="JP"), EMPTY, NOW, tried=["queue"]
    )
    assert decision.rep_id == "queue"
    assert decision.method == "fallback"
    assert "nobody else is left" in decision.trace[-1]


# --- SLA --------------------------------------------------------------------------------------


def test_hand_raiser_must_be_touched_within_15_business_minutes() -> None:
    plan = sla_for(make_config(), lead(country="DE", trigger="hand_raiser"), NOW)
    assert plan.policy == "hand-raisers-and-tier-1"
    assert plan.first_touch_within == timedelta(minutes=15)
    assert plan.deadline == NOW + timedelta(minutes=15)
    assert plan.reminder_at == NOW + timedelta(minutes=11, seconds=15)
    assert plan.escalate_to == "mgr-emea"
    assert plan.reassign_at == NOW + timedelta(minutes=30)


def test_tier_1_score_lead_gets_the_fast_sla_too() -> None:
    plan = sla_for(make_config(), lead(country="DE", icp_tier="Tier1"), NOW)
    assert plan.first_touch_within == timedelta(minutes=15)


def test_score_mql_gets_one_business_day_on_the_team_calendar() -> None:
    friday_late = datetime(2026, 5, 22, 16, 50, tzinfo=BERLIN)  # Monday 25th is a holiday
    plan = sla_for(make_config(), lead(country="DE"), friday_late)
    assert plan.policy == "score-mql"
    assert plan.calendar == "berlin"
    assert plan.deadline == datetime(2026, 5, 26, 16, 50, tzinfo=BERLIN)
    assert plan.reminder_at == datetime(2026, 5, 26, 14, 50, tzinfo=BERLIN)
    assert plan.reassign_at == datetime(2026, 5, 27, 16, 50, tzinfo=BERLIN)


def test_lead_arriving_overnight_starts_the_clock_at_opening() -> None:
    night = datetime(2026, 6, 9, 23, 0, tzinfo=BERLIN)
    plan = sla_for(make_config(), lead(country="DE", trigger="hand_raiser"), night)
    assert plan.clock_starts_at == datetime(2026, 6, 10, 9, 0, tzinfo=BERLIN)
    assert plan.deadline == datetime(2026, 6, 10, 9, 15, tzinfo=BERLIN)


def test_enterprise_lead_runs_on_the_enterprise_team_calendar() -> None:
    plan = sla_for(
        make_config(), lead(country="DE", segment="enterprise", trigger="hand_raiser"), NOW
    )
    new_york = ZoneInfo("America/New_York")
    assert plan.calendar == "new-york"
    assert plan.escalate_to == "mgr-ent"
    assert plan.deadline == datetime(2026, 6, 9, 9, 15, tzinfo=new_york)


def test_no_sales_reply_warning_is_25_wall_clock_hours_after_the_mql() -> None:
    saturday = datetime(2026, 6, 13, 12, 0, tzinfo=UTC)
    plan = sla_for(make_config(), lead(country="DE"), saturday)
    assert plan.reply_warning_at == saturday + timedelta(hours=25)
    assert plan.reply_warning_to == "mgr-emea"


def test_reply_warning_and_policies_are_configurable() -> None:
    sla = {
        "reply_warning_hours": 4,
        "policies": [
            {
                "name": "all",
                "first_touch": "4h",
                "reminder_fraction": 0.5,
                "escalate_to_manager": False,
                "reassign_on_second_breach": False,
            },
        ],
    }
    plan = sla_for(make_config(sla=sla), lead(country="DE", trigger="hand_raiser"), NOW)
    assert plan.deadline == NOW + timedelta(hours=4)
    assert plan.reminder_at == NOW + timedelta(hours=2)
    assert plan.escalate_to is None
    assert plan.reassign_at is None
    assert plan.reply_warning_at == NOW + timedelta(hours=4)


def test_sla_runs_on_the_calendar_of_the_team_actually_chosen() -> None:
    full = {"max_open_leads": 0}
    config = make_config(rep_ent_1=full, rep_ent_2=full)
    japan = lead(country="JP", segment="enterprise")
    decision = route(config, japan, EMPTY, NOW)
    assert decision.method == "fallback"
    assert sla_for(config, japan, NOW, decision=decision).calendar == "berlin"
    assert sla_for(config, japan, NOW).calendar == "new-york"


def test_a_us_calendar_skips_thanksgiving_2030_in_the_sla() -> None:
    calendars = copy.deepcopy(BASE["calendars"])
    calendars[1]["country"] = "US"  # new-york, the enterprise team's calendar
    data = {**copy.deepcopy(BASE), "calendars": calendars}
    config = parse_routing(data, "test.yaml", holiday_years=range(2029, 2032))
    new_york = ZoneInfo("America/New_York")
    wednesday_late = datetime(2030, 11, 27, 16, 50, tzinfo=new_york)  # Thanksgiving is the 28th
    enterprise = lead(country="DE", segment="enterprise")
    plan = sla_for(config, enterprise, wednesday_late)
    assert plan.deadline == datetime(2030, 11, 29, 16, 50, tzinfo=new_york)
    hand_raiser = sla_for(
        config, enterprise.model_copy(update={"trigger": "hand_raiser"}), wednesday_late
    )
    assert hand_raiser.deadline == datetime(2030, 11, 29, 9, 5, tzinfo=new_york)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15m", SlaDuration(minutes=15)),
        ("4 hours", SlaDuration(hours=4)),
        ("1bd", SlaDuration(business_days=1)),
        ("2 business days", SlaDuration(business_days=2)),
    ],
)
def test_sla_durations_read_like_people_write_them(text: str, expected: SlaDuration) -> None:
    assert SlaDuration.model_validate(text) == expected


# --- decisions as data ------------------------------------------------------------------------


def test_decision_records_the_config_version_and_no_personal_data() -> None:
    decision = route(make_config(), lead(country="DE"), EMPTY, NOW)
    assert decision.config_version == "test-7"
    text = " ".join(decision.trace)
    assert "Dora" not in text
    assert "@example.com" not in text


def test_decision_and_config_survive_a_json_round_trip() -> None:
    config = make_config()
    decision = route(config, lead(country="DE"), EMPTY, NOW)
    assert RoutingDecision.model_validate_json(decision.model_dump_json()) == decision
    assert RoutingConfig.model_validate_json(config.model_dump_json()) == config


def test_routing_input_is_built_from_contact_traits() -> None:
    facts = ContactFacts(
        contact_id="c0002",
        now=NOW,
        traits={"company_domain": "www.BigBank.example", "country": "de", "industry": "Health"},
    )
    built = RoutingInput.from_facts(facts, "hand_raiser")
    assert built.account_domain == "bigbank.example"
    assert built.country == "DE"
    assert built.industry == "health"
    assert built.segment is None


# --- configuration errors ---------------------------------------------------------------------


def test_shipped_routing_config_loads_and_routes() -> None:
    config = read_file(ROUTING, REPO / "config" / "routing.yaml")
    decision = route(config, lead(country="DE", segment="smb"), EMPTY, NOW)
    assert decision.team == "dach-smb"
    only_a_country = route(config, lead(country="NO"), EMPTY, NOW)
    assert only_a_country.team == "emea-general"
    plan = sla_for(config, lead(country="US", trigger="hand_raiser"), NOW)
    assert plan.first_touch_within == timedelta(minutes=15)


def _dump(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data)


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "routing.yaml"
    path.write_text(_dump(data), encoding="utf-8")
    return path


def test_unknown_manager_is_a_config_error_naming_file_and_field(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    data["teams"][1]["manager"] = "nobody"
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as caught:
        read_file(ROUTING, path)
    assert str(path) in str(caught.value)
    assert "teams[1].manager: unknown rep 'nobody'" in str(caught.value)


def test_invalid_field_is_a_config_error_with_its_path(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    data["reps"][2]["timezone"] = "Mars/Olympus"
    with pytest.raises(ConfigError, match=r"reps\[2\]\.timezone: .*unknown IANA time zone"):
        read_file(ROUTING, _write(tmp_path, data))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"country": "XX"}, r"calendars\[0\]\.country: unknown country code 'XX'"),
        ({"country": "AU", "subdivision": "ZZ"}, r"calendars\[0\]\.subdivision: AU has no .*'ZZ'"),
        (
            {"country": "US", "except_holidays": ["Columbus Dya"]},
            r"calendars\[0\]\.except_holidays: no US public holiday is named 'Columbus Dya'",
        ),
        ({"subdivision": "BY"}, r"calendars\[0\]\.subdivision: needs a `country`"),
        (
            {"country": "DE", "public_holidays": ["2026-01-01"]},
            r"calendars\[0\]\.public_holidays: is filled from `country`",
        ),
    ],
)
def test_a_bad_holiday_country_is_a_config_error_naming_file_and_field(
    tmp_path: Path, fields: dict[str, Any], message: str
) -> None:
    data = copy.deepcopy(BASE)
    data["calendars"][0].update(fields)
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError, match=message) as caught:
        read_file(ROUTING, path)
    assert str(caught.value).startswith(f"{path}: calendars[0].")


def test_last_sla_policy_must_cover_every_lead() -> None:
    sla = {"policies": [{"name": "fast", "triggers": ["hand_raiser"], "first_touch": "15m"}]}
    with pytest.raises(ConfigError, match="last SLA policy must have no triggers"):
        make_config(sla=sla)


def test_duplicate_rep_ids_are_refused() -> None:
    reps = [*BASE["reps"], {"id": "dach-1", "name": "Again", "email": "x@example.com"}]
    with pytest.raises(ConfigError, match=r"reps\[11\]: 'dach-1' is defined twice"):
        make_config(reps=reps)


def test_missing_or_malformed_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        read_file(ROUTING, tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: [unclosed", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        read_file(ROUTING, broken)


def test_named_account_domains_differing_only_in_case_are_refused() -> None:
    with pytest.raises(ConfigError, match="same account domain"):
        make_config(named_accounts={"acme.example": "ent-1", "ACME.example": "ent-2"})


def test_out_of_office_must_not_end_before_it_starts() -> None:
    with pytest.raises(ConfigError, match="before it starts"):
        make_config(
            rep_dach_1={"out_of_office": [{"start": date(2026, 6, 9), "end": date(2026, 6, 1)}]}
        )
