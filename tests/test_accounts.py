"""Accounts as pure functions: finding a contact's account, account conditions, merging member
updates in any order, the account play."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from accounts.contract import AccountState, BehaviourSeen, MemberUpdate
from accounts.membership import member_updates, receive_account
from accounts.state import (
    account_facts,
    apply_updates,
    broadcast_step,
    condition_key,
    next_wakeup,
    play_step,
    refresh_due,
)
from audience.accounts import AccountsConfig, account_id_for, company_domain
from audience.conditions import evaluate, next_change_at, parse_condition
from audience.facts import AccountFacts, ContactFacts, EngagedMember
from audience.lists import evaluate_memberships
from contacts.contract import ContactState, Scores
from definitions import JOURNEY, LISTS, ROUTING, read_file
from handoff.routing import PRIORITY_TIER, RoutingInput, RoutingState, route, sla_for
from journeys.definition import parse_journey
from models.events import ContactEvent
from revops.errors import ConfigError
from scoring.model import compute_scores, parse_scoring_model, select_gate

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CONFIG = AccountsConfig(subsidiaries={"acme.de": "acme.com", "labs.acme.io": "acme.de"})


def _event(name: str, kind: str = "track", at: datetime = T0, **fields: Any) -> ContactEvent:
    return ContactEvent(
        message_id=f"m-{name}-{at.isoformat()}",
        kind=kind,
        name=name,
        timestamp=at,
        received_at=at,
        **fields,
    )


def _contact(contact_id: str = "c1", **traits: Any) -> ContactState:
    return ContactState(contact_id=contact_id, created_at=T0, traits=traits)


# ---- which account -----------------------------------------------------------------------


def test_company_domains_resolve_subsidiaries_and_free_mail_makes_none() -> None:
    assert company_domain("https://www.Acme.com/about") == "acme.com"
    assert company_domain("ann@ACME.com") == "acme.com"
    assert CONFIG.canonical_domain("acme.de") == "acme.com"
    assert CONFIG.canonical_domain("labs.acme.io") == "acme.com", "mappings chain"
    assert CONFIG.canonical_domain("gmail.com") is None
    assert CONFIG.canonical_domain("eu.gmail.com") is None
    assert CONFIG.canonical_domain("localhost") is None


def test_titles_give_committee_roles_and_executives() -> None:
    assert CONFIG.role_of("CFO") == "economic_buyer"
    assert CONFIG.role_of("VP Engineering") == "champion"
    assert CONFIG.role_of("Staff Engineer") == "technical_evaluator"
    assert CONFIG.role_of("Marketing Manager") == "user"
    assert CONFIG.role_of("Student") is None
    assert CONFIG.is_executive("Chief Revenue Officer")
    assert not CONFIG.is_executive("VP Sales")


def test_bad_accounts_definitions_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown role"):
        AccountsConfig.model_validate({"committee": {"ceo": ["x"]}})
    with pytest.raises(ValueError, match="regular expression"):
        AccountsConfig.model_validate({"executive": ["("]})
    with pytest.raises(ValueError, match="refresh_days must be less than window_days"):
        AccountsConfig.model_validate({"engagement": {"window_days": 7, "refresh_days": 7}})


def test_a_free_mail_contact_joins_no_account() -> None:
    state = _contact(email_domain="gmail.com", title="CEO")
    assert member_updates(state, [_event("Pricing Page Viewed")], CONFIG, T0) == []
    assert state.account_link is None


def test_email_domain_joins_and_unchanged_facts_are_not_sent_again() -> None:
    state = _contact(email_domain="acme.de", title="CFO")
    (joined,) = member_updates(state, [_event("Pricing Page Viewed")], CONFIG, T0)
    assert joined.account_id == account_id_for("domain:acme.com")
    assert joined.role == "economic_buyer" and joined.executive
    assert [b.name for b in joined.behaviours] == ["Pricing Page Viewed"]
    assert member_updates(state, [], CONFIG, T0) == []
    assert member_updates(state, [_event("Email Delivered")], CONFIG, T0) == []
    dump = joined.model_dump_json()
    assert "CFO" not in dump and "acme.de" not in dump, "no title, no email in the update"


def test_repeats_the_same_day_and_small_score_moves_are_not_sent() -> None:
    state = _contact(email_domain="acme.com")
    assert len(member_updates(state, [_event("Pricing Page Viewed")], CONFIG, T0)) == 1
    later = T0 + timedelta(hours=2)
    assert member_updates(state, [_event("Pricing Page Viewed", at=later)], CONFIG, later) == []
    (other,) = member_updates(state, [_event("Webinar Attended", at=later)], CONFIG, later)
    assert [b.name for b in other.behaviours] == ["Webinar Attended"]
    state.scores = Scores(fit=41, engagement=22)
    (scored,) = member_updates(state, [], CONFIG, later)
    assert (scored.fit, scored.engagement) == (40, 20), "in steps of 5"
    state.scores = Scores(fit=42, engagement=21)
    assert member_updates(state, [], CONFIG, later) == []
    next_day = T0 + timedelta(days=1)
    (again,) = member_updates(state, [_event("Pricing Page Viewed", at=next_day)], CONFIG, next_day)
    assert again.behaviours[0].at == next_day


def test_daily_engagement_is_news_once_a_day_and_other_facts_carry_the_days_names() -> None:
    state = _contact(email_domain="acme.com", title="Engineer")
    (first,) = member_updates(state, [_event("Docs Page Viewed")], CONFIG, T0, daily=True)
    assert [b.name for b in first.behaviours] == ["Docs Page Viewed"]
    later = T0 + timedelta(hours=2)
    other = [_event("Blog Page Viewed", at=later), _event("Careers Page Viewed", at=later)]
    assert member_updates(state, other, CONFIG, later, daily=True) == [], "the same day"
    state.traits["title"] = "VP Engineering"  # a fact the account keeps: sent, with the names
    (promoted,) = member_updates(
        state, [_event("Home Page Viewed", at=later)], CONFIG, later, daily=True
    )
    assert promoted.role == "champion"
    assert [b.name for b in promoted.behaviours] == ["Home Page Viewed"]
    next_day = T0 + timedelta(days=1)
    (again,) = member_updates(
        state, [_event("Blog Page Viewed", at=next_day)], CONFIG, next_day, daily=True
    )
    assert again.behaviours[0].at == next_day and again.seq == promoted.seq + 1
    old = T0 - timedelta(days=3)  # a late event from before: the account keeps the latest
    assert (
        member_updates(state, [_event("Pricing Page Viewed", at=old)], CONFIG, next_day, True) == []
    )


def test_a_group_call_moves_the_contact_and_sticks() -> None:
    state = _contact(email_domain="acme.com")
    member_updates(state, [_event("Identify", kind="identify")], CONFIG, T0)
    group = _event(
        "Group",
        kind="group",
        account_id="g-42",
        traits={"company": "Other", "account_domain": "other.com"},
        properties={"group_traits": {"industry": "Fintech", "email": "ceo@other.com"}},
    )
    left, joined = member_updates(state, [group], CONFIG, T0)
    assert left.left and left.account_id == account_id_for("domain:acme.com")
    assert joined.account_id == account_id_for("domain:other.com")
    assert joined.account_traits == {
        "company": "Other",
        "account_domain": "other.com",
        "industry": "Fintech",
    }
    assert member_updates(state, [_event("Identify", kind="identify")], CONFIG, T0) == []
    assert state.account_link is not None and state.account_link.via == "group"


def test_a_group_without_a_website_is_keyed_by_its_group_id() -> None:
    state = _contact()
    (joined,) = member_updates(state, [_event("Group", kind="group", account_id="g-7")], CONFIG, T0)
    assert joined.key == "group:g-7"


def test_facts_of_an_account_the_contact_left_are_dropped() -> None:
    state = _contact(email_domain="acme.com")
    member_updates(state, [], CONFIG, T0)
    assert not receive_account(state, AccountFacts(account_id="a-other"))
    assert receive_account(state, AccountFacts(account_id=account_id_for("domain:acme.com")))


# ---- account conditions --------------------------------------------------------------------


def _facts(account: AccountFacts | None) -> ContactFacts:
    return ContactFacts(contact_id="c1", now=T0, account=account)


def test_account_conditions_read_the_account() -> None:
    account = AccountFacts(
        account_id="a1",
        traits={"industry": "Software", "revenue": 5_000_000},
        owner="rep-ana",
        committee=["economic_buyer"],
        scores={"engagement": 72, "fit": 40},
        priority="high",
    )
    holds = {
        "industry": {"trait": "industry", "in": ["Software", "Fintech"]},
        "revenue": {"trait": "revenue", "gte": 1_000_000},
        "owner": {"trait": "owner", "eq": "rep-ana"},
        "buyer": {"committee_has": "economic_buyer"},
        "score": {"score": "engagement", "gte": 70},
        "priority": {"priority": "high"},
        "member": {"member": True},
    }
    for name, test in holds.items():
        condition = parse_condition({"account": test})
        assert evaluate(condition, _facts(account)), name
        if name != "member":
            assert not evaluate(condition, _facts(None)), f"{name}: no account, no match"
    assert evaluate(parse_condition({"account": {"member": False}}), _facts(None))
    assert not evaluate(
        parse_condition({"account": {"committee_has": "champion"}}), _facts(account)
    )


def test_engaged_contacts_count_in_a_window_and_flip_on_time() -> None:
    engaged = [
        EngagedMember(member=f"c{i}", at=T0 - timedelta(days=days))
        for i, days in enumerate((20, 5, 1))
    ]
    facts = _facts(AccountFacts(account_id="a1", engaged=engaged))
    three = parse_condition({"account": {"engaged_contacts": {"at_least": 3, "within": "30d"}}})
    assert evaluate(three, facts)
    assert next_change_at(three, facts) == T0 + timedelta(days=10)
    two_weeks = parse_condition({"account": {"engaged_contacts": {"at_least": 3, "within": "14d"}}})
    assert not evaluate(two_weeks, facts)


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ({"account": {"committee_has": "ceo"}}, "unknown committee role"),
        ({"account": {"trait": "industry"}}, "needs an operator"),
        ({"account": {"trait": "industry", "score": "fit", "eq": 1}}, "exactly one of"),
        ({"account": {"engaged_contacts": {"at_least": -1}}}, "account.engaged_contacts"),
    ],
)
def test_bad_account_conditions_name_the_problem(condition: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_condition(condition, where="lists.yaml: lists[0].when")


# ---- the account: merging, counts, the play --------------------------------------------------


def _update(
    member: str, seq: int, *days: int, role: str | None = None, **facts: Any
) -> MemberUpdate:
    return MemberUpdate(
        account_id="a1",
        key="domain:acme.com",
        member=member,
        seq=seq,
        at=T0,
        role=role,
        behaviours=[
            BehaviourSeen(name="Pricing Page Viewed", at=T0 + timedelta(days=d)) for d in days
        ],
        **facts,
    )


def test_the_play_starts_once_per_episode_with_who_engaged_and_how() -> None:
    state = AccountState(
        account_id="a1",
        key="domain:acme.com",
        created_at=T0,
        traits={"owner": "rep-ana", "name": "Acme"},
    )
    apply_updates(state, [_update("c1", 1, 0, role="champion"), _update("c2", 1, 1)])
    now = T0 + timedelta(days=2)
    assert play_step(state, account_facts(state, CONFIG, now), CONFIG, now) is None
    apply_updates(state, [_update("c3", 1, 2, role="economic_buyer", executive=True)])
    start = play_step(state, account_facts(state, CONFIG, now), CONFIG, now)
    assert start is not None and start.alert.owner == "rep-ana" and start.alert.play == 1
    assert "c3 (economic buyer, executive): Pricing Page Viewed" in start.alert.text
    assert account_facts(state, CONFIG, now).priority == "high"
    apply_updates(state, [_update("c4", 1, 2)])
    assert play_step(state, account_facts(state, CONFIG, now), CONFIG, now) is None, "once"
    later = T0 + timedelta(days=31)
    assert next_wakeup(state, CONFIG, now) == T0 + timedelta(days=30)
    assert play_step(state, account_facts(state, CONFIG, later), CONFIG, later) is None
    assert not state.play_active, "the episode ended when the count fell"


def test_a_burst_of_engagements_is_one_broadcast_per_interval() -> None:
    state = AccountState(account_id="a1", key="domain:acme.com", created_at=T0)
    told = []
    for second, member in enumerate(("c1", "c2", "c3")):
        now = T0 + timedelta(seconds=second)
        apply_updates(state, [_update(member, 1, 0)])
        told.append(broadcast_step(state, account_facts(state, CONFIG, now), CONFIG, now))
    assert told == [True, False, False]
    due = T0 + timedelta(seconds=CONFIG.broadcast_seconds)
    assert state.broadcast_due == due and next_wakeup(state, CONFIG, T0) == due
    assert broadcast_step(state, account_facts(state, CONFIG, due), CONFIG, due)
    assert state.broadcast_due is None
    assert not broadcast_step(state, account_facts(state, CONFIG, due), CONFIG, due), "unchanged"


QUICK = CONFIG.model_copy(update={"broadcast_seconds": 0})


def test_lean_broadcasts_skip_engagement_times_until_they_would_leave_the_window() -> None:
    state = AccountState(account_id="a1", key="domain:acme.com", created_at=T0)
    apply_updates(state, [_update("c1", 1, 0), _update("c2", 1, 0)])
    facts = account_facts(state, QUICK, T0)
    assert broadcast_step(state, facts, QUICK, T0, lean=True)
    assert state.told == {"c1": T0, "c2": T0}
    for day in (1, 5, 20):  # c1 engages again: nothing members' conditions read changed
        now = T0 + timedelta(days=day)
        apply_updates(state, [_update("c1", day + 1, day)])
        assert not broadcast_step(state, account_facts(state, QUICK, now), QUICK, now, lean=True)
    refresh = T0 + QUICK.refresh
    assert refresh == T0 + timedelta(days=29)
    assert refresh_due(state, QUICK) == refresh and next_wakeup(state, QUICK, T0) == refresh
    assert broadcast_step(state, account_facts(state, QUICK, refresh), QUICK, refresh, lean=True)
    assert state.told["c1"] == T0 + timedelta(days=20), "c1 would have left the members' window"
    apply_updates(state, [_update("c3", 1, 29, role="champion")])
    assert broadcast_step(state, account_facts(state, QUICK, refresh), QUICK, refresh, lean=True)
    before = condition_key(account_facts(state, QUICK, refresh))
    apply_updates(state, [_update("c9", 1)])  # a member joins, not engaged: no condition reads it
    assert condition_key(account_facts(state, QUICK, refresh)) == before


_engagements = st.dictionaries(
    keys=st.sampled_from([f"c{i}" for i in range(6)]),
    values=st.lists(st.integers(0, 24 * 80), min_size=1, max_size=6),
    min_size=1,
)


@settings(max_examples=100, deadline=None)
@given(engagements=_engagements, refresh_days=st.sampled_from([None, 1, 10]))
def test_what_members_last_heard_counts_the_engaged_as_the_account_does(
    engagements: dict[str, list[int]], refresh_days: int | None
) -> None:
    """Members evaluate ``engaged_contacts`` on the facts of the last lean broadcast; at every
    moment that count equals the account's own (times in hours over 80 days)."""
    engagement = QUICK.engagement.model_copy(update={"refresh_days": refresh_days})
    config = QUICK.model_copy(update={"engagement": engagement})
    timeline = sorted((hour, member) for member, hours in engagements.items() for hour in hours)
    state = AccountState(account_id="a1", key="domain:acme.com", created_at=T0)
    window = timedelta(days=config.engagement.window_days)
    heard: list[AccountFacts] = []
    clock = [T0]

    def step(now: datetime) -> None:
        facts = account_facts(state, config, now)
        if broadcast_step(state, facts, config, now, lean=True):
            heard.append(facts)
        truth = len(facts.engaged)
        seen = sum(1 for m in (heard[-1].engaged if heard else []) if m.at <= now < m.at + window)
        assert seen == truth, now
        clock[0] = now

    def settle(until: datetime) -> None:
        """The account's timers up to ``until`` (window leaves, engagement refreshes)."""
        while (wake := next_wakeup(state, config, clock[0])) is not None and wake <= until:
            step(max(wake, clock[0]))
            if wake <= clock[0] and next_wakeup(state, config, clock[0]) == wake:
                break  # nothing left to do at this moment

    for seq, (hour, member) in enumerate(timeline, start=1):
        now = T0 + timedelta(hours=hour)
        settle(now)
        behaviour = BehaviourSeen(name="Docs Page Viewed", at=now)
        update = MemberUpdate(
            account_id="a1", key="k", member=member, seq=seq, at=now, behaviours=[behaviour]
        )
        apply_updates(state, [update])
        step(now)
    for day in range(120):  # then every day at noon, until everybody left the window
        moment = T0 + timedelta(days=day, hours=12)
        if moment > clock[0]:
            settle(moment)
            step(moment)


