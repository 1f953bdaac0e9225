"""Batches are accepted call by call: the valid calls are stored, each invalid one is answered
by index and reason in a 200 and kept in the dead-letter table (``revops events rejected``);
only an unreadable body or a size limit refuses the whole request (400/413), as Segment does.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from temporalio.testing import WorkflowEnvironment

from revops.settings import Settings
from store.rejected import RejectedBook
from store.repo import Store
from tests.conftest import ID_SECRET
from tests.gateway_support import basic_auth, segment_sdk, serve_gateway
from tests.test_cli import _cli_env, _revops

AUTH = basic_auth()


def _track(user_id: str, event: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": user_id,
        "event": event,
        "messageId": str(uuid.uuid4()),
        "timestamp": datetime.now(UTC).isoformat(),
        **fields,
    }


async def test_a_mixed_batch_stores_the_valid_calls_and_lists_the_others(
    env: WorkflowEnvironment, settings: Settings
) -> None:
    store = Store.open(settings.sqlalchemy_url, id_secret=ID_SECRET)
    calls: list[Any] = [_track("mb-1", "Signed Up") for _ in range(6)]
    calls[1]["event"] = ""  # empty name
    calls[3] = {"type": "alias", "userId": "mb-1", "messageId": "mb-alias"}  # no previousId
    calls[4]["timestamp"] = "yesterday"
    calls.append("not a call")
    async with serve_gateway(settings, store) as url, httpx.AsyncClient(base_url=url) as http:
        answer = await http.post("/v1/batch", json={"batch": calls}, headers=AUTH)
        again = await http.post("/v1/import", json={"batch": calls}, headers=AUTH)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["accepted"], body["duplicates"]) == (3, 0)
    assert [(r["index"], r["field"]) for r in body["rejected"]] == [
        (1, "batch[1].event"),
        (3, "batch[3].previousId"),
        (4, "batch[4].timestamp"),
        (6, "batch[6]"),
    ]
    assert body["rejected"][1]["message"].startswith("batch[3].previousId: Field required")
    assert (again.json()["accepted"], again.json()["duplicates"]) == (0, 3)
    assert store.row_counts()["events"] == 3
    kept = RejectedBook(store).recent()
    assert len(kept) == 8 and kept[0].path == "/v1/import"
    assert {r.message_id for r in kept} >= {"mb-alias"}
    environ = _cli_env(env, settings)
    listed = await _revops(environ, "events", "rejected", "--json")
    table = await _revops(environ | {"COLUMNS": "200"}, "events", "rejected", "--limit", "2")
    store.engine.dispose()
    assert listed.returncode == 0, listed.stderr
    document = json.loads(listed.stdout)["rejected"]
    assert [row["index"] for row in document[:4]] == [6, 4, 3, 1]
    assert document[3]["call"]["event"] == "" and document[0]["call"] == "not a call"
    assert table.returncode == 0 and table.stdout.count("/v1/import") == 2
    assert "batch[6]: Input should be a valid dictionary" in table.stdout


async def test_only_an_unreadable_body_or_a_size_limit_refuses_a_batch(
    store: Store, settings: Settings
) -> None:
    big = _track("mb-2", "E", properties={"blob": "x" * 33_000})
    async with serve_gateway(settings, store) as url, httpx.AsyncClient(base_url=url) as http:
        unreadable = await http.post("/v1/batch", content=b'{"batch": [', headers=AUTH)
        not_a_list = await http.post("/v1/batch", json={"batch": {"a": 1}}, headers=AUTH)
        empty = await http.post("/v1/batch", json={"batch": []}, headers=AUTH)
        oversize = await http.post(
            "/v1/batch", json={"batch": [_track("mb-2", "Signed Up"), big]}, headers=AUTH
        )
    assert (unreadable.status_code, unreadable.json()["code"]) == (400, "invalid_json")
    assert not_a_list.status_code == 400 and empty.status_code == 400
    assert (oversize.status_code, oversize.json()["code"]) == (400, "event_too_large")
    assert store.row_counts()["events"] == 0 and store.row_counts()["rejected_calls"] == 0


async def test_the_python_sdk_loses_only_the_bad_call(store: Store, settings: Settings) -> None:
    async with serve_gateway(settings, store) as url, segment_sdk(url) as sdk:
        for n in range(99):
            sdk.client.track(f"mb-sdk-{n % 7}", "Page Read", {"n": n})
        sdk.client.track("mb-sdk-0", "")  # the SDK sends it; the gateway refuses it alone
        await sdk.flush()
    assert store.row_counts()["events"] == 99
    refused = RejectedBook(store).recent()
    assert len(refused) == 1 and refused[0].field == f"batch[{refused[0].index}].event"
