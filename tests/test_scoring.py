"""Scoring: points, clamping, negatives, decay on time, gates, hand-raisers, caps, wording."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audience.facts import ContactFacts, EventRecord
from definitions import SCORING, read_file
from revops.errors import ConfigError
from scoring.model import (
    ScoreCard,
    ScoringModel,
    compute_scores,
    evaluate_gate,
    explain,
    parse_scoring_model,
)

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
ICP = {
    "industry": "Software",
    "title": "VP of Marketing",
    "seniority": "VP",
    "company_size": 1200,
    "country": "US",
    "email_domain": "acme.example",
}
STUDENT = {
    "industry": "Education",
    "title": "Student",
    "company_size": 5,
    "country": "BR",
    "email_domain": "uni.example",
}


@pytest.fixture(scope="module")
def model() -> ScoringModel:
    return read_file(SCORING, REPO / "config" / "scoring.yaml")


def ago(days: float = 0, hours: float = 0) -> datetime:
    return NOW - timedelta(days=days, hours=hours)


def event(name: str, at: datetime, **properties: Any) -> EventRecord:
    return EventRecord(name=name, at=at, properties=properties)


def facts(
    traits: dict[str, Any] | None = None,
    events: Iterable[EventRecord] = (),
    *,
    now: datetime = NOW,
    lists: Iterable[str] = (),
) -> ContactFacts:
    return ContactFacts(
        contact_id="c1",
        now=now,
        traits=dict(traits or {}),
        lists=frozenset(lists),
        events=sorted(events, key=lambda e: e.at),
    )


def score(model: ScoringModel, f: ContactFacts) -> ScoreCard:
    return compute_scores(model, f)


def tiny_model(**overrides: Any) -> ScoringModel:
    """A small model for gate and clamp tests: points chosen to make arithmetic obvious."""
    data: dict[str, Any] = {
        "version": "test-1",
        "fit": [
            {"name": "big", "when": {"trait": "company_size", "gte": 100}, "points": 70},
            {"name": "vp", "when": {"trait": "seniority", "eq": "VP"}, "points": 50},
        ],
        "engagement": [
            {
                "name": "pricing",
                "label": "Viewed the pricing page",
                "event": "Pricing Page Viewed",
                "points": 25,
            },
            {
                "name": "webinar",
                "label": "Attended a webinar",
                "event": "Webinar Attended",
                "points": 20,
            },
        ],
    }
    data.update(overrides)
    return parse_scoring_model(data, source="tiny.yaml")


# --- Points and clamping -------------------------------------------------------------------


def test_icp_contact_earns_every_default_fit_point(model: ScoringModel) -> None:
    card = score(model, facts(ICP))
    assert card.fit == 65  # size 20 + industry 15 + decision maker 20 + geo 10
    assert {c.rule: c.points for c in card.contributions if c.kind == "fit"} == {
        "company_size_in_range": 20,
        "target_industry": 15,
        "decision_maker": 20,
        "target_geo": 10,
    }


def test_default_engagement_points_match_the_spec(model: ScoringModel) -> None:
    names = {
        "Pricing Page Viewed": 25,
        "Case Study Viewed": 15,
        "Email Opened": 3,
        "Demo Requested": 50,
        "Webinar Attended": 20,
    }
    for name, points in names.items():
        assert score(model, facts(STUDENT, [event(name, ago(1))])).engagement == points, name


def test_a_decision_maker_title_without_seniority_still_counts(model: ScoringModel) -> None:
    traits = {"title": "Chief Technology Officer"}
    assert score(model, facts(traits)).fit == 20


def test_fit_is_capped_at_100() -> None:
    card = score(tiny_model(), facts({"company_size": 500, "seniority": "VP"}))
    assert card.fit == 100
    assert sum(c.points for c in card.contributions if c.kind == "fit") == 120


def test_engagement_is_capped_at_100(model: ScoringModel) -> None:
    views = [event("Pricing Page Viewed", ago(days=d)) for d in range(1, 6)]
    assert score(model, facts(ICP, views)).engagement == 100


def test_scores_never_go_below_zero(model: ScoringModel) -> None:
    traits = {**STUDENT, "email_domain": "gmail.com", "unsubscribed": True}
    card = score(model, facts(traits, [event("Email Opened", ago(1))]))
    assert (card.fit, card.engagement, card.engagement_recent) == (0, 0, 0)


# --- Negative rules ------------------------------------------------------------------------


def test_competitor_domain_costs_fifty_fit_points_and_disqualifies(model: ScoringModel) -> None:
    card = score(model, facts({**ICP, "email_domain": "rivalcloud.io"}))
    assert card.fit == 15
    assert card.disqualified_by == ("Email from a competitor's domain",)


def test_free_email_domain_costs_ten_fit_points(model: ScoringModel) -> None:
    assert score(model, facts({**ICP, "email_domain": "gmail.com"})).fit == 55


def test_unsubscribed_contact_loses_a_hundred_engagement_points(model: ScoringModel) -> None:
    views = [event("Pricing Page Viewed", ago(d)) for d in (1, 2, 3, 4, 5)]
    card = score(model, facts({**ICP, "unsubscribed": True}, views))
    assert card.engagement == 25  # 125 earned - 100
    assert [n.rule for n in card.negatives] == ["unsubscribed"]


def test_spam_complaint_or_bounce_costs_fifty_engagement_points_once(model: ScoringModel) -> None:
    history = [
        event("Pricing Page Viewed", ago(3)),
        event("Pricing Page Viewed", ago(2)),
        event("Demo Requested", ago(2)),
        event("Spam Complaint", ago(1)),
        event("Email Bounced", ago(1)),
        event("Spam Complaint", ago(0.5)),
    ]
    card = score(model, facts(ICP, history))
    assert card.engagement == 50  # 100 earned - 50, once however often it happened
    (negative,) = card.negatives
    assert negative.at == ago(0.5)


def test_a_spam_complaint_after_now_does_not_count(model: ScoringModel) -> None:
    card = score(
        model,
        facts(
            ICP,
            [event("Case Study Viewed", ago(1)), event("Spam Complaint", NOW + timedelta(hours=1))],
        ),
    )
    assert card.engagement == 15


# --- Decay on time -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age_days", "expected"),
    [(59, 25.0), (60, 12.5), (61, 12.5), (119, 12.5), (120, 0.0), (121, 0.0)],
)
def test_behaviours_count_full_then_half_then_nothing(
    model: ScoringModel, age_days: int, expected: float
) -> None:
    card = score(model, facts(ICP, [event("Pricing Page Viewed", ago(age_days))]))
    assert card.engagement == expected


def test_the_score_drops_at_day_sixty_exactly_with_no_new_event(model: ScoringModel) -> None:
    seen = NOW
    view = [event("Pricing Page Viewed", seen)]
    day60 = seen + timedelta(days=60)
    before = score(model, facts(ICP, view, now=day60 - timedelta(microseconds=1)))
    after = score(model, facts(ICP, view, now=day60))
    assert (before.engagement, after.engagement) == (25, 12.5)


def test_next_decay_at_walks_the_window_then_each_decay_boundary(model: ScoringModel) -> None:
    seen = NOW
    view = [event("Pricing Page Viewed", seen)]
    moment = seen + timedelta(days=2)
    visited = []
    while True:
        card = score(model, facts(ICP, view, now=moment))
        visited.append((moment - seen, card.engagement, card.engagement_recent))
        if card.next_decay_at is None:
            break
        moment = card.next_decay_at
    assert visited == [
        (timedelta(days=2), 25, 25),
        (timedelta(days=30), 25, 0),
        (timedelta(days=60), 12.5, 0),
        (timedelta(days=120), 0, 0),
    ]


def test_next_decay_at_is_the_earliest_boundary_over_all_behaviours(model: ScoringModel) -> None:
    history = [event("Case Study Viewed", ago(50)), event("Pricing Page Viewed", ago(5))]
    card = score(model, facts(ICP, history))
    assert card.next_decay_at == ago(50) + timedelta(days=60)


def test_nothing_left_to_decay_means_no_timer(model: ScoringModel) -> None:
    assert score(model, facts(ICP)).next_decay_at is None
    assert score(model, facts(ICP, [event("Pricing Page Viewed", ago(200))])).next_decay_at is None


def test_rules_that_do_not_decay_still_leave_the_recent_window() -> None:
    steady = tiny_model(
        engagement=[{"name": "signup", "event": "Signed Up", "points": 30, "decays": False}]
    )
    card = score(steady, facts({}, [event("Signed Up", ago(200))]))
    assert (card.engagement, card.engagement_recent, card.next_decay_at) == (30, 0, None)
    fresh = score(steady, facts({}, [event("Signed Up", ago(1))]))
    assert fresh.next_decay_at == ago(1) + timedelta(days=30)


# --- Gates ---------------------------------------------------------------------------------


def test_combined_gate_qualifies_on_fit_and_recent_engagement(model: ScoringModel) -> None:
    history = [event("Pricing Page Viewed", ago(2)), event("Webinar Attended", ago(1))]
    f = facts(ICP, history)
    result = evaluate_gate(model, score(model, f), f)
    assert (result.qualifies, result.segment, result.hand_raiser) == ("MQL", None, False)
    assert result.reason == (
        "Qualifies as MQL: fit 65 is above 60 and engagement in the last 30 days 45 is above 40 "
        "(default gate)."
    )


def test_engagement_must_be_strictly_above_forty(model: ScoringModel) -> None:
    history = [event("Pricing Page Viewed", ago(2)), event("Case Study Viewed", ago(1))]
    f = facts(ICP, history)
    assert evaluate_gate(model, score(model, f), f).qualifies is None


def test_engagement_older_than_thirty_days_does_not_qualify(model: ScoringModel) -> None:
    history = [event("Pricing Page Viewed", ago(d)) for d in (40, 41, 42)]
    f = facts(ICP, history)
    card = score(model, f)
    assert (card.engagement, card.engagement_recent) == (75, 0)
    result = evaluate_gate(model, card, f)
    assert result.qualifies is None
    assert "engagement in the last 30 days 0 is not above 40" in result.reason


def test_low_fit_does_not_qualify_however_engaged(model: ScoringModel) -> None:
    history = [event("Pricing Page Viewed", ago(d)) for d in (1, 2, 3)]
    f = facts(STUDENT, history)
    result = evaluate_gate(model, score(model, f), f)
    assert result.qualifies is None
    assert result.reason.startswith("Not qualified yet: fit 0 is not above 60 but engagement")


def test_enterprise_gate_is_stricter_than_smb(model: ScoringModel) -> None:
    history = [event("Pricing Page Viewed", ago(3)), event("Webinar Attended", ago(2))]  # 45
    outcomes = {}
    for segment in ("Enterprise", "SMB", None):
        f = facts(ICP, history, lists=[segment] if segment else [])
        outcomes[segment] = evaluate_gate(model, score(model, f), f)
    assert outcomes["Enterprise"].qualifies is None
    assert outcomes["Enterprise"].reason.endswith("above 50 (Enterprise gate).")
    assert outcomes["SMB"].qualifies == "MQL"
    assert outcomes[None].qualifies == "MQL"
    assert outcomes[None].reason.endswith("(default gate).")


def test_the_first_matching_segment_wins(model: ScoringModel) -> None:
    f = facts(ICP, lists=["SMB", "Enterprise"])
    assert evaluate_gate(model, score(model, f), f).segment == "Enterprise"


def test_single_score_mode_makes_mql_at_65_and_sql_at_85() -> None:
    single = tiny_model(
        fit=[{"name": "big", "when": {"trait": "company_size", "gte": 100}, "points": 40}],
        gates={"default": {"mode": "single", "mql_at": 65, "sql_at": 85}},
    )
    expectations = {0: None, 1: "MQL", 2: "SQL"}  # 40 fit + 25 per pricing view
    for views, expected in expectations.items():
        history = [event("Pricing Page Viewed", ago(d)) for d in range(1, views + 1)]
        f = facts({"company_size": 500}, history)
        assert evaluate_gate(single, score(single, f), f).qualifies == expected, views


# --- Hand-raisers --------------------------------------------------------------------------


def test_demo_request_qualifies_at_once_whatever_the_fit(model: ScoringModel) -> None:
    f = facts(STUDENT, [event("Demo Requested", ago(hours=2))])
    result = evaluate_gate(model, score(model, f), f)
    assert (result.qualifies, result.hand_raiser) == ("MQL", True)
    assert result.reason == "Hand-raiser: Requested a demo (2 hours ago), qualifies as MQL at once."


def test_contact_sales_form_is_a_hand_raiser_too(model: ScoringModel) -> None:
    f = facts(STUDENT, [event("Contact Sales Submitted", ago(1))])
    assert evaluate_gate(model, score(model, f), f).hand_raiser


def test_an_old_demo_request_is_not_a_hand_raise_today(model: ScoringModel) -> None:
    f = facts(STUDENT, [event("Demo Requested", ago(45))])
    result = evaluate_gate(model, score(model, f), f)
    assert (result.qualifies, result.hand_raiser) == (None, False)


def test_a_competitor_asking_for_a_demo_is_not_qualified(model: ScoringModel) -> None:
    f = facts({**ICP, "email_domain": "leadforge.ai"}, [event("Demo Requested", ago(1))])
    result = evaluate_gate(model, score(model, f), f)
    assert result.qualifies is None
    assert "competitor" in result.reason


# --- Caps ----------------------------------------------------------------------------------


def test_email_opens_count_at_most_three_per_seven_days(model: ScoringModel) -> None:
    burst = [event("Email Opened", ago(10, hours=h)) for h in range(10)]
    card = score(model, facts(STUDENT, burst))
    assert card.engagement == 9
    assert card.capped == {"email_open": 7}


def test_an_open_counts_again_once_the_first_leaves_the_seven_days(model: ScoringModel) -> None:
    first = ago(20)
    opens = [first + timedelta(days=d) for d in (0, 1, 2, 3, 7)]
    card = score(model, facts(STUDENT, [event("Email Opened", at) for at in opens]))
    assert card.engagement == 12  # the 4th is capped; the 5th is 7 days after the 1st
    assert card.capped == {"email_open": 1}


def test_where_filters_match_event_properties() -> None:
    filtered = tiny_model(
        engagement=[
            {
                "name": "enterprise_pricing",
                "event": "Page Viewed",
                "where": {"path": {"matches": "/pricing.*"}, "utm.source": {"ne": "internal"}},
                "points": 30,
            }
        ]
    )
    history = [
        event("Page Viewed", ago(1), path="/pricing/enterprise", utm={"source": "ads"}),
        event("Page Viewed", ago(1), path="/blog"),
        event("Page Viewed", ago(1), path="/pricing", utm={"source": "internal"}),
    ]
    assert score(filtered, facts({}, history)).engagement == 30


# --- Wording -------------------------------------------------------------------------------


def test_top_three_behaviours_read_like_a_rep_would_say_them(model: ScoringModel) -> None:
    history = [
        event("Pricing Page Viewed", ago(9)),
        event("Pricing Page Viewed", ago(5)),
        event("Pricing Page Viewed", ago(2)),
        event("Webinar Attended", ago(hours=3)),
        event("Case Study Viewed", ago(70)),
        event("Email Opened", ago(1)),
    ]
    card = score(model, facts(ICP, history))
    assert card.top_behaviours == (
        "Viewed the pricing page 3 times (last 2 days ago)",
        "Attended a webinar (3 hours ago)",
        "Viewed a case study (70 days ago)",
    )


def test_explain_names_scores_rules_decay_and_next_change(model: ScoringModel) -> None:
    history = [event("Case Study Viewed", ago(70)), event("Pricing Page Viewed", ago(1))]
    lines = explain(score(model, facts({**ICP, "email_domain": "gmail.com"}, history)))
    text = "\n".join(lines)
    assert lines[0] == (
        "Scoring model 2026.2 at 2025-06-01 12:00 UTC: fit 55/100, engagement 32.5/100 "
        "(25 in the last 30 days)."
    )
    assert "  -10 Personal (free) email address" in lines
    assert "  +7.5 Viewed a case study (last 2025-03-23, counted at 0.5 for age)" in lines
    assert (
        "Top behaviours: Viewed the pricing page (1 day ago); Viewed a case study (70 days ago)."
        in lines
    )
    assert "Scores next change by age alone at 2025-06-30 12:00 UTC." in text


def test_the_card_records_the_model_version(model: ScoringModel) -> None:
    assert score(model, facts(ICP)).model_version == "2026.2"


def test_scoring_is_deterministic_and_survives_serialisation(model: ScoringModel) -> None:
    f = facts(ICP, [event("Pricing Page Viewed", ago(d)) for d in (1, 61, 130)])
    again = ScoringModel.model_validate_json(model.model_dump_json())
    assert again == model
    assert compute_scores(again, f) == compute_scores(model, f)


# --- Model files ---------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scoring.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_bad_field_is_reported_with_file_and_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "version: x\nengagement:\n  - {name: a, event: A, points: lots}\n",
    )
    with pytest.raises(ConfigError) as caught:
        read_file(SCORING, path)
    assert f"{path}: engagement[0].points:" in str(caught.value)


def test_a_bad_condition_inside_a_fit_rule_names_its_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "version: x\nfit:\n  - {name: a, when: {trait: size, gte: 1, bogus: 2}, points: 5}\n",
    )
    with pytest.raises(ConfigError, match=r"fit\[0\]\.when\.bogus: unknown field"):
        read_file(SCORING, path)


def test_fit_rules_may_not_look_at_behaviours() -> None:
    with pytest.raises(ConfigError, match="fit conditions look at traits and lists only"):
        tiny_model(fit=[{"name": "a", "when": {"event": "Pricing Page Viewed"}, "points": 5}])


def test_decay_steps_must_grow_older_and_count_less() -> None:
    with pytest.raises(ConfigError, match="must not exceed"):
        tiny_model(
            decay=[{"older_than": "60d", "factor": 0.5}, {"older_than": "90d", "factor": 0.8}]
        )
    with pytest.raises(ConfigError, match="must be longer"):
        tiny_model(decay=[{"older_than": "60d", "factor": 0.5}, {"older_than": "30d", "factor": 0}])


def test_a_negative_rule_needs_exactly_one_signal() -> None:
    rule = {"name": "n", "applies_to": "fit", "points": -5}
    with pytest.raises(ConfigError, match="exactly one of"):
        tiny_model(negative=[rule])
    with pytest.raises(ConfigError, match="less than or equal to 0"):
        tiny_model(negative=[{**rule, "events": ["X"], "points": 5}])


def test_unknown_gate_mode_and_duplicate_rule_names_are_refused() -> None:
    with pytest.raises(ConfigError, match="Input should be 'combined' or 'single'"):
        tiny_model(gates={"default": {"mode": "blended"}})
    duplicate = {"name": "big", "event": "X", "points": 1}
    with pytest.raises(ConfigError, match="duplicate rule name 'big'"):
        tiny_model(engagement=[duplicate])


def test_a_model_file_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="a scoring model is a mapping"):
        read_file(SCORING, write(tmp_path, "- just\n- a list\n"))


# --- Properties ----------------------------------------------------------------------------

EVENT_NAMES = (
    "Pricing Page Viewed",
    "Case Study Viewed",
    "Email Opened",
    "Demo Requested",
    "Webinar Attended",
    "Spam Complaint",
    "Email Bounced",
    "Page Viewed",
)


@settings(max_examples=150, deadline=None)
@given(
    history=st.lists(
        st.tuples(st.sampled_from(EVENT_NAMES), st.floats(min_value=-2, max_value=200)),
        max_size=60,
    ),
    unsubscribed=st.booleans(),
    domain=st.sampled_from(["acme.example", "gmail.com", "rivalcloud.io"]),
)
def test_scores_always_stay_between_0_and_100(
    model: ScoringModel, history: list[tuple[str, float]], unsubscribed: bool, domain: str
) -> None:
    traits = {**ICP, "unsubscribed": unsubscribed, "email_domain": domain}
    card = score(model, facts(traits, [event(name, ago(days)) for name, days in history]))
    for value in (card.fit, card.engagement, card.engagement_recent):
        assert 0 <= value <= 100
    assert card.engagement_recent <= card.engagement
    assert card.next_decay_at is None or card.next_decay_at > NOW


def test_a_threshold_of_the_other_gate_mode_is_refused() -> None:
    with pytest.raises(ConfigError, match="mql_at does not apply to mode: combined"):
        tiny_model(gates={"default": {"fit_above": 50, "mql_at": 70}})
