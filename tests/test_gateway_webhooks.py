"""The signed sales webhook: good, bad, stale and rotated signatures, replays, and the workflow."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from gateway.sales import SIGNATURE_HEADER, sign
from revops.settings import Settings
from store.repo import Store
from tests.gateway_support import serve_gateway, state_after
from tests.support import handle_for, running_worker

CURRENT, PREVIOUS = "whsec-current", "whsec-previous"


def hook(hook_id: str, activity: str, user_id: str = "gw-sales", **fields: Any) -> bytes:
    """A webhook body as a sales tool would post it (user ids differ per test: one server)."""
    body = {
        "id": hook_id,
        "type": activity,
        "occurred_at": datetime.now(UTC).isoformat(),
        "contact": {"user_id": user_id},
        **fields,
    }
    return json.dumps(body).encode()


def signed(body: bytes, secret: str = CURRENT, at: float | None = None) -> dict[str, str]:
    """Headers for ``body`` signed with ``secret`` at ``at`` (now by default)."""
    stamp = int(time.time() if at is None else at)
    return {SIGNATURE_HEADER: sign(body, secret, stamp), "Content-Type": "application/json"}


def rotating(settings: Settings) -> Settings:
    """Settings in the middle of a secret rotation: both secrets are valid."""
    return settings.model_copy(
        update={"webhook_secrets": [SecretStr(CURRENT), SecretStr(PREVIOUS)]}
    )


async def test_signed_sales_activity_reaches_the_contact_workflow(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    lost = hook("wh-lost", "closed_lost", reason="No Budget", rep_id="rep-7")
    accepted = hook("wh-acc", "lead_accepted", rep_id="rep-7")
    async with (
        running_worker(env.client, store, settings) as relay,
        serve_gateway(rotating(settings), store, relay) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        first = await http.post("/v1/webhooks/sales", content=accepted, headers=signed(accepted))
        second = await http.post("/v1/webhooks/sales", content=lost, headers=signed(lost, PREVIOUS))
        state = await state_after(handle_for(env.client, store, "gw-sales"), 2)
    assert first.json() == {"accepted": True, "event": "Lead Accepted"}
    assert second.json() == {"accepted": True, "event": "Closed Lost"}
    assert state.event_counts == {"Lead Accepted": 1, "Closed Lost": 1}
    assert state.stage == "SAL"
    closed = next(e for e in state.events if e.name == "Closed Lost")
    assert closed.properties["reason"] == "No Budget"
    assert [w.kind for w in state.wakeups] == ["recycle"]


async def test_bad_missing_and_stale_signatures_get_401_and_store_nothing(
    store: Store, settings: Settings
) -> None:
    body = hook("wh-bad", "meeting_booked")
    async with (
        serve_gateway(rotating(settings), store) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        wrong = await http.post("/v1/webhooks/sales", content=body, headers=signed(body, "guess"))
        missing = await http.post("/v1/webhooks/sales", content=body)
        stale = await http.post(
            "/v1/webhooks/sales", content=body, headers=signed(body, at=time.time() - 301)
        )
        tampered = await http.post(
            "/v1/webhooks/sales", content=body.replace(b"meeting", b"closed"), headers=signed(body)
        )
    for answer in (wrong, missing, stale, tampered):
        assert answer.status_code == 401, answer.text
    assert "5-minute" in stale.json()["message"]
    assert store.row_counts()["events"] == 0


async def test_a_replayed_delivery_id_is_stored_and_counted_once(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    body = hook("wh-once", "email_sent", "gw-replay")
    again = hook("wh-once", "email_sent", "gw-replay")
    async with (
        running_worker(env.client, store, settings) as relay,
        serve_gateway(rotating(settings), store, relay) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        first = await http.post("/v1/webhooks/sales", content=body, headers=signed(body))
        replay = await http.post("/v1/webhooks/sales", content=again, headers=signed(again))
        meeting = hook("wh-next", "meeting_booked", "gw-replay")
        await http.post("/v1/webhooks/sales", content=meeting, headers=signed(meeting))
        state = await state_after(handle_for(env.client, store, "gw-replay"), 2)
    assert first.json()["accepted"] is True
    assert replay.status_code == 200 and replay.json()["accepted"] is False
    assert state.event_counts == {"Sales Email Sent": 1, "Meeting Booked": 1}
    assert store.row_counts()["events"] == 2


async def test_webhook_details_are_validated_and_contacts_found_by_opaque_id(
    store: Store, settings: Settings
) -> None:
    no_reason = hook("wh-r", "lead_rejected")
    unknown = hook("wh-u", "call_logged", contact={"contact_id": "c0000000000000000000"})
    async with serve_gateway(settings, store) as url, httpx.AsyncClient(base_url=url) as http:
        secret = settings.webhook_secrets[0].get_secret_value()
        refused = await http.post(
            "/v1/webhooks/sales", content=no_reason, headers=signed(no_reason, secret)
        )
        missing = await http.post(
            "/v1/webhooks/sales", content=unknown, headers=signed(unknown, secret)
        )
        known = hook("wh-k", "call_logged", "gw-crm")
        await http.post("/v1/webhooks/sales", content=known, headers=signed(known, secret))
        contact_id = store.resolve("gw-crm")
        assert contact_id is not None
        by_id = hook("wh-i", "lead_rejected", reason="Student", contact={"contact_id": contact_id})
        found = await http.post("/v1/webhooks/sales", content=by_id, headers=signed(by_id, secret))
    assert refused.status_code == 400
    assert "reason is required for lead_rejected" in refused.json()["message"]
    assert missing.status_code == 422 and missing.json()["code"] == "unknown_contact"
    assert found.json() == {"accepted": True, "event": "Lead Rejected"}
    assert store.row_counts()["events"] == 2
