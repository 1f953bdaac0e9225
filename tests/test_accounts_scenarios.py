"""Account-based marketing end to end, the way users drive it (seed 001, "Account-Based
Marketing Orchestration"): Segment calls through the gateway over HTTP, the real contact and
account workflows with their journeys and handoffs, email into a real SMTP server, Slack and
CRM posts into a real HTTP server, ``revops accounts`` and ``contacts show`` as subprocesses.
Shipped definitions on compressed time (tests/scenario_support.py)."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from revops.settings import Settings
from store.repo import Store
from tests.scenario_support import Stack, compressed_config, stack
from tests.support import eventually

pytestmark = pytest.mark.slow


def _at_once(body: dict[str, Any]) -> None:
    body["broadcast_seconds"] = 0  # members hear every change at once (30 s shipped)


def _domain() -> str:
    """A company domain for this test only (an account's id derives from its domain)."""
    return f"initech-{uuid.uuid4().hex[:8]}.example"


def _person(title: str, email: str, first_name: str) -> dict[str, Any]:
    return {
        "email": email,
        "first_name": first_name,
        "title": title,
        "company_size": 450,
        "industry": "Software",
        "country": "US",
    }


async def _account(s: Stack, value: str) -> dict[str, Any] | None:
    """``revops accounts show VALUE --json``, or None while there is no such account."""
    shown = await s.cli("accounts", "show", value, "--json")
    if shown.returncode == 1:
        return None
    assert shown.returncode == 0, shown.stderr
    view: dict[str, Any] = json.loads(shown.stdout)
    return view


async def _account_when(s: Stack, value: str, check: Any) -> dict[str, Any]:
    found = await eventually(
        lambda: _account(s, value), lambda v: v is not None and check(v), within=60
    )
    assert found is not None
    return found


async def _task_owners(s: Stack, title: str) -> list[str]:
    return [
        r.json()["task"]["owner"] for r in s.posted("/crm") if r.json()["task"]["title"] == title
    ]


def _alerts(s: Stack, name: str) -> list[str]:
    return [
        r.json()["text"] for r in s.posted("/slack") if f"Account play: {name}" in r.json()["text"]
    ]


async def test_three_colleagues_engage_and_the_account_play_starts_exactly_once(
    env: WorkflowEnvironment, any_store: Store, settings: Settings, tmp_path: Path
) -> None:
    domain = _domain()
    async with stack(
        env.client, any_store, settings, compressed_config(tmp_path, accounts=_at_once)
    ) as s:
        cfo, vp, eng, analyst = (s.user(n) for n in ("u-cfo", "u-vp", "u-eng", "u-analyst"))
        people = {
            cfo: _person("CFO", f"cfo@{domain}", "Carol"),
            vp: _person("VP Engineering", f"vp@{domain}", "Victor"),
            eng: _person("Staff Engineer", f"eng@{domain}", "Erin"),
            analyst: _person("Data Analyst", f"ana@{domain}", "Ana"),
        }
        for user, traits in people.items():
            await s.segment("identify", userId=user, traits=traits)
        group = {"name": "Initech", "website": f"https://www.{domain}", "owner": "rep-a01"}
        await s.segment("group", userId=cfo, groupId=s.user("g-initech"), traits=group)
        await s.segment("page", userId=vp, name="Pricing")
        await s.segment("page", userId=eng, name="Integrations")
        before = await _account_when(s, domain, lambda v: v["engaged_contacts"] == 2)
        assert before["priority"] == "normal" and before["plays"] == 0
        assert before["owner"] == "rep-a01" and before["name"] == "Initech"

        await s.segment("page", userId=cfo, name="Pricing")  # the CFO's visit
        after = await _account_when(s, domain, lambda v: v["plays"] == 1)
        assert after["priority"] == "high", "an executive's engagement raises the priority"
        assert after["committee"] == ["economic_buyer", "champion", "technical_evaluator", "user"]
        assert {m["user_id"] for m in after["members"] if m["engaged"]} == {cfo, vp, eng}
        title = "Account play: Initech (3 engaged)"
        task = await s.crm_task(title)
        assert "economic buyer, executive" in task["description"]
        owners = await eventually(lambda: _task_owners(s, title), lambda o: len(o) == 2)
        assert sorted(owners) == ["marketing", "rep-a01"], "a joint alert: owner and marketing"
        await s.email("A note from our founder: what teams like yours are changing this year")
        await s.email("Your colleagues are looking at us too: the ROI calculator and business case")
        await s.email("How it fits your stack: the technical deep dive")

        await s.segment("page", userId=analyst, name="Pricing")  # a fourth member engages
        await _account_when(s, domain, lambda v: v["engaged_contacts"] == 4)
        await s.contact(analyst, lambda c: "ABM Engaged Accounts" in c.lists)
        await asyncio.sleep(2)
        assert len(_alerts(s, "Initech")) == 1, "the joint alert goes out once per play"
        assert (await _account(s, domain) or {})["plays"] == 1

        shown = await s.show(cfo)
        assert shown["account"]["name"] == "Initech" and shown["account"]["via"] == "group"
        assert "Executive-Engaged Accounts" in shown["lists"]

        # Routing honours the account's named owner for every member: a hand-raiser of it
        # goes to rep-a01, not to the territory's round-robin.
        await s.track(eng, "Demo Requested")
        routed = await s.contact(
            eng, lambda c: c.handoff is not None and c.handoff.owner is not None
        )
        assert routed.handoff is not None and routed.handoff.owner == "rep-a01"
        listed = await s.cli("accounts", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        row = next(r for r in json.loads(listed.stdout) if r["domain"] == domain)
        assert row["members"] == 4 and row["plays"] == 1
        await s.keep_history(cfo, "contact_accounts_abm_member")


async def test_a_free_mail_contact_joins_no_account(
    env: WorkflowEnvironment, store: Store, settings: Settings, tmp_path: Path
) -> None:
    async with stack(
        env.client, store, settings, compressed_config(tmp_path, accounts=_at_once)
    ) as s:
        kim = s.user("u-kim")
        await s.segment("identify", userId=kim, traits=_person("CEO", "kim@gmail.com", "Kim"))
        await s.segment("page", userId=kim, name="Pricing")
        await s.contact(kim, lambda c: c.events_applied == 2)
        shown = await s.show(kim)
        assert shown["account"] is None
        missing = await s.cli("accounts", "show", "gmail.com")
        assert missing.returncode == 1 and "no account" in missing.stderr


async def test_moving_a_contact_between_accounts_updates_both(
    env: WorkflowEnvironment, store: Store, settings: Settings, tmp_path: Path
) -> None:
    first, second = _domain(), _domain()
    async with stack(
        env.client, store, settings, compressed_config(tmp_path, accounts=_at_once)
    ) as s:
        mover, stayer = s.user("u-mover"), s.user("u-stayer")
        await s.segment("identify", userId=mover, traits=_person("CTO", f"m@{first}", "Mo"))
        await s.segment("identify", userId=stayer, traits=_person("CFO", f"s@{second}", "Sam"))
        await s.segment("page", userId=mover, name="Pricing")
        await _account_when(s, first, lambda v: len(v["members"]) == 1)
        await s.segment(
            "group", userId=mover, groupId=s.user("g-second"), traits={"website": second}
        )
        moved = await _account_when(s, second, lambda v: len(v["members"]) == 2)
        assert {m["user_id"] for m in moved["members"]} == {mover, stayer}
        emptied = await _account_when(s, first, lambda v: not v["members"])
        assert emptied["engaged_contacts"] == 0
        shown = await s.show(mover)
        assert shown["account"]["domain"] == second