def test_a_late_update_from_before_leaving_is_ignored() -> None:
    state = AccountState(account_id="a1", key="domain:acme.com", created_at=T0)
    leave = MemberUpdate(account_id="a1", key="k", member="c1", seq=3, at=T0, left=True)
    apply_updates(state, [_update("c1", 1, 0), leave, _update("c1", 2, 1)])
    assert state.members == {}
    apply_updates(state, [_update("c1", 4, 2)])
    assert "c1" in state.members, "rejoined with a newer update"


_histories = st.dictionaries(
    keys=st.sampled_from([f"c{i}" for i in range(8)]),
    values=st.lists(st.lists(st.integers(0, 60), max_size=3), min_size=1, max_size=4),
    min_size=1,
)


@settings(max_examples=150, deadline=None)
@given(histories=_histories, data=st.data(), day=st.integers(0, 90))
def test_account_counts_equal_those_of_the_members_histories_whatever_the_order(
    histories: dict[str, list[list[int]]], data: st.DataObject, day: int
) -> None:
    updates = [
        _update(member, seq, *days, stage="Lead" if seq % 2 else "MQL", engagement=float(seq))
        for member, steps in histories.items()
        for seq, days in enumerate(steps, start=1)
    ]
    order = data.draw(st.permutations(updates))
    twice = data.draw(st.booleans())
    state = AccountState(account_id="a1", key="domain:acme.com", created_at=T0)
    apply_updates(state, [*order, *(order[:3] if twice else [])])
    now = T0 + timedelta(days=day)
    facts = account_facts(state, CONFIG, now)
    window = timedelta(days=CONFIG.engagement.window_days)
    expected_engaged = {
        member
        for member, steps in histories.items()
        if (days := [d for step in steps for d in step])
        and (last := T0 + timedelta(days=max(days))) <= now < last + window
    }
    assert {m.member for m in facts.engaged} == expected_engaged
    assert facts.members == len(histories)
    assert facts.scores["engagement"] == min(100.0, sum(float(len(s)) for s in histories.values()))
    for member, steps in histories.items():
        assert state.members[member].seq == len(steps)
        assert state.members[member].stage == ("Lead" if len(steps) % 2 else "MQL")


