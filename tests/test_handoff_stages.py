"""SDR, then AE: the handoff's two stages, from the pure routing rules to the real workflow.

At the MQL an SDR (the ``sdr`` teams) owns the lead on the SDR SLA; the SDR's qualification
(``Lead Qualified``, forwarded from the sales webhook's ``lead_qualified``) hands it to an
Account Executive of the ``ae`` teams by territory, segment, account owner and deal size, on the
AE SLA, with a notice carrying the SDR's notes and the lead's top behaviours. The SDR stays the
source. The workflow test runs on the real dev server with real Slack and SMTP sinks.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from temporalio.testing import WorkflowEnvironment

from analysis.sla_report import sla_report
from handoff.contract import HandoffState, SalesActivity
from handoff.routing import (
    RoutingConfig,
    RoutingInput,
    RoutingState,
    route,
    sla_for,
)
from handoff.settings import HandoffSettings
from handoff.sla import apply_sales_activity, begin_stage, start_turn
from revops.settings import Settings
from store.repo import Store
from store.routing_state import RoutingBook
from store.sla import SlaBook
from tests.handoff_support import (
    ROUTING,
    handoff_config,
    handoff_input,
    known_contact,
    notification_sinks,
    sla_of,
    start_handoff,
)
from tests.support import eventually, running_worker, save_history
from workflows.handoff import HandoffWorkflow

NOW = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)  # a Wednesday, 10:00 in New York
SHIPPED = RoutingConfig.model_validate(ROUTING)


def _lead(**fields: Any) -> RoutingInput:
    return RoutingInput(contact_id="c1", **{"country": "US", **fields})


# --- routing by stage, deal size, product interest ------------------------------------------


def test_mqls_go_to_sdr_teams_and_qualified_leads_to_ae_teams_by_deal_size() -> None:
    ent = {"segment": "enterprise"}
    sdr = route(SHIPPED, _lead(**ent), RoutingState(), NOW)
    big = route(SHIPPED, _lead(stage="ae", deal_size=250_000, **ent), RoutingState(), NOW)
    small = route(SHIPPED, _lead(stage="ae", deal_size=20_000, **ent), RoutingState(), NOW)
    mid_market = route(SHIPPED, _lead(stage="ae", deal_size=250_000), RoutingState(), NOW)
    assert (sdr.team, sdr.rep_id) == ("amer-general", "rep-a02"), "AE teams never take an MQL"
    assert (big.team, big.rep_id) == ("amer-strategic", "ae-a11")
    assert (small.team, small.rep_id) == ("amer-enterprise", "rep-a01")
    assert (mid_market.team, mid_market.rep_id) == ("amer-ae", "ae-a21")
    assert any("serves deal sizes 100000+, the lead has 20000" in t for t in small.trace)
    assert not any("amer-enterprise" in t for t in sdr.trace)


def test_a_named_account_goes_to_its_owner_in_the_ae_stage_too() -> None:
    lead = _lead(stage="ae", account_domain="globex.example", deal_size=5_000)
    decision = route(SHIPPED, lead, RoutingState(), NOW)
    assert (decision.method, decision.rep_id) == ("named_account", "rep-a01")


def test_product_interest_routes_to_product_specialists() -> None:
    body: dict[str, Any] = {**ROUTING, "teams": list(ROUTING["teams"])}
    body["teams"].insert(
        0,
        {
            "name": "amer-data",
            "manager": "mgr-amer",
            "calendar": "amer",
            "countries": ["US"],
            "products": ["Data Platform"],
        },
    )
    body["reps"] = [
        *ROUTING["reps"],
        {"id": "d-1", "name": "D", "email": "d@x.io", "team": "amer-data"},
    ]
    config = RoutingConfig.model_validate(body)
    data = route(config, _lead(product_interest="data platform"), RoutingState(), NOW)
    other = route(config, _lead(product_interest="crm"), RoutingState(), NOW)
    assert (data.team, data.rep_id) == ("amer-data", "d-1")
    assert other.team == "amer-general"
    assert any("serves products data platform, the lead has crm" in t for t in other.trace)


def test_the_ae_stage_runs_on_its_own_sla_policy() -> None:
    sdr = sla_for(SHIPPED, _lead(trigger="hand_raiser"), NOW)
    ae = sla_for(SHIPPED, _lead(trigger="hand_raiser", stage="ae"), NOW)
    assert (sdr.policy, sdr.first_touch_within) == (
        "hand-raisers-and-tier-1",
        timedelta(minutes=15),
    )
    assert (ae.policy, ae.first_touch_within) == ("ae-first-touch", timedelta(hours=4))


@pytest.mark.parametrize(
    ("deal_size", "problem"),
    [({"min": 10, "max": 5}, "must be above min"), ({}, "needs min, max or both")],
)
def test_a_bad_deal_size_range_is_refused(deal_size: dict[str, float], problem: str) -> None:
    body: dict[str, Any] = {**ROUTING, "teams": [{**ROUTING["teams"][0], "deal_size": deal_size}]}
    with pytest.raises(ValueError, match=problem):
        RoutingConfig.model_validate(body)


def test_qualify_is_just_an_activity_without_an_ae_stage() -> None:
    state = HandoffState()
    activity = SalesActivity(name="Lead Qualified", at=NOW, properties={"notes": "x"})
    step = apply_sales_activity(state, activity, NOW, HandoffSettings(), stages=False)
    assert (step.kind, step.qualify, state.source) == ("other", False, None)


# --- the workflow ------------------------------------------------------------------------------


async def test_sdr_qualifies_and_an_ae_takes_over_with_the_sdr_notes(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    contact = known_contact(store, "u-sql")
    data = handoff_input(contact, handoff_config(), segment="enterprise")
    notes = "Budget approved for Q1; evaluating two vendors; champion is the VP Eng."
    with notification_sinks(settings) as sinks:
        async with running_worker(env.client, store, sinks.settings):
            handle = await start_handoff(env.client, sinks.settings, data)
            sdr = await eventually(lambda: sla_of(handle), lambda s: s.owner is not None)
            await _say(handle, "Sales Call Logged")
            await _say(handle, "Lead Accepted")
            await eventually(lambda: sla_of(handle), lambda s: s.state == "accepted")
            await _say(handle, "Lead Qualified", notes=notes, amount=180000, rep_id="rep-a02")
            ae = await eventually(lambda: sla_of(handle), lambda s: s.stage == "ae")
            await eventually(lambda: _listed(sinks.slack), lambda texts: len(texts) == 2)
            await _say(handle, "Meeting Booked")
            met = await eventually(lambda: sla_of(handle), lambda s: s.state == "met")
            record = await eventually(
                lambda: _listed(SlaBook(store).get(data.handoff_id)),
                lambda r: r is not None and len(r.turns) == 2 and r.state == "met",
            )
            await save_history(handle, "handoff_sdr_then_ae")
    assert (sdr.owner, sdr.stage) == ("rep-a02", "sdr")
    assert (ae.owner, ae.team, ae.source_owner) == ("ae-a11", "amer-strategic", "rep-a02")
    assert ae.policy == "ae-first-touch" and ae.state == "waiting" and ae.sla_met is None
    assert met.sla_met is True
    sdr_text, ae_text = sinks.slack()
    assert "Booking link: https://meet.example.com/sdr-a02" in sdr_text
    assert ae_text.startswith("New SQL for AMER Strategic AE (ae-a11) from SDR rep-a02")
    assert f"SDR notes: {notes}" in ae_text and "Deal size: 180000" in ae_text
    assert "Top behaviours: Demo Requested, Pricing Page Viewed, Case Study Viewed" in ae_text
    assert "Booking link: https://meet.example.com/ae-a11" in ae_text
    assert [(t.stage, t.owner, t.responded_at is not None) for t in record.turns] == [
        ("sdr", "rep-a02", True),
        ("ae", "ae-a11", True),
    ]
    steps = [(d.step, d.rep_id) for d in RoutingBook(store).decisions(contact_id=contact)]
    assert steps == [("0", "rep-a02"), ("release", "rep-a02"), ("1", "ae-a11")]
    report = sla_report([record], datetime.now(UTC))
    assert [(line.name, line.met, line.touched) for line in report.stages] == [
        ("sdr", 1, 1),
        ("ae", 1, 1),
    ]
    touched = {line.name: line.touched for line in report.teams}
    assert touched == {"amer-general": 1, "amer-strategic": 1}, "each touch to who touched"


async def _say(handle: Any, name: str, **properties: Any) -> None:
    activity = SalesActivity(name=name, at=datetime.now(UTC), properties=properties)
    await handle.signal(HandoffWorkflow.sales_activity, activity)


async def _listed(value: Any) -> Any:
    return value() if callable(value) else value


# --- routing depth: ICP tier from fit, the trait overriding ---------------------------------


def test_the_icp_tier_comes_from_fit_unless_the_trait_says_otherwise() -> None:
    derived = route(SHIPPED, _lead(fit=72), RoutingState(), NOW)
    assert "ICP tier: tier1, from the contact's fit 72 (>= 60)" in derived.trace
    account = route(SHIPPED, _lead(fit=72, account_fit=45), RoutingState(), NOW)
    assert "ICP tier: tier2, from the account's fit 45 (>= 40)" in account.trace
    override = route(SHIPPED, _lead(fit=72, icp_tier="tier3"), RoutingState(), NOW)
    assert not any(t.startswith("ICP tier") for t in override.trace), "the trait wins"
    score_mql = sla_for(SHIPPED, _lead(fit=72), NOW)
    low_fit = sla_for(SHIPPED, _lead(fit=30), NOW)
    assert score_mql.policy == "hand-raisers-and-tier-1", "tier 1 by fit gets the fast SLA"
    assert low_fit.policy == "score-mql"


def test_icp_tiers_must_go_from_the_highest_fit_down() -> None:
    body = {**ROUTING, "icp_tiers": [{"name": "t2", "min_fit": 40}, {"name": "t1", "min_fit": 60}]}
    with pytest.raises(ValueError, match="must have a lower min_fit than t2"):
        RoutingConfig.model_validate(body)


# --- any order of sales activity ---------------------------------------------------------------

_NAMES = [
    "Sales Call Logged",
    "Lead Accepted",
    "Lead Qualified",
    "SQL Stage Entered",
    "Meeting Booked",
    "Opportunity Created",
    "Closed Won",
    "Lead Rejected",
    "Unknown Thing",
]


@given(st.lists(st.sampled_from(_NAMES), max_size=12))
def test_any_order_of_sales_activity_keeps_the_stages_sound(names: list[str]) -> None:
    config = handoff_config()
    lead = RoutingInput(contact_id="c-1", trigger="hand_raiser", country="US")
    state = HandoffState()
    first = route(config.routing, lead, RoutingState(), NOW)
    start_turn(state, first, sla_for(config.routing, lead, NOW, decision=first), NOW)
    settings = HandoffSettings()
    for minute, name in enumerate(names, start=1):
        at = NOW + timedelta(minutes=minute)
        step = apply_sales_activity(
            state, SalesActivity(name=name, at=at), at, settings, stages=True
        )
        if step.qualify:
            ae_lead = lead.model_copy(update={"stage": "ae"})
            decision = route(config.routing, ae_lead, RoutingState(), at)
            begin_stage(
                state, decision, sla_for(config.routing, ae_lead, at, decision=decision), at
            )
    stages = [turn.stage for turn in state.turns]
    assert stages == sorted(stages, key=["sdr", "ae"].index), "SDR turns, then AE turns"
    assert stages.count("ae") <= 1, "qualified once"
    assert (state.stage == "ae") == (state.source is not None) == ("ae" in stages)
    if state.source is not None:
        assert state.source.owner == "rep-a02" and state.turns[-1].owner != "rep-a02"
    if state.sla_met is not None:
        assert state.responded_at is not None
