"""Pushing contacts to HubSpot: hubspot-api-client against a local HubSpot over real HTTP.

The local server implements the CRM v3 subset the connector calls (tests/hubspot_server.py):
auth, the 100-per-10-s burst limit answered with 429 and Retry-After, search, batch upserts and
default associations. The connector is held to that subset; a CRM-owned field the CRM holds is
never overwritten; the CRM id is stored in revops; 1,000 pushes against a server that limits
harder than the client expects finish with no error and no duplicate; a real contact workflow
that becomes an MQL appears in the CRM with its stage, owner and scores.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from activities.crm_sync import CrmSync
from crm.definition import parse_crm
from crm.hubspot import API_SUBSET
from crm.ratelimit import RateLimit
from crm.records import CrmSnapshot
from revops.errors import ConfigError
from revops.settings import Settings
from store.crm import CrmBook
from store.repo import Store
from tests.hubspot_server import ROUTES, TOKEN, HubSpot, hubspot_server
from tests.scenario_support import compressed_config
from tests.support import (
    ICP_TRAITS,
    eventually,
    handle_for,
    running_worker,
    save_history,
    send,
    track,
)


def crm_settings(settings: Settings, hubspot: HubSpot, config: Path) -> Settings:
    """Settings of a revops connected to the local HubSpot, with ``config`` as definitions."""
    return settings.model_copy(
        update={
            "config_dir": config,
            "journeys_dir": config / "journeys",
            "hubspot_access_token": SecretStr(TOKEN),
            "hubspot_api_url": hubspot.url,
            "crm_poll_seconds": 0.1,
        }
    )


def hubspot_config(folder: Path, **crm: Any) -> Path:
    """``config/`` with the CRM definition switched to HubSpot (and ``crm`` changes)."""
    return compressed_config(folder, crm=lambda body: body.update(provider="hubspot", **crm))


def identify(store: Store, user_id: str, **traits: Any) -> str:
    """A contact in the store, as an identify call makes it; returns its contact id."""
    store.accept([track(user_id, "Identify", type_="identify", traits=traits)])
    contact_id = store.resolve(user_id)
    assert contact_id is not None
    return contact_id


def test_the_connector_keeps_to_the_implemented_subset() -> None:
    assert set(API_SUBSET) == ROUTES
    deals = {method for method, path in API_SUBSET if "deals" in path}
    assert deals == {"GET"}, "deals are the CRM's: read, never written"


def test_a_push_upserts_by_email_keeps_crm_owned_values_and_stores_the_crm_id(
    any_store: Store, settings: Settings, tmp_path: Path
) -> None:
    store = any_store
    with hubspot_server() as hubspot:
        sync = CrmSync(store, crm_settings(settings, hubspot, hubspot_config(tmp_path)))
        existing = hubspot.add_contact("ana@acme.io", firstname="Anabel", lifecyclestage="lead")
        ana = identify(store, "u-ana", email="ana@acme.io", first_name="Ana", company="Acme")
        bo = identify(store, "u-bo", email="Bo@Acme.io", first_name="Bo", title="CTO")
        store.accept([track("u-bo", "Group", type_="group", group_id="acct-acme")])
        book = CrmBook(store)
        for contact_id in (ana, bo):
            book.enqueue(
                CrmSnapshot(
                    contact_id=contact_id,
                    reasons=["mql", "owner"],
                    stage="MQL",
                    fit=65.0,
                    engagement=40.5,
                    owner="rep-1",
                    sla_state="waiting",
                    top_behaviours=["Demo Requested", "Pricing Page Viewed"],
                )
            )
        first = sync.drain_once()
        book.enqueue(CrmSnapshot(contact_id=ana, reasons=["stage"], stage="SAL", owner="rep-1"))
        second = sync.drain_once()
        status = book.status("hubspot")
    ana_crm = hubspot.contact("ana@acme.io")
    bo_crm = hubspot.contact("bo@acme.io")
    assert first.pushed == 2 and second.pushed == 1
    assert ana_crm is not None and bo_crm is not None
    assert ana_crm["firstname"] == "Anabel", "a CRM-owned value the CRM holds is kept"
    assert bo_crm["firstname"] == "Bo" and bo_crm["jobtitle"] == "CTO", "empty: filled once"
    assert ana_crm["lifecyclestage"] == "salesqualifiedlead", "revops owns the stage"
    assert bo_crm["revops_fit_score"] == "65" and bo_crm["revops_owner"] == "rep-1"
    assert bo_crm["hs_lead_status"] == "NEW"
    assert bo_crm["revops_top_behaviours"] == "Demo Requested; Pricing Page Viewed"
    assert book.crm_id(ana) == existing, "matched by email, the CRM's id stored in revops"
    assert book.crm_id(bo) == bo_crm["hs_object_id"]
    assert all(count == 1 for count in hubspot.creations.values()), hubspot.creations
    (company,) = hubspot.records("companies")
    assert ("contacts", bo_crm["hs_object_id"], "companies", company.id) in hubspot.associations
    assert hubspot.unexpected == [] and set(hubspot.calls) <= ROUTES
    assert status.backlog == 0 and status.linked == 2 and status.last_error is None


def test_a_thousand_pushes_against_a_server_answering_429_finish_once_each(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    # The server allows 20 calls a second; the client believes 100: HubSpot's 429 and its
    # Retry-After are what keep the push going, as when another app shares the account.
    with hubspot_server(limit=40, window=2.0) as hubspot:
        config = hubspot_config(tmp_path, batch_size=20)
        sync = CrmSync(store, crm_settings(settings, hubspot, config), limit=RateLimit(100, 1.0))
        users = [f"u-{n}-{uuid.uuid4().hex[:4]}" for n in range(1000)]
        store.accept(
            [
                track(u, "Identify", type_="identify", traits={"email": f"{u}@load.test"})
                for u in users
            ]
        )
        book = CrmBook(store)
        snapshots = []
        for user in users:
            contact_id = store.resolve(user)
            assert contact_id is not None
            snapshots.append(CrmSnapshot(contact_id=contact_id, reasons=["score"], fit=50.0))
        book.enqueue_all(snapshots)
        # Another app spent the window just now, so a push slowed by a busy machine still
        # meets a 429 (at full speed it would meet one anyway).
        hubspot.spend()
        pushed = sync.drain_all()
        status = book.status("hubspot")
    emails = [r.properties["email"] for r in hubspot.records("contacts")]
    assert pushed == 1000
    assert len(emails) == 1000 and len(set(emails)) == 1000, "no duplicate"
    assert all(count == 1 for count in hubspot.creations.values())
    assert hubspot.throttled > 0 and status.throttled > 0, "the server did answer 429"
    assert status.backlog == 0 and status.failing == 0 and status.last_error is None


async def test_a_contact_that_becomes_an_mql_appears_in_the_crm_with_owner_and_scores(
    env: WorkflowEnvironment, store: Store, settings: Settings, tmp_path: Path
) -> None:
    with hubspot_server() as hubspot:
        crm = crm_settings(settings, hubspot, hubspot_config(tmp_path))
        email = f"mql-{uuid.uuid4().hex[:6]}@acme-robotics.com"
        traits = {**ICP_TRAITS, "email": email, "first_name": "Kim"}
        async with running_worker(env.client, store, crm) as relay:
            await send(store, relay, track("u-crm", "Identify", type_="identify", traits=traits))
            await send(store, relay, track("u-crm", "Demo Requested"))

            async def in_crm() -> dict[str, str] | None:
                return hubspot.contact(email)

            found = await eventually(
                in_crm,
                lambda c: (
                    c is not None
                    and c.get("lifecyclestage") == "marketingqualifiedlead"
                    and bool(c.get("revops_owner"))
                ),
            )
            tasks = await eventually(
                lambda: _records(hubspot, "tasks"), lambda found: bool(found), within=10
            )
            handle = handle_for(env.client, store, "u-crm")
            state = await handle.query("state")
            await save_history(handle, "contact_crm_push")
    assert found is not None
    assert found["firstname"] == "Kim"
    assert float(found["revops_fit_score"]) > 0
    assert found["revops_mql_date"], "the MQL date"
    assert "Requested a demo" in found["revops_top_behaviours"]
    assert state["crm_pushed"]["owner"] == found["revops_owner"]
    assert CrmBook(store).crm_id(store.resolve("u-crm") or "") == found["hs_object_id"]
    task = tasks[0]
    assert task.properties["hs_task_subject"].startswith("Contact new")
    assert ("tasks", task.id, "contacts", found["hs_object_id"]) in hubspot.associations


async def _records(hubspot: HubSpot, kind: str) -> list[Any]:
    return hubspot.records(kind)


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ({"fields": {"scroe": {"property": "x"}}}, "fields.scroe: not a revops field"),
        (
            {"fields": {"fit": {"property": "x"}, "engagement": {"property": "x"}}},
            "property x is mapped twice",
        ),
        ({"provider": "pipedrive"}, "provider"),
        ({"fields": {"fit": {"property": "x", "owner": "sales"}}}, "owner"),
        ({"batch_size": 500}, "batch_size"),
    ],
)
def test_a_wrong_crm_definition_is_refused_naming_the_field(
    body: dict[str, Any], said: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_crm(body, "crm.yaml")
    assert said in str(refused.value) and "crm.yaml" in str(refused.value)


def test_a_snapshot_queued_during_a_push_is_pushed_next_not_lost(store: Store) -> None:
    book = CrmBook(store)
    ana = identify(store, "u-ana", email="ana@acme.io")
    book.enqueue(CrmSnapshot(contact_id=ana, reasons=["stage"], stage="Lead"))
    taken = book.due(10)
    book.enqueue(CrmSnapshot(contact_id=ana, reasons=["mql"], stage="MQL"))  # while pushing
    book.pushed("hubspot", taken, {ana: "77"})
    (waiting, _), *rest = book.due(10)
    assert rest == [] and waiting.stage == "MQL"
    assert waiting.reasons == ["stage", "mql"], "the reasons it gathered while queued"
    assert book.crm_id(ana) == "77"
