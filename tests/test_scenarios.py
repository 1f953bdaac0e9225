"""The lifecycle loop end to end, the way users drive it, on SQLite and PostgreSQL stores.

Every scenario runs the real product (``tests.scenario_support.stack``): Segment calls and
signed sales webhooks through the gateway over HTTP, the ``revops`` CLI as a subprocess, the
real ContactWorkflow with its real journey and handoff children, email into a real SMTP
server, Slack and CRM posts into a real HTTP server. Definitions are the shipped ones on
compressed time (a day lasts a few seconds; see the support module and README "Tests").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from temporalio.testing import WorkflowEnvironment

from journeys.contract import JourneyProgress
from revops.settings import Settings
from store.repo import Store
from tests.scenario_support import compressed_config, stack

pytestmark = pytest.mark.slow

BUYER = {
    "email": "dana@northwind-robotics.com",
    "first_name": "Dana",
    "company": "Northwind Robotics",
    "company_size": 2500,
    "industry": "Software",
    "title": "VP Engineering",
    "country": "US",
}
"""An ideal enterprise buyer (fit 65: the Enterprise list and its gate)."""


def _outcomes(progress: JourneyProgress) -> dict[str, str]:
    return {s.step: s.outcome for s in progress.steps}


def _buyer(name: str) -> dict[str, Any]:
    return {**BUYER, "first_name": name, "email": f"{name.lower()}@northwind-robotics.com"}


async def test_enterprise_path_from_anonymous_pages_to_a_customer_success_task(
    env: WorkflowEnvironment, any_store: Store, settings: Settings, tmp_path: Path
) -> None:
    config = compressed_config(tmp_path, day=3)
    async with stack(env.client, any_store, settings, config) as s:
        ent = s.user("u-ent")
        await s.segment("page", anonymousId=s.user("anon"), name="Home", properties={"path": "/"})
        await s.segment("page", anonymousId=s.user("anon"), name="Pricing")
        await s.segment("identify", userId=ent, anonymousId=s.user("anon"), traits=BUYER)
        await s.track(ent, "Content Downloaded", type="whitepaper")
        await s.email("Your whitepaper is ready, Dana")
        clicked = {"journey": "whitepaper-nurture", "step": "d0-confirmation"}
        await s.track(ent, "Email Clicked", **clicked, url="https://example.com/whitepaper")
        await s.email("Going deeper: how teams put this into practice")  # the engaged branch
        await s.segment("page", userId=ent, name="Pricing")
        await s.segment("page", userId=ent, name="Pricing")
        await s.track(ent, "Demo Requested")
        mql = await s.contact(ent, lambda c: c.handoff is not None and bool(c.handoff.owner))
        await s.email("We got your demo request")
        owner = mql.handoff.owner if mql.handoff else None
        shown_mql = await s.show(ent)
        await s.sales(ent, "lead_accepted", rep_id=owner)
        await s.contact(ent, lambda c: c.stage == "SAL")
        await s.sales(ent, "opportunity_created", rep_id=owner)
        await s.sales(ent, "closed_won", rep_id=owner, properties={"amount": 48000})
        await s.contact(ent, lambda c: c.stage == "Customer")
        kickoff = await s.crm_task("New customer: schedule the kickoff call")
        await s.email("Welcome, Dana: your onboarding plan")
        customer = await s.show(ent)
    stages = [e["stage"] for e in customer["stage_history"]]
    assert stages == ["Subscriber", "Lead", "MQL", "SAL", "Opportunity", "Customer"]
    assert customer["event_counts"]["Home Page Viewed"] == 1, "anonymous pages joined"
    assert customer["event_counts"]["Pricing Page Viewed"] == 3
    assert shown_mql["stage"] == "MQL" and shown_mql["owner"] == owner
    assert shown_mql["sla"]["deadline"], "an owner with an SLA deadline"
    assert kickoff["owner"] == "customer-success"
    tasks = [r.json()["task"] for r in s.posted("/crm")]
    assert any(t["owner"] == "cs-team" for t in tasks), "the handoff tells customer success"


async def test_plg_trial_converts_to_customer_and_customer_onboarding_starts(
    env: WorkflowEnvironment, any_store: Store, settings: Settings, tmp_path: Path
) -> None:
    async with stack(env.client, any_store, settings, compressed_config(tmp_path)) as s:
        plg = s.user("u-plg")
        await s.segment("identify", userId=plg, traits=_buyer("Lee"))
        sent = await s.cli("events", "send", plg, "Trial Started")
        assert sent.returncode == 0, sent.stderr
        await s.email("Welcome aboard, Lee: start here")
        converted = await s.cli("events", "send", plg, "Subscription Started")
        assert converted.returncode == 0, converted.stderr
        await s.contact(plg, lambda c: c.stage == "Customer")
        await s.email("Welcome, Lee: your onboarding plan")
        trial = await s.progress(plg, "trial-onboarding", lambda p: p.outcome is not None)
        customer = await s.show(plg)
        await s.keep_history(plg, "contact_lifecycle_trial_to_customer")
    assert [e["stage"] for e in customer["stage_history"]] == ["Subscriber", "Lead", "Customer"]
    assert trial.outcome == "goal"
    assert [j["journey"] for j in customer["journeys"]] == ["customer-onboarding"]


def _recycle_soon(body: dict[str, Any]) -> None:
    """Recycle a lead rejected as not ready after 3 days instead of 30."""
    body["causes"]["rejected"]["reasons"]["Not Ready"]["delay"] = "3d"


async def test_a_rejected_lead_stops_its_demo_follow_up_and_is_recycled_to_re_nurture(
    env: WorkflowEnvironment, any_store: Store, settings: Settings, tmp_path: Path
) -> None:
    config = compressed_config(tmp_path, recycle=_recycle_soon)
    async with stack(env.client, any_store, settings, config) as s:
        rej = s.user("u-rej")
        await s.segment("identify", userId=rej, traits=_buyer("Ray"))
        await s.track(rej, "Demo Requested")
        mql = await s.contact(rej, lambda c: c.handoff is not None and bool(c.handoff.owner))
        await s.email("We got your demo request")
        owner = mql.handoff.owner if mql.handoff else None
        await s.sales(rej, "lead_rejected", reason="Not Ready", rep_id=owner)
        demo = await s.progress(rej, "demo-follow-up", lambda p: p.outcome is not None)
        rejected = await s.contact(rej, lambda c: bool(c.wakeups))
        assert "Re-nurture" not in rejected.lists, "not before the policy's delay"
        await s.email("Ray, a lot has changed since we spoke", within=60)
        recycled = await s.show(rej)
        why = await s.cli("contacts", "why", rej)
        await s.keep_history(rej, "contact_lifecycle_rejected_recycled")
    assert demo.outcome in ("stopped", "exited")
    assert "Still want that demo? Pick a time here" not in s.subjects()
    assert rejected.handoff is not None and rejected.handoff.outcome == "rejected"
    assert rejected.wakeups[0].reason == "rejected by sales: Not Ready"
    assert recycled["stage"] == "MQL", "the stage never demotes"
    assert "Re-nurture" in recycled["lists"]
    assert [j["journey"] for j in recycled["journeys"]] == ["renurture"]
    assert "recycled after rejected by sales: Not Ready" in why.stdout


async def test_do_not_contact_keeps_the_whitepaper_nurture_away_and_why_says_so(
    env: WorkflowEnvironment, any_store: Store, settings: Settings, tmp_path: Path
) -> None:
    async with stack(env.client, any_store, settings, compressed_config(tmp_path)) as s:
        dnc = s.user("u-dnc")
        await s.segment("identify", userId=dnc, traits=_buyer("Kim"))
        await s.contact(dnc, lambda c: c.events_applied == 1)
        added = await s.cli("lists", "add", "Do Not Contact", dnc)
        assert added.returncode == 0, added.stderr
        await s.contact(dnc, lambda c: "Do Not Contact" in c.lists)
        await s.track(dnc, "Content Downloaded", type="whitepaper")
        state = await s.contact(dnc, lambda c: c.events_applied == 2)
        why = await s.cli("contacts", "why", dnc)
    assert state.enrollments == [] and s.subjects() == []
    assert "not enrolled in whitepaper-nurture: on suppression list Do Not Contact" in why.stdout
    assert "Suppressed: on Do Not Contact" in why.stdout


async def test_one_click_unsubscribe_while_a_journey_waits_stops_the_next_email(
    env: WorkflowEnvironment, any_store: Store, settings: Settings, tmp_path: Path
) -> None:
    async with stack(env.client, any_store, settings, compressed_config(tmp_path)) as s:
        unsub = s.user("u-unsub")
        await s.segment("identify", userId=unsub, traits=_buyer("Sam"))
        await s.track(unsub, "Content Downloaded", type="whitepaper")
        blog = await s.email("Five takeaways from the whitepaper")
        link = urlsplit(str(blog["List-Unsubscribe"]).strip("<>"))
        answer = await s.http.post(
            f"{link.path}?{link.query}", content=b"List-Unsubscribe=One-Click"
        )
        assert answer.status_code == 200, answer.text
        received = len(s.inbox)
        nurture = await s.progress(
            unsub, "whitepaper-nurture", lambda p: "d5-case-study" in _outcomes(p)
        )
    assert _outcomes(nurture)["d3-resend"] == "suppressed"
    assert _outcomes(nurture)["d5-case-study"] == "suppressed"
    assert "unsubscribed" in next(r.detail for r in nurture.steps if r.step == "d5-case-study")
    assert len(s.inbox) == received, "nothing after the unsubscribe"


async def test_a_demo_request_pauses_the_nurture_which_resumes_after_the_demo_follow_up(
    env: WorkflowEnvironment, any_store: Store, settings: Settings, tmp_path: Path
) -> None:
    async with stack(env.client, any_store, settings, compressed_config(tmp_path)) as s:
        pre = s.user("u-pre")
        await s.segment("identify", userId=pre, traits=_buyer("Pat"))
        await s.track(pre, "Content Downloaded", type="whitepaper")
        await s.email("Your whitepaper is ready, Pat")
        await s.track(pre, "Demo Requested")
        paused = await s.progress(pre, "whitepaper-nurture", lambda p: p.status == "paused")
        await s.email("Still want that demo? Pick a time here", within=60)
        await s.email("Five takeaways from the whitepaper", within=60)
        state = await s.contact(pre, lambda c: True)
        decisions = s.decisions(state.contact_id)
        await s.keep_history(pre, "contact_lifecycle_resume_after_preemption")
        await s.keep_history(pre, "journey_lifecycle_resumed", "whitepaper-nurture")
    assert any(line.startswith("paused whitepaper-nurture: hand-raiser") for line in decisions)
    assert any(line.startswith("resumed whitepaper-nurture") for line in decisions)
    subjects = s.subjects()
    reminder = subjects.index("Still want that demo? Pick a time here")
    assert subjects.index("Five takeaways from the whitepaper") > reminder
    assert paused.current_step is not None
    assert [e.journey for e in state.enrollments] == ["whitepaper-nurture"]
