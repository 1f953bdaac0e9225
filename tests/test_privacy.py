"""Privacy requests, driven as users drive them, on SQLite and PostgreSQL (docs/privacy.md).

Erasure: a person with a journey, a handoff, sends and a CRM task (all made by the real
workflows through the gateway) is erased with ``revops contacts erase``; then every column of
every table is scanned for their address, name and ids, Temporal is asked for their
executions, a second request through the signed API is answered "already", a late event is
refused, and a new profile with the same address is never emailed.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, select, table, text
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from gateway.sales import SIGNATURE_HEADER, sign
from journeys.contract import JourneyProgress
from revops.ids import contact_workflow_id
from revops.settings import Settings
from store.erase import Privacy
from store.export import SECTIONS
from store.repo import Store
from tests.scenario_support import Stack, compressed_config, stack
from tests.sinks import part_of
from tests.support import eventually

pytestmark = pytest.mark.slow

REASON = "GDPR Art. 17 request #4411"


def _person(tag: str) -> dict[str, Any]:
    return {
        "email": f"Zelda.Quennell.{tag}@northwind-robotics.com",
        "first_name": "Zelda",
        "last_name": "Quennell",
        "phone": "+1 555 0100",
        "company": "Northwind Robotics",
        "company_size": 2500,
        "industry": "Software",
        "title": "VP Engineering",
        "country": "US",
    }


def scan(store: Store, needles: list[str]) -> list[str]:
    """Every (table.column) of the database whose value contains one of ``needles``."""
    lowered = [n.lower() for n in needles]
    found: list[str] = []
    with store.engine.connect() as connection:
        for name in inspect(connection).get_table_names():
            for row in connection.execute(text(f'SELECT * FROM "{name}"')).mappings():
                for column, value in row.items():
                    shown = json.dumps(value, default=str).lower()
                    found += [f"{name}.{column}" for n in lowered if n in shown]
    return sorted(set(found))


def _outcomes(progress: JourneyProgress) -> dict[str, str]:
    return {s.step: s.outcome for s in progress.steps}


async def _executions(client: Client, contact_id: str) -> list[str]:
    query = f"ContactId = '{contact_id}' OR WorkflowId = '{contact_workflow_id(contact_id)}'"
    return [w.id async for w in client.list_workflows(query)]


async def _described(client: Client, workflow_ids: list[str]) -> list[str]:
    """Those of ``workflow_ids`` Temporal still describes."""
    found = []
    for workflow_id in workflow_ids:
        try:
            await client.get_workflow_handle(workflow_id).describe()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            continue
        found.append(workflow_id)
    return found


async def _erase_via_api(s: Stack, user_id: str) -> dict[str, Any]:
    body = json.dumps(
        {"user_id": user_id, "reason": REASON, "requested_by": "privacy-desk"}
    ).encode()
    secret = s.settings.webhook_secrets[0].get_secret_value()
    headers = {
        SIGNATURE_HEADER: sign(body, secret, int(time.time())),
        "Content-Type": "application/json",
    }
    answer = await s.http.post("/v1/privacy/erasures", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def _build_up(s: Stack, user: str, anon: str, person: dict[str, Any]) -> str:
    """A person with a page view, a journey email, a handoff with its CRM task; their id."""
    await s.segment("page", anonymousId=anon, name="Pricing")
    await s.segment("identify", userId=user, anonymousId=anon, traits=person)
    await s.track(user, "Content Downloaded", type="whitepaper")
    await s.email("Your whitepaper is ready, Zelda")
    await s.track(user, "Demo Requested")
    await s.contact(user, lambda c: c.handoff is not None and bool(c.handoff.owner))
    await s.email("We got your demo request")
    contact_id = s.store.resolve(user)
    assert contact_id is not None
    with s.store.engine.connect() as connection:

        def tasks() -> int:
            query = select(text("count(*)")).select_from(table("crm_tasks"))
            return int(connection.execute(query).scalar() or 0)

        async def count() -> int:
            return tasks()

        await eventually(count, lambda n: n > 0)
    return contact_id


async def test_erasure_removes_the_person_from_every_table_and_temporal(
    env: WorkflowEnvironment, any_store: Store, settings: Settings, tmp_path: Path
) -> None:
    async with stack(env.client, any_store, settings, compressed_config(tmp_path)) as s:
        user, anon = s.user("u-erase"), s.user("anon-erase")
        person = _person(s.tag)
        contact_id = await _build_up(s, user, anon, person)
        needles = [person["email"], "Zelda", "Quennell", user, anon, "555 0100"]
        assert len(scan(any_store, needles)) > 5, "the person is spread over many tables"
        before = await _executions(s.client, contact_id)
        assert len(before) >= 3, "contact, journeys, handoff"

        erased = await s.cli("contacts", "erase", user, "--reason", REASON, "--json")
        assert erased.returncode == 0, erased.stderr
        record = json.loads(erased.stdout)

        left = scan(any_store, needles)
        described = await eventually(
            lambda: _described(s.client, before), lambda ids: ids == [], within=60
        )
        gone = await eventually(
            lambda: _executions(s.client, contact_id), lambda ids: ids == [], within=60
        )
        again = await _erase_via_api(s, user)
        shown = await s.cli("contacts", "show", user)

        await s.track(user, "Pricing Page Viewed")  # a late event: refused
        await s.segment("page", anonymousId=anon, name="Pricing")
        refused = any_store.resolve(user), scan(any_store, [user, anon])

        newcomer = s.user("u-back")  # the same address comes back under a new user id
        back = {**person, "email": person["email"].upper(), "first_name": "Z"}
        await s.segment("identify", userId=newcomer, traits=back)
        await s.track(newcomer, "Content Downloaded", type="whitepaper")
        progress = await s.progress(
            newcomer, "whitepaper-nurture", lambda p: "d0-confirmation" in _outcomes(p)
        )
        ledger = Privacy(any_store).erasure(user)
    assert left == [], f"personal data left in {left}"
    assert described == [] and gone == []
    assert record["already"] is False and record["workflows_deleted"] >= 3
    assert {"contacts", "events", "sends", "crm_tasks", "identities"} <= set(record["rows_removed"])
    assert record["reason"] == REASON and record["erased_by"].startswith("cli:")
    assert again["already"] is True and again["subject_hash"] == record["subject_hash"]
    assert shown.returncode == 1, "the erased person is unknown"
    assert refused == (None, []), "later events of the erased ids are refused"
    first = next(r for r in progress.steps if r.step == "d0-confirmation")
    assert first.outcome == "skipped" and "erased" in first.detail
    assert "Your whitepaper is ready, Z" not in s.subjects()
    assert ledger is not None and ledger.completed_at is not None


async def test_erasure_answers_bad_requests_without_storing_anything(
    env: WorkflowEnvironment, store: Store, settings: Settings, tmp_path: Path
) -> None:
    async with stack(env.client, store, settings, compressed_config(tmp_path)) as s:
        unknown = await s.cli("contacts", "erase", f"nobody-{uuid.uuid4()}", "--reason", REASON)
        blank = await s.cli("contacts", "erase", "someone", "--reason", " ")
        body = json.dumps({"user_id": "x", "reason": REASON, "requested_by": "me"}).encode()
        unsigned = await s.http.post(
            "/v1/privacy/erasures", content=body, headers={"Content-Type": "application/json"}
        )
        counts = store.row_counts()
    assert unknown.returncode == 1 and "no contact" in unknown.stderr
    assert blank.returncode == 2
    assert unsigned.status_code == 401
    assert counts["erasures"] == 0 and counts["erased_ids"] == 0


async def test_export_holds_everything_the_store_holds_about_the_person(
    env: WorkflowEnvironment, store: Store, settings: Settings, tmp_path: Path
) -> None:
    async with stack(env.client, store, settings, compressed_config(tmp_path)) as s:
        user, anon = s.user("u-export"), s.user("anon-export")
        person = _person(s.tag)
        contact_id = await _build_up(s, user, anon, person)
        await s.track(user, "Consent Updated", gdpr_consent=True, source="preference-center")
        await s.contact(user, lambda c: c.events_applied >= 5)
        live = await s.contact(user, lambda c: c.handoff is not None)
        before = _held(store, contact_id)
        exported = await s.cli("contacts", "export", user)
        after = _held(store, contact_id)
        written = await s.cli("contacts", "export", user, "-o", str(tmp_path / "out.json"))
        unknown = await s.cli("contacts", "export", f"nobody-{uuid.uuid4()}")
    assert exported.returncode == 0, exported.stderr
    document = json.loads(exported.stdout)
    assert written.returncode == 0 and json.loads((tmp_path / "out.json").read_text())
    assert unknown.returncode == 1
    assert document["contact_ids"] == [contact_id]
    assert document["profile"][0]["email"] == person["email"]
    assert document["profile"][0]["traits"]["first_name"] == "Zelda"
    sections = {**SECTIONS}
    for name, rows in before.items():  # the workflows may add rows while it exports
        assert rows <= len(document[sections.get(name, name)]) <= after[name], name
    events = [e["name"] for e in document["events"]]
    assert {"Pricing Page Viewed", "Content Downloaded", "Demo Requested"} <= set(events)
    assert [s["stage"] for s in document["stages"]] == ["Subscriber", "Lead", "MQL"]
    assert any(t["owner"] for t in document["crm_tasks"])
    assert {s["channel"] for s in document["sends"]} >= {"email", "crm_task"}
    assert document["scores"] and document["decisions"] and document["lists"]
    assert document["owner"] == (live.handoff.owner if live.handoff else None)
    consent = document["consent_history"][-1]
    assert consent["event"] == "Consent Updated" and consent["source"] == "preference-center"


def _held(store: Store, contact_id: str) -> dict[str, int]:
    """Rows per table (with a contact_id column, outbox aside) that name the contact."""
    held: dict[str, int] = {}
    with store.engine.connect() as connection:
        for name in inspect(connection).get_table_names():
            columns = {c["name"] for c in inspect(connection).get_columns(name)}
            if "contact_id" not in columns or name in ("contacts", "outbox"):
                continue
            query = text(f'SELECT count(*) FROM "{name}" WHERE contact_id = :c')
            held[name] = int(connection.execute(query, {"c": contact_id}).scalar() or 0)
    return held


def _text_after_confirmation(body: dict[str, Any]) -> None:
    """The whitepaper nurture also texts the link right after its confirmation email."""
    text = {"channel": "sms", "name": "Link by text", "text": "Your whitepaper: https://x.io/wp"}
    body["steps"].insert(2, {"id": "d0-text", "send": text})


async def test_sms_needs_an_opt_in_while_email_flows_and_why_names_the_consent(
    env: WorkflowEnvironment, store: Store, settings: Settings, tmp_path: Path
) -> None:
    edits: dict[str, Any] = {"whitepaper-nurture": _text_after_confirmation}
    async with stack(env.client, store, settings, compressed_config(tmp_path, **edits)) as s:
        user = s.user("u-sms")
        await s.segment("identify", userId=user, traits=_person(s.tag))
        await s.track(user, "Content Downloaded", type="whitepaper")
        await s.email("Your whitepaper is ready, Zelda")
        nurture = await s.progress(user, "whitepaper-nurture", lambda p: "d0-text" in _outcomes(p))
        why = await s.cli("contacts", "why", user)
        grant = {"purpose": "sms", "granted": True, "source": "sms-keyword"}
        await s.track(user, "Consent Updated", **grant)
        await s.contact(user, lambda c: c.events_applied >= 3)
        after = json.loads((await s.cli("contacts", "why", user, "--json")).stdout)
    assert _outcomes(nurture)["d0-text"] == "skipped"
    assert _outcomes(nurture)["d0-confirmation"] == "sent"
    assert why.returncode == 0, why.stderr
    assert "SMS no opt-in" in why.stdout and "email marketing allowed" in why.stdout
    assert "sms whitepaper-nurture" in why.stdout or "Link by text" in why.stdout
    assert "blocked: consent: no SMS opt-in" in why.stdout
    sms = next(p for p in after["consent"] if p["purpose"] == "sms")
    assert sms["allowed"] is True and sms["source"] == "sms-keyword"


async def test_double_opt_in_holds_marketing_until_the_address_is_confirmed(
    env: WorkflowEnvironment, store: Store, settings: Settings, tmp_path: Path
) -> None:
    async with stack(env.client, store, settings, compressed_config(tmp_path)) as s:
        user = s.user("u-doi")
        await s.segment("identify", userId=user, traits={**_person(s.tag), "country": "DE"})
        ask = await s.email("Please confirm your email address")
        await s.track(user, "Content Downloaded", type="whitepaper")
        await s.email("Your whitepaper is ready, Zelda")  # transactional: not held back
        held = await s.progress(
            user, "whitepaper-nurture", lambda p: any("double opt-in" in r.detail for r in p.steps)
        )
        found = re.search(r"https?://\S+(/v1/consent/confirm\?token=\S+)", part_of(ask, "plain"))
        assert found is not None
        page = await s.http.get(found[1])
        still = await s.contact(user, lambda c: True)
        confirmed = await s.http.post(found[1])
        await s.contact(user, lambda c: "Double Opt-In Pending" not in c.lists)
        doi = await s.progress(user, "double-opt-in", lambda p: p.outcome is not None)
        why = json.loads((await s.cli("contacts", "why", user, "--json")).stdout)
        forged = await s.http.post("/v1/consent/confirm?token=eyJjIjoiYzEifQ.deadbeef")
    assert page.status_code == 200 and "Yes, confirm" in page.text
    assert "Double Opt-In Pending" in still.lists, "following the link alone confirms nothing"
    assert confirmed.status_code == 200
    assert doi.outcome == "goal"
    blocked = [b for b in why["blocked_sends"] if "double opt-in" in b["reason"]]
    assert blocked and any("double opt-in" in r.detail for r in held.steps)
    email = next(p for p in why["consent"] if p["purpose"] == "email_marketing")
    assert email["allowed"] is True and email["source"] == "double-opt-in"
    assert forged.status_code == 400
