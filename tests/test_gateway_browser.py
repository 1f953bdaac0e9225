"""The browser and mobile Segment libraries: short paths, the write key in a text/plain body,
CORS, numeric user ids and epoch-millisecond timestamps.

The requests are analytics.js 2.0's (analytics-next) as its source builds them, recorded by
hand in tests/fixtures/segment/analytics_next.json; the gateway runs under uvicorn on a free
port and the contact workflows on the test's worker.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from revops.settings import Settings
from store.repo import Store
from store.schema import EventRow
from tests.gateway_support import WRITE_KEY, basic_auth, serve_gateway, state_after
from tests.support import handle_for, running_worker

FIXTURE: dict[str, Any] = json.loads(
    (Path(__file__).parent / "fixtures" / "segment" / "analytics_next.json").read_text()
)
ORIGIN = "https://www.acme.test"


def _browser(settings: Settings) -> Settings:
    return settings.model_copy(update={"cors_origins": [ORIGIN]})


def _recorded(entry: dict[str, Any], write_key: str = WRITE_KEY) -> dict[str, Any]:
    """One recorded request as httpx arguments, with the write key and origin filled in."""
    text = json.dumps(entry["body"]).replace("WRITE_KEY", write_key)
    headers = {k: v.replace("ORIGIN", ORIGIN) for k, v in FIXTURE["headers"].items()}
    return {"url": entry["path"], "content": text.encode(), "headers": headers}


def _requests(write_key: str = WRITE_KEY) -> list[dict[str, Any]]:
    return [_recorded(e, write_key) for e in [*FIXTURE["standard"], FIXTURE["batched"]]]


def _events(store: Store) -> list[EventRow]:
    with store.engine.connect() as conn:
        return list(conn.execute(select(EventRow).order_by(EventRow.id)).all())  # type: ignore[arg-type]


async def test_analytics_js_requests_reach_the_contact_workflow(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    current = _browser(settings)
    async with (
        running_worker(env.client, store, current) as relay,
        serve_gateway(current, store, relay) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        answers = [await http.post(**request) for request in _requests()]
        state = await state_after(handle_for(env.client, store, "48213"), 6)
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert answer.headers["access-control-allow-origin"] == ORIGIN
    assert state.event_counts == {
        "Pricing Page Viewed": 1,  # anonymous, joined when identify linked the anonymousId
        "Identify": 1,  # userId 48213 sent as a number
        "Signed Up": 1,
        "Group": 1,
        "Pricing Viewed": 1,  # the batched dispatcher's /v1/b
        "Docs Page Viewed": 1,
    }
    assert state.traits["title"] == "VP Marketing" and state.account_id == "acct-acme"


async def test_a_preflight_is_answered_for_configured_origins_only(
    store: Store, settings: Settings
) -> None:
    preflight = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    async with serve_gateway(_browser(settings), store) as url, httpx.AsyncClient() as http:
        allowed = await http.options(f"{url}/v1/b", headers=preflight)
        other = await http.options(
            f"{url}/v1/t", headers={**preflight, "Origin": "https://evil.test"}
        )
        webhook = await http.options(f"{url}/v1/webhooks/sales", headers=preflight)
    async with serve_gateway(settings, store) as url, httpx.AsyncClient() as http:
        unconfigured = await http.options(f"{url}/v1/t", headers=preflight)
        simple = await http.post(**_recorded(FIXTURE["standard"][2]) | {"url": f"{url}/v1/t"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    for refused in (other, webhook, unconfigured):
        assert "access-control-allow-origin" not in refused.headers
    assert other.status_code == 400
    # Without configured origins the call is still stored; only the browser hides the answer.
    assert simple.status_code == 200 and "access-control-allow-origin" not in simple.headers


async def test_the_write_key_in_the_body_is_checked_like_the_header(
    store: Store, settings: Settings
) -> None:
    track = FIXTURE["standard"][2]
    async with serve_gateway(_browser(settings), store) as url, httpx.AsyncClient() as http:
        wrong = await http.post(**_recorded(track, "not-a-key") | {"url": f"{url}/v1/t"})
        body = {k: v for k, v in track["body"].items() if k != "writeKey"}
        missing = await http.post(f"{url}/v1/t", content=json.dumps(body).encode())
        # A wrong Authorization header is not rescued by a right key in the body.
        header_wins = await http.post(
            **_recorded(track) | {"url": f"{url}/v1/t", "headers": basic_auth("nope")}
        )
        batch = await http.post(**_recorded(FIXTURE["batched"], "nope") | {"url": f"{url}/v1/b"})
    for answer in (wrong, missing, header_wins, batch):
        assert answer.status_code == 401, answer.text
        assert "writeKey" in answer.json()["message"]
    assert store.row_counts()["events"] == 0


async def test_numeric_user_ids_and_epoch_millisecond_timestamps(
    store: Store, settings: Settings
) -> None:
    moment = datetime(2026, 3, 1, 9, 30, 15, 250000, tzinfo=UTC)
    millis = int(moment.timestamp() * 1000)
    calls = [
        {"type": "identify", "userId": 7, "anonymousId": 99, "messageId": "num-1"},
        {"type": "track", "userId": 7, "event": "Signed Up", "messageId": "num-2"}
        | {"timestamp": millis},
        {"type": "group", "userId": "7", "groupId": 1200, "messageId": "num-3"},
    ]
    async with serve_gateway(settings, store) as url, httpx.AsyncClient(base_url=url) as http:
        answer = await http.post("/v1/batch", json={"batch": calls}, headers=basic_auth())
        flags = await http.post(
            "/v1/track",
            json={"userId": True, "event": "x", "messageId": "num-4"},
            headers=basic_auth(),
        )
    assert answer.status_code == 200, answer.text
    rows = {row.message_id: row for row in _events(store)}
    assert rows["num-1"].user_id == "7" and rows["num-1"].anonymous_id == "99"
    stamp = rows["num-2"].timestamp
    assert stamp.replace(tzinfo=stamp.tzinfo or UTC) == moment
    assert rows["num-3"].context.get("group_id", "1200") == "1200"
    assert flags.status_code == 400  # a boolean is not an id
    assert store.resolve("7") is not None