# ---- account conditions wherever the condition language is used ------------------------------

REPO = Path(__file__).resolve().parents[1]
ENGAGED = [EngagedMember(member=f"c{i}", at=T0 - timedelta(days=i)) for i in range(3)]
HOT = AccountFacts(
    account_id="a1",
    domain="initech.example",
    owner="rep-a01",
    traits={"industry": "Software"},
    engaged=ENGAGED,
    committee=["economic_buyer", "champion"],
    priority="high",
)


def test_the_shipped_abm_list_takes_members_of_an_engaged_account_and_lets_them_go_on_time() -> (
    None
):
    lists = read_file(LISTS, REPO / "config" / "lists.yaml")
    result = evaluate_memberships(lists, _facts(HOT))
    assert {"ABM Engaged Accounts", "Executive-Engaged Accounts"} <= result.members
    assert result.next_change_at == T0 + timedelta(days=28), "the oldest engagement leaves"
    cold = evaluate_memberships(lists, _facts(HOT.model_copy(update={"engaged": ENGAGED[:2]})))
    assert "ABM Engaged Accounts" not in cold.members


def test_the_account_play_journey_branches_on_the_account() -> None:
    journey = read_file(JOURNEY, REPO / "config" / "journeys" / "abm-account-play.yaml")
    assert journey.enrollment.trigger is not None
    arm = journey.steps[-1].branch[0]  # type: ignore[union-attr]
    assert arm.if_ is not None and evaluate(arm.if_, _facts(HOT))
    assert not evaluate(arm.if_, _facts(HOT.model_copy(update={"committee": ["user"]})))
    entry = parse_journey(
        {
            "name": "abm-entry",
            "trigger": {"event": "Pricing Page Viewed"},
            "priority": 5,
            "entry": {"account": {"score": "engagement", "gte": 70}},
            "steps": [{"id": "w", "wait": "1d"}],
        },
        "abm-entry",
    )
    assert entry.enrollment.entry is not None


