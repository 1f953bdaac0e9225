"""Accept or reject a lead from its Slack notice: the signed click is the sales webhook's event.

The owner's notice (posted by the real handoff workflow into a real HTTP server standing in for
Slack) carries Accept and "Reject with reason"; a click is posted back the way Slack posts it
(a form with a JSON payload, signed with the app's signing secret) to the real gateway. A signed
Accept makes the contact a SAL and stops the SLA clock, and the message is replaced through the
response URL; a forged or stale click is refused with 401 and stores nothing.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session
from temporalio.testing import WorkflowEnvironment

from handoff.slack import ACCEPT_ACTION, REJECT_ACTION, LeadRef, action_blocks
from revops.settings import Settings
from store.repo import Store
from store.schema import EventRow
from tests.gateway_support import serve_gateway
from tests.scenario_support import compressed_config, stack
from tests.slack_support import SIGNING_SECRET, click, slack_signed
from tests.support import eventually
from tests.test_gateway_webhooks import hook, signed

BUYER = {
    "email": "sam@northwind-robotics.com",
    "first_name": "Sam",
    "company": "Northwind Robotics",
    "company_size": 2500,
    "industry": "Software",
    "title": "VP Engineering",
    "country": "US",
}


def _slack(settings: Settings) -> Settings:
    return settings.model_copy(update={"slack_signing_secret": SecretStr(SIGNING_SECRET)})


@pytest.mark.slow
async def test_a_signed_accept_click_accepts_the_lead_stops_the_sla_and_updates_the_message(
    env: WorkflowEnvironment, store: Store, settings: Settings, tmp_path: Path
) -> None:
    async with stack(env.client, store, _slack(settings), compressed_config(tmp_path)) as s:
        lead = s.user("u-slack")
        await s.segment("identify", userId=lead, traits=BUYER)
        await s.track(lead, "Demo Requested")
        await s.contact(lead, lambda c: c.handoff is not None and bool(c.handoff.owner))

        async def notices() -> list[dict[str, Any]]:
            posted = [r.json() for r in s.posted("/slack")]
            return [p for p in posted if any(b["type"] == "actions" for b in p.get("blocks", []))]

        (notice, *_) = await eventually(notices, bool)
        response_url = f"{s.web.url}/slack-response"
        forged = click(notice, REJECT_ACTION, response_url, reason="Not a Fit")
        refused = [
            await s.http.post(
                "/v1/slack/interactions", content=forged, headers=slack_signed(forged, "guess")
            ),
            await s.http.post(
                "/v1/slack/interactions",
                content=forged,
                headers=slack_signed(forged, at=time.time() - 301),
            ),
            await s.http.post("/v1/slack/interactions", content=forged),
        ]
        accept = click(notice, ACCEPT_ACTION, response_url)
        answer = await s.http.post(
            "/v1/slack/interactions", content=accept, headers=slack_signed(accept)
        )
        again = await s.http.post(
            "/v1/slack/interactions", content=accept, headers=slack_signed(accept)
        )
        accepted = await s.contact(lead, lambda c: c.stage == "SAL")
        shown = await s.show(lead)
    assert [r.status_code for r in refused] == [401, 401, 401]
    assert answer.status_code == 200 and again.status_code == 200
    assert accepted.event_counts.get("Lead Accepted") == 1, "a double click counts once"
    assert "Lead Rejected" not in accepted.event_counts, "the forged rejection stored nothing"
    assert shown["sla"]["state"] == "accepted", "the SLA clock stopped"
    (update, *_) = [r.json() for r in s.posted("/slack-response")]
    assert update["replace_original"] is True
    assert "Accepted by <@U0REP1>" in str(update["blocks"])
    assert all(b["type"] != "actions" for b in update["blocks"]), "no buttons after the decision"


async def test_a_reject_click_is_the_webhook_rejection_with_the_chosen_reason(
    store: Store, settings: Settings
) -> None:
    settings = _slack(settings)
    async with (
        serve_gateway(settings, store) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        known = hook("wh-known", "call_logged", "slack-rej")
        secret = settings.webhook_secrets[0].get_secret_value()
        await http.post("/v1/webhooks/sales", content=known, headers=signed(known, secret))
        contact_id = store.resolve("slack-rej")
        assert contact_id is not None
        ref = LeadRef(contact_id, f"{contact_id}-h1", "rep-1")
        blocks = action_blocks("New MQL", ref, ["Not Ready", "Timing"])
        notice = {"text": "New MQL", "blocks": blocks}
        body = click(notice, REJECT_ACTION, "", reason="Timing")
        answer = await http.post("/v1/slack/interactions", content=body, headers=slack_signed(body))
        stale = await http.post(
            "/v1/slack/interactions",
            content=body,
            headers=slack_signed(body, at=time.time() + 400),
        )
        tampered = body.replace(b"Timing", b"Other!")
        forged = await http.post(
            "/v1/slack/interactions", content=tampered, headers=slack_signed(body)
        )
    assert answer.status_code == 200, answer.text
    assert stale.status_code == 401 and forged.status_code == 401
    with Session(store.engine) as session:
        rows = session.scalars(select(EventRow).where(EventRow.name == "Lead Rejected")).all()
    assert [(r.message_id, r.properties["reason"], r.properties["rep_id"]) for r in rows] == [
        (f"sales-slack-{contact_id}-h1-reject", "Timing", "rep-1")
    ]
    assert rows[0].properties["activity"] == "lead_rejected"


def test_the_notice_offers_accept_and_each_rejection_reason() -> None:
    ref = LeadRef("c123", "c123-h1", "rep-9")
    (section, actions) = action_blocks("New MQL for Ana", ref, ["Not Ready", "Timing"])
    assert section["text"]["text"] == "New MQL for Ana"
    accept, reject = actions["elements"]
    assert accept["action_id"] == ACCEPT_ACTION and accept["text"]["text"] == "Accept"
    assert [o["value"] for o in reject["options"]] == ["Not Ready", "Timing"]
    assert LeadRef.of_block(actions["block_id"]) == ref
    assert len(actions["block_id"]) <= 255
