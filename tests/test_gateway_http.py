"""The gateway over real HTTP: auth, limits, dedupe, outages, health, logs."""

from __future__ import annotations

import gzip
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import update
from structlog.testing import capture_logs
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from gateway.relay import Relay
from revops.settings import Settings
from revops.temporal import DATA_CONVERTER
from store.db import create_store_engine
from store.repo import Store
from store.schema import OutboxRow
from tests.conftest import ID_SECRET
from tests.gateway_support import basic_auth, free_port, serve_gateway, state_after
from tests.support import handle_for, running_worker

AUTH = basic_auth()


def track(user_id: str, event: str, **fields: Any) -> dict[str, Any]:
    """A Segment track call as the SDKs send it."""
    return {
        "type": "track",
        "userId": user_id,
        "event": event,
        "messageId": fields.pop("messageId", str(uuid.uuid4())),
        "timestamp": datetime.now(UTC).isoformat(),
        **fields,
    }


async def test_wrong_or_missing_write_key_gets_401_and_stores_nothing(
    store: Store, settings: Settings
) -> None:
    async with serve_gateway(settings, store) as url, httpx.AsyncClient(base_url=url) as http:
        missing = await http.post("/v1/track", json=track("gw-1", "Signed Up"))
        wrong = await http.post(
            "/v1/batch", json={"batch": [track("gw-1", "Signed Up")]}, headers=basic_auth("nope")
        )
        garbled = await http.post(
            "/v1/track", json=track("gw-1", "Signed Up"), headers={"Authorization": "Basic %%%"}
        )
    for answer in (missing, wrong, garbled):
        assert answer.status_code == 401
        assert "write key" in answer.json()["message"]
    assert store.row_counts()["events"] == 0


async def test_gzip_bodies_are_accepted(store: Store, settings: Settings) -> None:
    body = gzip.compress(json.dumps({"batch": [track("gw-gz", "Signed Up")]}).encode())
    headers = {**AUTH, "Content-Encoding": "gzip", "Content-Type": "application/json"}
    async with serve_gateway(settings, store) as url, httpx.AsyncClient(base_url=url) as http:
        answer = await http.post("/v1/batch", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"success": True, "accepted": 1, "duplicates": 0, "rejected": []}
    assert store.resolve("gw-gz") is not None


async def test_oversize_events_and_batches_are_refused_naming_the_limit(
    store: Store, settings: Settings
) -> None:
    big = {"blob": "x" * 33_000}
    small = track("gw-big", "Signed Up")
    async with serve_gateway(settings, store) as url, httpx.AsyncClient(base_url=url) as http:
        one = await http.post("/v1/track", json=track("gw-big", "E", properties=big), headers=AUTH)
        inside = await http.post(
            "/v1/batch",
            json={"batch": [small, track("gw-big", "E", properties=big)]},
            headers=AUTH,
        )
        many = [track("gw-big", "E", properties={"blob": "y" * 30_000}) for _ in range(18)]
        whole = await http.post("/v1/batch", json={"batch": many}, headers=AUTH)
        bomb = gzip.compress(b'{"batch": [' + b" " * 2_000_000 + b"]}")
        inflated = await http.post(
            "/v1/batch", content=bomb, headers={**AUTH, "Content-Encoding": "gzip"}
        )
    assert (one.status_code, one.json()["code"]) == (413, "too_large")
    assert "32 KB" in one.json()["message"]
    assert (inside.status_code, inside.json()["index"]) == (400, 1)
    assert "32 KB" in inside.json()["message"]
    assert whole.status_code == 413 and "500 KB" in whole.json()["message"]
    assert inflated.status_code == 413 and "uncompressed" in inflated.json()["message"]
    assert store.row_counts()["events"] == 0


