"""HubSpot's webhooks as sales events: v3 signatures, once per delivery, and the whole loop.

HubSpot's deliveries are posted to the real gateway the way HubSpot posts them (a JSON array,
the v3 signature over method, URL, body and timestamp with the app's client secret); deals are
read back from the local HubSpot (tests/hubspot_server.py) with hubspot-api-client. The
scenario runs the real product: a contact becomes an MQL, appears in the CRM with its owner and
scores, sales wins the deal in HubSpot, the contact becomes a Customer and the amount reaches
attribution.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session
from temporalio.testing import WorkflowEnvironment

from crm.hubspot_webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_v3
from crm.records import CrmSnapshot
from revops.settings import Settings
from store.crm import CrmBook
from store.repo import Store
from store.schema import EventRow
from tests.gateway_support import serve_gateway
from tests.hubspot_server import HubSpot, hubspot_server
from tests.scenario_support import compressed_config, stack
from tests.support import eventually
from tests.test_crm_push import crm_settings, hubspot_config, identify
from tests.test_scenarios import BUYER

CLIENT_SECRET = "hubspot-client-secret"
PATH = "/v1/webhooks/hubspot"


def _pull_settings(settings: Settings, hubspot: HubSpot, config: Path) -> Settings:
    return crm_settings(settings, hubspot, config).model_copy(
        update={"hubspot_client_secret": SecretStr(CLIENT_SECRET)}
    )


def event(event_id: int, kind: str, object_id: str, **fields: Any) -> dict[str, Any]:
    """One HubSpot webhook event as documented."""
    return {
        "eventId": event_id,
        "subscriptionId": 42,
        "portalId": 7,
        "appId": 9,
        "occurredAt": int(time.time() * 1000),
        "subscriptionType": kind,
        "attemptNumber": 0,
        "objectId": int(object_id),
        "changeSource": "CRM",
        **fields,
    }


def change(event_id: int, kind: str, object_id: str, prop: str, value: str) -> dict[str, Any]:
    """A ``*.propertyChange`` event."""
    return event(event_id, kind, object_id, propertyName=prop, propertyValue=value)


def delivery(
    settings: Settings, events: list[dict[str, Any]], *, secret: str = CLIENT_SECRET, age: float = 0
) -> tuple[bytes, dict[str, str]]:
    """The body and headers HubSpot sends (signed ``age`` seconds ago)."""
    body = json.dumps(events)
    stamp = str(int((time.time() - age) * 1000))
    uri = settings.public_url.rstrip("/") + PATH
    headers = {
        SIGNATURE_HEADER: sign_v3(secret, "POST", uri, body, stamp),
        TIMESTAMP_HEADER: stamp,
        "Content-Type": "application/json",
    }
    return body.encode(), headers


def _sales_events(store: Store) -> list[tuple[str, dict[str, Any]]]:
    with Session(store.engine) as session:
        rows = session.scalars(select(EventRow).where(EventRow.type == "sales")).all()
        return [(r.name, dict(r.properties)) for r in rows]


async def test_signed_deliveries_become_sales_events_once_and_forged_or_stale_ones_are_refused(
    any_store: Store, settings: Settings, tmp_path: Path
) -> None:
    store = any_store
    with hubspot_server() as hubspot:
        config = hubspot_config(tmp_path, owners={"rep-7": "555"})
        crm = _pull_settings(settings, hubspot, config)
        ana = identify(store, "u-ana", email="ana@acme.io")
        CrmBook(store).pushed("hubspot", [(CrmSnapshot(contact_id=ana), 0)], {ana: "901"})
        won = hubspot.add_deal(["901", "999"], dealstage="closedwon", amount="48000.5")
        lost = hubspot.add_deal(["901"], dealstage="closedlost", closed_lost_reason="No Budget")
        events = [
            event(1, "deal.creation", won),
            event(
                2, "deal.propertyChange", won, propertyName="dealstage", propertyValue="closedwon"
            ),
            event(
                3, "deal.propertyChange", lost, propertyName="dealstage", propertyValue="closedlost"
            ),
            event(
                4,
                "contact.propertyChange",
                "901",
                propertyName="hubspot_owner_id",
                propertyValue="555",
            ),
            event(5, "contact.propertyChange", "901", propertyName="firstname", propertyValue="A"),
        ]
        body, headers = delivery(crm, events)
        async with serve_gateway(crm, store) as url, httpx.AsyncClient(base_url=url) as http:
            forged_body, forged = delivery(crm, events, secret="guess")
            stale_body, stale = delivery(crm, events, age=301)
            refused = [
                await http.post(PATH, content=forged_body, headers=forged),
                await http.post(PATH, content=stale_body, headers=stale),
                await http.post(PATH, content=body, headers={"Content-Type": "application/json"}),
            ]
            before = store.row_counts()["events"]
            first = await http.post(PATH, content=body, headers=headers)
            again_body, again_headers = delivery(crm, events)  # HubSpot's retry, same eventIds
            retry = await http.post(PATH, content=again_body, headers=again_headers)
            bad_body, bad_headers = delivery(crm, [{"eventId": "x"}])
            bad = await http.post(PATH, content=bad_body, headers=bad_headers)
    assert [r.status_code for r in refused] == [401, 401, 401]
    assert first.status_code == 200, first.text
    assert first.json() == {"received": 5, "accepted": 4, "duplicates": 0, "skipped": 1}
    assert retry.json() == {"received": 5, "accepted": 0, "duplicates": 4, "skipped": 1}
    assert bad.status_code == 400 and "eventId" in bad.json()["message"]
    stored = dict(_sales_events(store))
    assert len(_sales_events(store)) == 4 and store.row_counts()["events"] == before + 4
    assert stored["Opportunity Created"]["amount"] == 48000.5
    assert stored["Closed Won"]["amount"] == 48000.5
    assert stored["Closed Won"]["opportunity_id"] == f"hubspot-{won}"
    assert stored["Closed Lost"]["reason"] == "No Budget"
    assert stored["Owner Changed"]["rep_id"] == "rep-7", "the CRM's owner id mapped back"


@pytest.mark.slow
async def test_an_mql_reaches_hubspot_and_the_deal_won_there_makes_a_customer_with_revenue(
    env: WorkflowEnvironment, store: Store, settings: Settings, tmp_path: Path
) -> None:
    config = compressed_config(tmp_path, crm=lambda body: body.update(provider="hubspot"))
    with hubspot_server() as hubspot:
        crm = _pull_settings(settings, hubspot, config)
        async with stack(env.client, store, crm, config) as s:
            lead = s.user("u-loop")
            email = f"dana-{uuid.uuid4().hex[:6]}@northwind-robotics.com"
            await s.segment("identify", userId=lead, traits={**BUYER, "email": email})
            await s.track(lead, "Demo Requested")
            mql = await s.contact(lead, lambda c: c.handoff is not None and bool(c.handoff.owner))
            owner = mql.handoff.owner if mql.handoff else None

            async def in_crm() -> dict[str, str] | None:
                return hubspot.contact(email)

            pushed = await eventually(
                in_crm,
                lambda c: (
                    c is not None
                    and c.get("lifecyclestage") == "marketingqualifiedlead"
                    and c.get("revops_owner") == owner
                ),
            )
            assert pushed is not None
            deal = hubspot.add_deal([pushed["hs_object_id"]], dealstage="appointmentscheduled")
            opened = [event(11, "deal.creation", deal)]
            hubspot.update_deal(deal, dealstage="closedwon", amount="48000")
            won = [
                event(
                    12,
                    "deal.propertyChange",
                    deal,
                    propertyName="dealstage",
                    propertyValue="closedwon",
                )
            ]
            for events in (opened, won):
                body, headers = delivery(s.settings, events)
                answer = await s.http.post(PATH, content=body, headers=headers)
                assert answer.status_code == 200 and answer.json()["accepted"] == 1, answer.text
            await s.contact(lead, lambda c: c.stage == "Customer")
            customer = await s.show(lead)
            report = await s.cli("reports", "attribution", "--json")
    assert report.returncode == 0, report.stderr
    attribution = json.loads(report.stdout)
    assert customer["stage"] == "Customer"
    assert float(pushed["revops_fit_score"]) > 0 and pushed["revops_mql_date"]
    assert attribution["won"] == 1 and attribution["revenue"] == 48000