def test_routing_honours_the_accounts_owner_and_its_priority_tier() -> None:
    routing = read_file(ROUTING, REPO / "config" / "routing.yaml")
    facts = ContactFacts(contact_id="c9", now=T0, traits={"country": "DE"}, account=HOT)
    lead = RoutingInput.from_facts(facts, "score")
    assert (lead.account_owner, lead.icp_tier, lead.account_domain) == (
        "rep-a01",
        PRIORITY_TIER,
        "initech.example",
    )
    decision = route(routing, lead, RoutingState(), T0)
    assert decision.rep_id == "rep-a01" and decision.method == "named_account"
    assert sla_for(routing, lead, T0).policy == "hand-raisers-and-tier-1"
    stranger = lead.model_copy(update={"account_owner": "nobody"})
    assert route(routing, stranger, RoutingState(), T0).rep_id != "nobody"


def test_scoring_reads_account_traits_for_fit_and_gates_on_an_account_list() -> None:
    body = yaml.safe_load((REPO / "config" / "scoring.yaml").read_text())
    body["fit"].append(
        {
            "name": "target_account",
            "when": {"account": {"trait": "industry", "eq": "Software"}},
            "points": 5,
        }
    )
    body["gates"]["segments"] = [
        {"list": "ABM Engaged Accounts", "gate": {"fit_above": 10, "engagement_above": 5}},
        *body["gates"].get("segments", []),
    ]
    model = parse_scoring_model(body, source="scoring.yaml")
    with_account = compute_scores(model, _facts(HOT))
    without = compute_scores(model, _facts(None))
    assert with_account.fit == without.fit + 5
    assert select_gate(model, frozenset({"ABM Engaged Accounts"}))[0] == "ABM Engaged Accounts"
    body["fit"][-1]["when"] = {"account": {"engaged_contacts": {"at_least": 3}}}
    with pytest.raises(ConfigError, match="fit conditions look at traits and lists only"):
        parse_scoring_model(body, source="scoring.yaml")