async def test_a_call_without_message_id_gets_a_stable_one_when_it_has_a_timestamp(
    store: Store, settings: Settings
) -> None:
    call = track("gw-nomid", "Signed Up")
    del call["messageId"]
    async with serve_gateway(settings, store) as url, httpx.AsyncClient(base_url=url) as http:
        first = await http.post("/v1/track", json=call, headers=AUTH)
        retried = await http.post("/v1/track", json=call, headers=AUTH)
    assert first.json()["accepted"] == 1
    assert retried.json() == {"success": True, "accepted": 0, "duplicates": 1, "rejected": []}


async def test_repeated_message_ids_count_once_within_and_across_batches(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    first, second, third = (track("gw-rep", "Email Opened", messageId=f"rep-{i}") for i in range(3))
    async with (
        running_worker(env.client, store, settings) as relay,
        serve_gateway(settings, store, relay) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        within = await http.post("/v1/batch", json={"batch": [first, first, second]}, headers=AUTH)
        across = await http.post("/v1/batch", json={"batch": [first, second, third]}, headers=AUTH)
        single = await http.post("/v1/track", json=third, headers=AUTH)
        state = await state_after(handle_for(env.client, store, "gw-rep"), 3)
    assert within.json() == {"success": True, "accepted": 2, "duplicates": 1, "rejected": []}
    assert across.json() == {"success": True, "accepted": 1, "duplicates": 2, "rejected": []}
    assert single.json() == {"success": True, "accepted": 0, "duplicates": 1, "rejected": []}
    assert state.event_counts == {"Email Opened": 3}
    assert store.row_counts()["events"] == 3


async def test_a_redelivery_after_continue_as_new_counts_once(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    async with (
        running_worker(env.client, store, settings, history_limit=40) as relay,
        serve_gateway(settings, store, relay) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        handle = None
        for i in range(14):
            await http.post("/v1/track", json=track("gw-can", "Email Opened"), headers=AUTH)
            handle = handle or handle_for(env.client, store, "gw-can")
            await state_after(handle, i + 1)
        assert handle is not None
        assert (await state_after(handle, 14)).runs >= 2, "expected a continue-as-new"
        # A relay that crashed after signalling but before recording it sends everything again.
        with store.engine.begin() as connection:
            connection.execute(update(OutboxRow).values(delivered_at=None))
        await http.post("/v1/track", json=track("gw-can", "Demo Requested"), headers=AUTH)
        state = await state_after(handle, 15)
    assert state.event_counts == {"Email Opened": 14, "Demo Requested": 1}


async def test_an_unreachable_store_answers_503_with_retry_after(settings: Settings) -> None:
    engine = create_store_engine(f"postgresql://nobody@127.0.0.1:{free_port()}/none")
    down = Store(engine, id_secret=ID_SECRET)
    async with serve_gateway(settings, down) as url, httpx.AsyncClient(base_url=url) as http:
        answer = await http.post("/v1/track", json=track("gw-503", "Signed Up"), headers=AUTH)
        ready = await http.get("/readyz")
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "5"
    assert answer.json()["code"] == "store_unavailable"
    assert ready.status_code == 503 and ready.json()["store"] == "unreachable"


async def test_health_readiness_and_docs(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    nowhere = await Client.connect(
        f"127.0.0.1:{free_port()}", data_converter=DATA_CONVERTER, lazy=True
    )
    up = Relay(store, env.client, settings.task_queue)
    down = Relay(store, nowhere, settings.task_queue)
    async with (
        serve_gateway(settings, store, up, relaying=False) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        health = await http.get("/healthz")
        ready = await http.get("/readyz")
        delivering = await http.get("/readyz/delivery")
        docs = await http.get("/docs")
        spec = (await http.get("/openapi.json")).json()
    async with (
        serve_gateway(settings, store, down, relaying=False) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        still_ready = await http.get("/readyz")
        not_delivering = await http.get("/readyz/delivery")
    assert health.json() == {"status": "ok"}
    assert ready.status_code == 200 and ready.json()["temporal"] == "ok"
    assert delivering.status_code == 200 and delivering.json()["delivering"] is True
    # Temporal down: the gateway stays in rotation (it accepts into the outbox).
    assert still_ready.status_code == 200 and still_ready.json()["temporal"] == "unreachable"
    assert not_delivering.status_code == 503
    assert not_delivering.json() == {
        "delivering": False,
        "temporal": "unreachable",
        "relay": "standby",
        "outbox_pending": 0,
    }
    assert docs.status_code == 200
    for path in ("track", "identify", "page", "screen", "group", "alias", "batch", "import"):
        assert f"/v1/{path}" in spec["paths"]
    assert "/v1/webhooks/sales" in spec["paths"]


async def test_access_logs_carry_no_personal_data(store: Store, settings: Settings) -> None:
    identify = {
        "type": "identify",
        "userId": "jane.doe@example.com",
        "anonymousId": "anon-jane",
        "traits": {"email": "jane.doe@example.com", "name": "Jane Doe"},
    }
    async with serve_gateway(settings, store) as url, httpx.AsyncClient(base_url=url) as http:
        with capture_logs() as logs:
            ok = await http.post("/v1/identify", json=identify, headers=AUTH)
            bad = await http.post("/v1/identify", json={**identify, "userId": [7]}, headers=AUTH)
    assert (ok.status_code, bad.status_code) == (200, 400)
    requests = [entry for entry in logs if entry["event"] == "http_request"]
    assert [entry["status"] for entry in requests] == [200, 400]
    assert requests[1]["refusal"] == "invalid_request"
    text = json.dumps(logs, default=str)
    assert "jane" not in text.lower() and "example.com" not in text


async def test_consent_from_traits_and_events_reaches_workflow_and_store(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    start = datetime.now(UTC) - timedelta(hours=3)
    calls = [
        {**track("gw-consent", "Signed Up"), "timestamp": start.isoformat()},
        {
            "type": "identify",
            "userId": "gw-consent",
            "traits": {"gdpr_consent": True},
            "timestamp": (start + timedelta(hours=1)).isoformat(),
        },
        {
            **track("gw-consent", "Unsubscribed"),
            "timestamp": (start + timedelta(hours=2)).isoformat(),
        },
    ]
    async with (
        running_worker(env.client, store, settings) as relay,
        serve_gateway(settings, store, relay) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        await http.post("/v1/batch", json={"batch": calls}, headers=AUTH)
        handle = handle_for(env.client, store, "gw-consent")
        unsubscribed = await state_after(handle, 3)
        consent_event = track(
            "gw-consent",
            "Consent Updated",
            properties={"subscribed": True, "ccpa_opt_out": True},
        )
        await http.post("/v1/track", json=consent_event, headers=AUTH)
        updated = await state_after(handle, 4)
    assert unsubscribed.consent.subscribed is False
    assert unsubscribed.consent.gdpr_consent is True
    assert updated.consent.subscribed is True
    assert updated.consent.ccpa_opt_out is True
    assert updated.consent.marketing_allowed is False
    row = store.contact(updated.contact_id)
    assert row is not None
    assert row.consent["subscribed"] is True and row.consent["ccpa_opt_out"] is True
    assert row.consent["gdpr_consent"] is True


async def test_a_shared_browser_does_not_merge_two_people(store: Store, settings: Settings) -> None:
    first = {"type": "identify", "userId": "gw-alice", "anonymousId": "anon-shared"}
    second = {"type": "identify", "userId": "gw-bob", "anonymousId": "anon-shared"}
    async with serve_gateway(settings, store) as url, httpx.AsyncClient(base_url=url) as http:
        await http.post("/v1/batch", json={"batch": [first, second]}, headers=AUTH)
    alice, bob = store.resolve("gw-alice"), store.resolve("gw-bob")
    assert alice is not None and bob is not None and alice != bob
    assert store.resolve("anon-shared") == alice
    bob_row = store.contact(bob)
    assert bob_row is not None and bob_row.merged_into is None
