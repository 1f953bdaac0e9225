"""Salesforce: simple-salesforce against a local Salesforce over real HTTPS.

Leads are upserted by the revops contact id (an external id field) or found by email, with
the same ownership rules as HubSpot; Opportunity changes are read with SOQL on SystemModstamp
and stored once each as sales events; the org's daily API use reaches ``revops crm status``,
and a push past the daily limit waits in the queue with the reason.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from activities.crm_sync import CrmSync
from crm.definition import CrmDefinition, parse_crm
from crm.records import CrmSnapshot, CrmTask
from crm.salesforce import API_SUBSET, SOBJECTS, LeadOwner
from gateway.salesforce_poll import SalesforcePoller, owner_event
from revops.errors import ConfigError
from revops.settings import Settings
from store.crm import CrmBook
from store.repo import Store
from tests.salesforce_server import ROUTES, SESSION, SalesforceOrg, salesforce_server
from tests.salesforce_server import SOBJECTS as SERVED_SOBJECTS
from tests.scenario_support import compressed_config
from tests.support import track
from tests.test_crm_pull import _sales_events
from tests.test_crm_push import identify

FIELDS = {
    "stage": {"property": "Lifecycle_Stage__c"},
    "lead_status": {"property": "Status"},
    "fit": {"property": "Revops_Fit_Score__c"},
    "owner": {"property": "Revops_Owner__c"},
    "trait:first_name": {"property": "FirstName", "owner": "crm"},
    "trait:last_name": {"property": "LastName", "owner": "crm"},
    "trait:company": {"property": "Company", "owner": "crm"},
}


def _salesforce(body: dict[str, Any]) -> None:
    body.update(provider="salesforce", fields=FIELDS, owner_property=None, stages={})
    body["lead_status"] = {"waiting": "Open - Not Contacted", "accepted": "Working - Contacted"}
    body["owners"] = {"rep-9": "005000000000009"}


def _salesforce_contacts(body: dict[str, Any]) -> None:
    _salesforce(body)
    body["fields"] = {k: v for k, v in FIELDS.items() if k != "trait:company"}
    body["salesforce"] = {"contact": "Contact"}


def sf_settings(
    settings: Settings, org: SalesforceOrg, ca: Path, folder: Path, *, contacts: bool = False
) -> Settings:
    config = compressed_config(folder, crm=_salesforce_contacts if contacts else _salesforce)
    return settings.model_copy(
        update={
            "config_dir": config,
            "journeys_dir": config / "journeys",
            "salesforce_instance_url": org.url,
            "salesforce_access_token": SecretStr(SESSION),
            "salesforce_ca_file": ca,
        }
    )


def test_the_connector_keeps_to_the_implemented_subset() -> None:
    assert set(API_SUBSET) == ROUTES
    assert set(SOBJECTS) == SERVED_SOBJECTS


def _snapshot(contact_id: str, **fields: Any) -> CrmSnapshot:
    return CrmSnapshot(contact_id=contact_id, reasons=["mql"], **fields)


def test_leads_are_upserted_by_contact_id_or_email_and_the_daily_api_use_is_kept(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    with salesforce_server(tmp_path) as (org, ca):
        sync = CrmSync(store, sf_settings(settings, org, ca, tmp_path))
        mine = org.add(
            "Lead", Email="ana@acme.io", FirstName="Anabel", LastName="Ng", Company="Acme"
        )
        ana = identify(store, "u-ana", email="ana@acme.io", first_name="Ana", last_name="N")
        bo = identify(store, "u-bo", email="bo@acme.io", first_name="Bo")
        store.accept([track("u-bo", "Group", type_="group", group_id="acct-acme")])
        book = CrmBook(store)
        for contact_id in (ana, bo):
            book.enqueue(_snapshot(contact_id, stage="MQL", fit=70.0, sla_state="waiting"))
        first = sync.drain_once()
        book.enqueue(_snapshot(bo, stage="SAL", fit=71.0, sla_state="accepted"))
        book.enqueue_task(CrmTask(key="task-1", contact_id=bo, title="Contact new MQL"))
        second = sync.drain_once()
        status = book.status("salesforce")
    (ana_lead,) = org.leads("ana@acme.io")
    (bo_lead,) = org.leads("bo@acme.io")
    assert first.pushed == 2 and second.pushed == 1
    assert ana_lead["Id"] == mine and book.crm_id(ana) == mine, "found by email, id stored"
    assert ana_lead["Revops_Contact_Id__c"] == ana and ana_lead["FirstName"] == "Anabel"
    assert ana_lead["Lifecycle_Stage__c"] == "MQL" and ana_lead["Status"] == "Open - Not Contacted"
    assert bo_lead["LastName"] == "[not provided]" and bo_lead["FirstName"] == "Bo"
    assert bo_lead["Status"] == "Working - Contacted" and bo_lead["Revops_Fit_Score__c"] == "71"
    assert len(org.objects["Lead"]) == 2, "no duplicate"
    (account,) = org.objects["Account"].values()
    assert account["Revops_Account_Id__c"] == "acct-acme" and "AccountId" not in bo_lead
    (task,) = org.objects["Task"].values()
    assert task["WhoId"] == bo_lead["Id"] and task["Subject"] == "Contact new MQL"
    assert second.tasks == 1 and status.tasks_waiting == 0
    assert org.unexpected == [] and set(org.calls) <= ROUTES
    assert status.headroom["api_used"] == org.used and status.headroom["api_limit"] == 15000


def test_past_the_daily_limit_a_push_waits_in_the_queue_with_the_reason(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    with salesforce_server(tmp_path, daily_limit=0) as (org, ca):
        sync = CrmSync(store, sf_settings(settings, org, ca, tmp_path))
        ana = identify(store, "u-ana", email="ana@acme.io")
        CrmBook(store).enqueue(_snapshot(ana, stage="MQL"))
        done = sync.drain_once()
        status = CrmBook(store).status("salesforce")
    assert done.failed == 1 and done.error is not None and "daily API limit" in done.error
    assert status.backlog == 1 and status.failing == 1
    assert status.last_error is not None and "daily API limit" in status.last_error


def test_opportunity_changes_polled_on_systemmodstamp_become_sales_events_once(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    with salesforce_server(tmp_path) as (org, ca):
        sf = sf_settings(settings, org, ca, tmp_path)
        ana = identify(store, "u-ana", email="ana@acme.io")
        bo = identify(store, "u-bo", email="bo@acme.io")
        poller = SalesforcePoller(store, sf)
        org.add(
            "Lead",
            LastName="Ng",
            Company="Acme",
            OwnerId="005000000000009",
            Revops_Contact_Id__c=ana,
        )
        org.add("Lead", LastName="Sales Own", Company="Other", OwnerId="005000000000001")
        won = org.add(
            "Opportunity",
            StageName="Prospecting",
            Amount=None,
            IsClosed=False,
            IsWon=False,
            Revops_Contact_Id__c=ana,
        )
        org.add(
            "Opportunity",
            StageName="Closed Lost",
            Amount=900.0,
            IsClosed=True,
            IsWon=False,
            Revops_Contact_Id__c=bo,
            Loss_Reason__c="Competitor",
        )
        org.add(
            "Opportunity",
            StageName="Prospecting",
            IsClosed=False,
            IsWon=False,
            Revops_Contact_Id__c=None,
        )
        first = poller.poll_once()
        again = poller.poll_once()
        org.update(
            "Opportunity", won, StageName="Closed Won", Amount=48000.0, IsClosed=True, IsWon=True
        )
        later = poller.poll_once()
        cursor = CrmBook(store).cursor("salesforce")
    stored = _sales_events(store)
    names = sorted(name for name, _ in stored)
    assert first[0] == 5 and again[0] == 0, "a row read again stores nothing"
    assert later[0] == 1, "only the win is new"
    assert names == [
        "Closed Lost",
        "Closed Won",
        "Opportunity Created",
        "Opportunity Created",
        "Opportunity Stage Changed",
        "Owner Changed",
    ]
    properties = {name: props for name, props in stored}
    assert properties["Closed Won"]["amount"] == 48000.0
    assert properties["Closed Won"]["opportunity_id"] == f"salesforce-{won}"
    assert properties["Closed Lost"]["reason"] == "Competitor"
    assert properties["Opportunity Stage Changed"]["stage"] == "Prospecting"
    assert cursor is not None
    assert properties["Owner Changed"]["rep_id"] == "rep-9", "Salesforce's owner mapped back"


def test_an_owner_revops_wrote_itself_is_no_change() -> None:
    lead = LeadOwner(id="00Q1", owner_id="0051", contact_id="c1", modified_at=datetime.now(UTC))
    definition = CrmDefinition(owners={"rep-1": "0051"})
    assert owner_event(lead, definition, current_owner="rep-1") is None
    moved = owner_event(lead, definition, current_owner="rep-2")
    assert moved is not None and moved["rep_id"] == "rep-1"
    assert moved["id"] == "salesforce-lead-00Q1-owner-0051"


def test_contacts_and_their_accounts_are_upserted_found_by_domain_name_or_crm_id(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    with salesforce_server(tmp_path) as (org, ca):
        sync = CrmSync(store, sf_settings(settings, org, ca, tmp_path, contacts=True))
        acme = org.add("Account", Name="ACME Corp", Website="https://www.acme.io")
        globex = org.add("Account", Name="Globex")
        elsewhere = org.add("Account", Name="Sales' choice")
        cy_sf = org.add("Contact", LastName="Cyr", Email="old@initech.io", AccountId=elsewhere)
        ana = identify(store, "u-ana", email="ana@acme.io", company="Acme", domain="acme.io")
        bo = identify(store, "u-bo", email="bo@globex.io", first_name="Bo", company="Globex")
        cy = identify(store, "u-cy", email="cy@initech.io", company="Initech")
        dee = identify(store, "u-dee", email="dee@newco.io", company="Newco", website="newco.io")
        for user, account in (("u-ana", "a-1"), ("u-bo", "a-2"), ("u-cy", "a-3"), ("u-dee", "a-4")):
            store.accept([track(user, "Group", type_="group", group_id=account)])
        book = CrmBook(store)
        book.pushed("salesforce", [], {cy: cy_sf})  # an import's crm_id
        for contact_id in (ana, bo, cy, dee):
            book.enqueue(_snapshot(contact_id, stage="MQL", fit=70.0))
        connector = sync.connector()
        assert connector is not None
        plan = connector.plan(book.records([s for s, _ in book.due(10)]))
        before = len(org.objects["Account"])
        first = sync.drain_once()
        for contact_id in (ana, bo, cy, dee):
            book.enqueue(_snapshot(contact_id, stage="SAL", fit=80.0))
        again = sync.drain_once()
    accounts = org.objects["Account"]
    contacts = {c["Revops_Contact_Id__c"]: c for c in org.objects["Contact"].values()}
    assert before == 3 and plan.written[ana]["AccountId"] == acme, "a dry run only reads"
    assert "AccountId" not in plan.written[dee] and sorted(plan.created) == sorted([ana, bo, dee])
    assert first.pushed == 4 and again.pushed == 4 and first.error is None
    assert len(accounts) == 5 and len(contacts) == 4, "found or created once, never duplicated"
    assert accounts[acme]["Revops_Account_Id__c"] == "a-1", "found by its website"
    assert accounts[acme]["Name"] == "ACME Corp", "the CRM's name is kept"
    assert accounts[globex]["Revops_Account_Id__c"] == "a-2", "found by its name"
    assert accounts[globex].get("Website") is None, "no domain known: none written"
    (newco,) = [a for a in accounts.values() if a.get("Revops_Account_Id__c") == "a-4"]
    assert newco["Name"] == "Newco" and newco["Website"] == "newco.io"
    assert contacts[ana]["AccountId"] == acme and contacts[bo]["AccountId"] == globex
    assert contacts[dee]["AccountId"] == newco["Id"]
    assert contacts[dee]["LastName"] == "[not provided]" and "Company" not in contacts[dee]
    assert contacts[cy]["Id"] == cy_sf, "matched by the stored Salesforce id"
    assert contacts[cy]["AccountId"] == elsewhere, "sales' choice of account is kept"
    assert contacts[cy]["Email"] == "old@initech.io" and contacts[cy]["Lifecycle_Stage__c"] == "SAL"
    assert book.crm_id(dee) == contacts[dee]["Id"]
    assert org.unexpected == [] and set(org.calls) <= ROUTES


def test_a_salesforce_contact_refuses_a_company_field() -> None:
    body = {"provider": "salesforce", "salesforce": {"contact": "Contact"}}
    body["fields"] = {"trait:company": {"property": "Company", "owner": "crm"}}
    with pytest.raises(ConfigError, match="Contact has no Company field"):
        parse_crm(body, "crm.yaml")
    assert parse_crm({**body, "salesforce": {"contact": "Lead"}}, "crm.yaml").enabled
