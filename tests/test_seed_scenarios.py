"""Seed paths the lifecycle scenarios did not cover yet, driven the way users drive them.

Segment calls and signed sales webhooks go through the gateway over HTTP, ``revops`` runs as a
subprocess, and the real ContactWorkflow runs its real handoff and journey children, on the
shipped definitions with compressed time (``tests.scenario_support``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from journeys.contract import JourneyProgress
from journeys.program import in_holdout
from revops.ids import contact_id_for
from revops.settings import Settings
from store.repo import Store
from store.routing_state import RoutingBook
from tests.scenario_support import Stack, compressed_config, stack
from tests.sinks import http_sink
from tests.test_scenarios import BUYER

pytestmark = pytest.mark.slow

PAID_SEARCH = {"campaign": {"source": "google", "medium": "cpc", "name": "q1-demo"}}
NOTES = "Budget approved for Q1, two vendors on the shortlist, champion is the VP Engineering."


async def test_seed_001_mql_to_sdr_to_ae_to_customer(
    env: WorkflowEnvironment, any_store: Store, settings: Settings, tmp_path: Path
) -> None:
    async with stack(env.client, any_store, settings, compressed_config(tmp_path)) as s:
        lead = s.user("u-sql")
        await s.segment("identify", userId=lead, traits={**BUYER, "email": "sam@northwind.io"})
        await s.segment("page", userId=lead, name="Pricing", context=PAID_SEARCH)
        await s.track(lead, "Demo Requested")
        mql = await s.contact(lead, lambda c: c.handoff is not None and bool(c.handoff.owner))
        sdr = mql.handoff.owner if mql.handoff else None
        await s.sales(lead, "call_logged", rep_id=sdr)
        await s.sales(lead, "lead_accepted", rep_id=sdr)
        await s.sales(lead, "lead_qualified", rep_id=sdr, amount=150000, notes=NOTES)
        sql = await s.contact(
            lead, lambda c: c.handoff is not None and c.handoff.stage == "ae" and c.stage == "SQL"
        )
        shown_sql = await s.show(lead)
        ae = sql.handoff.owner if sql.handoff else None
        await s.sales(lead, "meeting_booked", rep_id=ae)
        await s.sales(lead, "opportunity_created", rep_id=ae, opportunity_id="o-1", amount=150000)
        await s.sales(lead, "closed_won", rep_id=ae, opportunity_id="o-1", amount=150000)
        await s.contact(lead, lambda c: c.stage == "Customer")
        await s.crm_task("New customer: schedule the kickoff call")
        report = await s.cli("reports", "sla", "--json")
        printed = await s.cli("contacts", "show", lead)
    assert sdr == "rep-a02" and ae == "ae-a11", "SDR by territory, then the strategic AE by size"
    assert shown_sql["owner"] == ae and shown_sql["source_owner"] == sdr
    assert shown_sql["owner_stage"] == "ae" and shown_sql["sla"]["state"] == "waiting"
    assert f"owner: {ae} (AE), qualified by SDR {sdr}" in printed.stdout
    slack = [r.json()["text"] for r in s.posted("/slack")]
    (ae_notice,) = [t for t in slack if t.startswith("New SQL for")]
    assert f"SDR notes: {NOTES}" in ae_notice and "Top behaviours: Requested a demo" in ae_notice
    tasks = [r.json()["task"] for r in s.posted("/crm")]
    assert any(t["owner"] == ae and t["title"] == "Contact new SQL" for t in tasks)
    assert any(t["owner"] == "cs-team" for t in tasks), "customer success takes over as before"
    assert report.returncode == 0, report.stderr
    stages = {line["name"]: line for line in json.loads(report.stdout)["stages"]}
    assert stages["sdr"]["met"] == 1 and stages["ae"]["met"] == 1
    assert stages["ae"]["touched"] == 1
    (paid,) = json.loads(report.stdout)["sources"]
    assert (paid["name"], paid["met"], paid["touched"]) == ("Paid Search", 1, 1)
    traces = [
        t for d in RoutingBook(any_store).decisions(contact_id=mql.contact_id) for t in d.trace
    ]
    assert "ICP tier: tier1, from the contact's fit 65 (>= 60)" in traces
    assert "Booking link: https://meet.example.com/sdr-a02" in slack[0]


async def test_an_operator_setting_sql_hands_the_lead_to_an_ae(
    env: WorkflowEnvironment, store: Store, settings: Settings, tmp_path: Path
) -> None:
    async with stack(env.client, store, settings, compressed_config(tmp_path)) as s:
        lead = s.user("u-set-sql")
        await s.segment("identify", userId=lead, traits={**BUYER, "email": "kai@northwind.io"})
        await s.track(lead, "Demo Requested")
        await s.contact(lead, lambda c: c.handoff is not None and bool(c.handoff.owner))
        moved = await s.cli("contacts", "set-stage", lead, "SQL", "--reason", "qualified on a call")
        assert moved.returncode == 0, moved.stderr
        sql = await s.contact(lead, lambda c: c.handoff is not None and c.handoff.stage == "ae")
        await s.keep_history(lead, "contact_sql_stage_qualifies")
    assert sql.handoff is not None and sql.handoff.source_owner == "rep-a02"
    assert sql.handoff.owner == "rep-a01", "an enterprise lead of unknown size: enterprise AEs"
    slack = [r.json()["text"] for r in s.posted("/slack")]
    (notice,) = [t for t in slack if t.startswith("New SQL for")]
    assert "SDR notes: none" in notice


def _with_holdout(config: Path, journey: str, holdout: dict[str, Any]) -> Path:
    """The compressed definitions, the journey holding out a share of its enrollees."""
    path = config / "journeys" / f"{journey}.yaml"
    body = yaml.safe_load(path.read_text(encoding="utf-8"))
    path.write_text(yaml.safe_dump({**body, "holdout": holdout}, sort_keys=False), "utf-8")
    return config


def _in_group(s: Stack, prefix: str, held: bool) -> str:
    """A user id of this stack whose contact falls in (or out of) the 50% holdout."""
    secret = s.settings.id_secret.get_secret_value()
    for n in range(200):
        user_id = s.user(f"{prefix}{n}")
        contact = contact_id_for(user_id, secret)
        if in_holdout(contact, "whitepaper-nurture", 50) == held:
            return user_id
    raise AssertionError("no contact in the group among 200")


async def test_a_journey_holdout_is_never_sent_to_and_its_lift_is_reported(
    env: WorkflowEnvironment, store: Store, settings: Settings, tmp_path: Path
) -> None:
    holdout = {"percent": 50, "window": "30d"}
    config = _with_holdout(compressed_config(tmp_path), "whitepaper-nurture", holdout)
    async with stack(env.client, store, settings, config) as s:
        held, treated = _in_group(s, "u-held", True), _in_group(s, "u-treat", False)
        for user_id, name in ((held, "Hal"), (treated, "Tia")):
            traits = {**BUYER, "first_name": name, "email": f"{name.lower()}@northwind.io"}
            await s.segment("identify", userId=user_id, traits=traits)
            await s.track(user_id, "Content Downloaded", type="whitepaper")
        await s.email("Your whitepaper is ready, Tia")
        held_progress = await s.progress(held, "whitepaper-nurture", lambda p: bool(p.steps))
        await s.track(held, "Meeting Booked")
        await s.track(treated, "Meeting Booked")
        await s.progress(held, "whitepaper-nurture", lambda p: p.outcome == "goal")
        await s.progress(treated, "whitepaper-nurture", lambda p: p.outcome == "goal")
        stats = await s.cli("journeys", "stats", "whitepaper-nurture", "--json")
        await s.keep_history(held, "journey_held_out_goal", journey="whitepaper-nurture")
    assert [(r.step, r.outcome) for r in held_progress.steps] == [("holdout", "held out")]
    assert not any("Hal" in subject for subject in s.subjects()), "the held out get nothing"
    assert stats.returncode == 0, stats.stderr
    holdout = json.loads(stats.stdout)["holdout"]
    assert holdout["enrolled"] == {"contacts": 1, "converted": 1, "rate": 1.0}
    assert holdout["held_out"] == {"contacts": 1, "converted": 1, "rate": 1.0}
    assert holdout["lift"] == 0.0 and holdout["significant"] is False


async def test_product_signals_score_and_students_score_down(
    env: WorkflowEnvironment, store: Store, settings: Settings, tmp_path: Path
) -> None:
    async with stack(env.client, store, settings, compressed_config(tmp_path)) as s:
        user, student = s.user("u-plg-user"), s.user("u-student")
        traits = {**BUYER, "email": "max@northwind.io", "tech_stack": ["Segment", "Excel"]}
        await s.segment("identify", userId=user, traits=traits)
        await s.track(user, "Feature Used", feature="dashboards")
        await s.track(user, "Email Replied")
        await s.track(user, "Event Attended", name="RevOps Summit")
        school = {**BUYER, "title": "MBA Student", "email": "jo@state.edu"}
        await s.segment("identify", userId=student, traits=school)
        await s.track(student, "Pricing Page Viewed")
        await s.contact(user, lambda c: c.event_counts.get("Event Attended") == 1)
        await s.contact(student, lambda c: c.event_counts.get("Pricing Page Viewed") == 1)
        why_user = json.loads((await s.cli("contacts", "why", user, "--json")).stdout)
        why_student = json.loads((await s.cli("contacts", "why", student, "--json")).stdout)
    card = why_user["score_card"]
    rules = {c["rule"]: c["points"] for c in card["contributions"]}
    assert rules["tech_stack_fit"] == 10 and rules["feature_usage"] == 8
    assert rules["email_reply"] == 15 and rules["event_participation"] == 20
    assert card["model_version"] == "2026.2" and card["fit"] == 75
    negatives = {n["rule"]: n["points"] for n in why_student["score_card"]["negatives"]}
    assert negatives == {"student_or_job_seeker": -40}
    assert why_student["score_card"]["fit"] == 45 - 40, "size, industry, country, minus 40"


async def test_a_trial_ends_extended_with_an_in_app_message_or_churned_with_a_survey(
    env: WorkflowEnvironment, store: Store, settings: Settings, tmp_path: Path
) -> None:
    with http_sink() as product:
        configured = settings.model_copy(
            update={
                "in_app_url": f"{product.url}/in-app",
                "outbound_webhook_secret": SecretStr("whsec-product"),
            }
        )
        config = compressed_config(tmp_path, day=1)
        async with stack(env.client, store, configured, config) as s:
            extended, churned = s.user("u-ext"), s.user("u-churn")
            for user_id, name in ((extended, "Eve"), (churned, "Cal")):
                traits = {**BUYER, "first_name": name, "email": f"{name.lower()}@acme.io"}
                await s.segment("identify", userId=user_id, traits=traits)
                await s.track(user_id, "Trial Started")
            at_end = await s.progress(extended, "trial-onboarding", _at("trial-end"))
            await s.track(extended, "Trial Extended", days=7)
            await s.progress(extended, "trial-onboarding", lambda p: p.outcome is not None)
            done = await s.progress(churned, "trial-onboarding", lambda p: p.outcome is not None)
            await s.email("What got in the way? Two questions")
            ext = await s.contact(extended, lambda c: c.handoff is not None)
            gone = await s.contact(churned, lambda c: bool(c.wakeups))
            ext_progress = await s.progress(extended, "trial-onboarding", lambda p: True)
    assert at_end.current_step == "trial-end"
    outcomes = {r.step: r.outcome for r in ext_progress.steps}
    assert outcomes["extended-in-app"] == "sent" and outcomes["extended-support"] == "sent"
    assert outcomes["extended-sales-touch"] == "requested"
    assert ext.handoff is not None and ext.handoff.trigger == "score", "a sales touch"
    (message,) = [r.json() for r in product.received]
    assert message["title"] == "Seven more days: your evaluation checklist"
    assert message["user_id"] == extended and message["cta"]["label"] == "Open the checklist"
    churn = {r.step: r.outcome for r in done.steps}
    assert churn["churned-survey"] == "sent" and churn["churned-reengage"] == "requested"
    assert [(w.kind, w.cause) for w in gone.wakeups] == [("recycle", "trial_churned")]
    assert "extended-in-app" not in churn, "a churned trial gets no in-app message"


def _at(step: str) -> Callable[[JourneyProgress], bool]:
    return lambda progress: progress.current_step == step


async def test_reports_hygiene_lists_records_missing_what_routing_and_scoring_need(
    env: WorkflowEnvironment, store: Store, settings: Settings, tmp_path: Path
) -> None:
    async with stack(env.client, store, settings, compressed_config(tmp_path)) as s:
        full, sparse = s.user("u-full"), s.user("u-sparse")
        complete = {**BUYER, "email": "ada@acme.io", "company_domain": "acme.io"}
        await s.segment("identify", userId=full, traits={**complete, "tech_stack": ["Segment"]})
        await s.segment("identify", userId=sparse, traits={"email": "bo@gmail.com"})
        await s.contact(sparse, lambda c: c.stage is not None)
        report = await s.cli("reports", "hygiene", "--json")
        printed = await s.cli("reports", "hygiene")
    assert report.returncode == 0, report.stderr
    found = json.loads(report.stdout)
    (record,) = [r for r in found["records"] if r["user_id"] in (full, sparse)]
    assert record["user_id"] == sparse
    assert {"country", "company_domain", "industry", "company_size"} <= set(record["missing"])
    fields = {line["field"]: line for line in found["fields"]}
    assert fields["country"]["needed_by"] == ["routing", "scoring"]
    assert fields["tech_stack"]["needed_by"] == ["scoring"]
    assert "email_domain" not in record["missing"], "an email address gives the domain"
    assert "per field" in printed.stdout


def _sunset_in_seconds(config: Path, quiet: int, answer: int) -> Path:
    """The sunset policy on seconds: quiet for ``quiet``, ``answer`` to answer the touch."""
    lists_path = config / "lists.yaml"
    lists = yaml.safe_load(lists_path.read_text(encoding="utf-8"))
    for item in lists["lists"]:
        if item["name"] == "Sunset Candidates":
            item["when"]["all"][1]["quiet_for"] = quiet
    lists_path.write_text(yaml.safe_dump(lists, sort_keys=False), encoding="utf-8")
    journey_path = config / "journeys" / "sunset.yaml"
    journey = yaml.safe_load(journey_path.read_text(encoding="utf-8"))
    journey["steps"][1]["wait"] = answer
    journey_path.write_text(yaml.safe_dump(journey, sort_keys=False), encoding="utf-8")
    return config


async def test_the_sunset_policy_sends_a_last_chance_touch_then_stops_marketing(
    env: WorkflowEnvironment, store: Store, settings: Settings, tmp_path: Path
) -> None:
    config = _sunset_in_seconds(compressed_config(tmp_path), quiet=3, answer=4)
    async with stack(env.client, store, settings, config) as s:
        quiet, answers = s.user("u-quiet"), s.user("u-answers")
        for user_id, name in ((quiet, "Quinn"), (answers, "Ana")):
            traits = {"first_name": name, "email": f"{name.lower()}@acme.io"}
            await s.segment("identify", userId=user_id, traits=traits)
        await s.email("Should we keep writing to you, Quinn?")
        await s.email("Should we keep writing to you, Ana?")
        await s.track(answers, "Email Clicked", url="https://example.com/stay-subscribed")
        sunset = await s.contact(quiet, lambda c: "Sunset" in c.lists)
        kept = await s.progress(answers, "sunset", lambda p: p.outcome is not None)
        answered = await s.contact(answers, lambda c: True)
        why = json.loads((await s.cli("contacts", "why", quiet, "--json")).stdout)
    assert "Sunset Candidates" in sunset.lists
    assert kept.outcome == "exited" and "Sunset" not in answered.lists
    assert "Sunset" in why["lists"], "out of marketing: a suppression list"
