"""Property-based bad input: every malformed request gets a 4xx with a reason, stores nothing,
and the gateway keeps serving. The app runs under uvicorn on a free port; httpx talks to it.
"""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from revops.settings import Settings
from store.repo import Store
from tests.conftest import ID_SECRET
from tests.gateway_support import basic_auth, threaded_gateway

EXAMPLES = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

VALID: dict[str, dict[str, Any]] = {
    "track": {"userId": "p-1", "event": "Signed Up", "properties": {"plan": "pro"}},
    "identify": {"anonymousId": "anon-p", "traits": {"title": "CTO"}},
    "page": {"userId": "p-1", "name": "Pricing", "properties": {"path": "/pricing"}},
    "screen": {"userId": "p-1", "name": "Home"},
    "group": {"userId": "p-1", "groupId": "acct-1", "traits": {"name": "Acme"}},
    "alias": {"userId": "p-1", "previousId": "p-0"},
}
STRING_FIELDS = ("userId", "anonymousId", "messageId", "event", "name", "groupId", "previousId")
ID_FIELDS = ("userId", "anonymousId", "groupId", "previousId")
"""Ids may also be integers (``userId: 42`` is user "42"), as the browser library sends them."""
OBJECT_FIELDS = {
    "track": ("properties", "context"),
    "identify": ("traits", "context"),
    "page": ("properties", "context"),
    "screen": ("properties", "context"),
    "group": ("traits", "context"),
    "alias": ("context",),
}

not_a_string = st.one_of(
    st.integers(),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)
not_an_id = st.one_of(
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)
not_an_object = st.one_of(st.text(max_size=10), st.integers(), st.lists(st.text(), max_size=3))
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
)
not_iso = st.one_of(
    st.booleans(),
    st.integers(min_value=10**16),  # epoch milliseconds past 2200
    st.from_regex(r"[a-z ]{1,12}", fullmatch=True),
    st.just("2024-13-45T99:00"),
)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, Store]]:
    """The real app on a free port with a fresh SQLite store, and a client with the write key."""
    folder: Path = tmp_path_factory.mktemp("gateway-properties")
    current = Settings(data_dir=folder, id_secret=SecretStr(ID_SECRET))
    store = Store.open(current.sqlalchemy_url, id_secret=ID_SECRET)
    with (
        threaded_gateway(current, store) as url,
        httpx.Client(base_url=url, headers=basic_auth()) as http,
    ):
        yield http, store
    store.engine.dispose()


def _refused(gateway: tuple[httpx.Client, Store], path: str, **request: Any) -> None:
    http, store = gateway
    before = store.row_counts()
    answer = http.post(path, **request)
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text)
    assert answer.json()["message"], answer.text
    assert store.row_counts() == before


def _call(kind: str) -> dict[str, Any]:
    return {"type": kind, **json.loads(json.dumps(VALID[kind]))}


@st.composite
def broken_calls(draw: st.DrawFn) -> dict[str, Any]:
    """A valid call with one thing wrong: an id missing, a wrong type, a bad timestamp."""
    kind = draw(st.sampled_from(sorted(VALID)))
    call = _call(kind)
    flaw = draw(st.sampled_from(("no_ids", "string", "object", "timestamp", "empty", "long")))
    if flaw == "no_ids":
        for key in ("userId", "anonymousId", "previousId", "groupId"):
            call.pop(key, None)
    elif flaw == "string":
        field = draw(st.sampled_from([f for f in STRING_FIELDS if f in call] or ["userId"]))
        call[field] = draw(not_an_id if field in ID_FIELDS else not_a_string)
    elif flaw == "object":
        call[draw(st.sampled_from(OBJECT_FIELDS[kind]))] = draw(not_an_object)
    elif flaw == "timestamp":
        call["timestamp"] = draw(not_iso)
    elif flaw == "empty":
        call[draw(st.sampled_from([f for f in STRING_FIELDS if f in call]))] = ""
    else:
        call[draw(st.sampled_from([f for f in STRING_FIELDS if f in call]))] = "x" * 300
    return call


def _json_object(body: bytes) -> bool:
    try:
        return isinstance(json.loads(body), dict)
    except ValueError:
        return False


@EXAMPLES
@given(body=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
def test_bytes_that_are_not_a_json_object_are_refused(
    gateway: tuple[httpx.Client, Store], body: bytes
) -> None:
    assume(not _json_object(body))
    _refused(gateway, "/v1/batch", content=body)


@EXAMPLES
@given(
    value=st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=8),
    path=st.sampled_from(("/v1/track", "/v1/identify", "/v1/batch", "/v1/alias")),
)
def test_json_that_is_not_an_object_is_refused(
    gateway: tuple[httpx.Client, Store], value: Any, path: str
) -> None:
    _refused(gateway, path, json=value)


@EXAMPLES
@given(call=broken_calls(), position=st.integers(0, 3), single=st.booleans())
# Found by Hypothesis: a NUL in one call of a batch refused the whole batch (400).
@example(
    call={"type": "alias", "userId": {"\x00": 0}, "previousId": "p-0"}, position=0, single=False
)
@example(call={**_call("track"), "event": "Signed\x00Up"}, position=2, single=False)
def test_a_broken_call_is_refused_alone_and_only_itself_in_a_batch(
    gateway: tuple[httpx.Client, Store], call: dict[str, Any], position: int, single: bool
) -> None:
    if single:
        _refused(gateway, f"/v1/{call['type']}", json=call)
        return
    http, store = gateway
    batch = [{**_call("track"), "messageId": str(uuid.uuid4())} for _ in range(3)]
    batch.insert(position, call)
    before = store.row_counts()
    answer = http.post("/v1/batch", json={"batch": batch})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [r["index"] for r in body["rejected"]] == [position]
    assert body["rejected"][0]["message"] and body["accepted"] == 3
    after = store.row_counts()
    assert after["events"] - before["events"] == 3
    assert after["rejected_calls"] - before["rejected_calls"] == 1


@EXAMPLES
@given(
    flaw=st.sampled_from(("big_event", "big_batch", "bad_gzip", "gzip_of_junk")),
    junk=st.binary(min_size=1, max_size=64),
)
def test_oversize_and_badly_encoded_bodies_are_refused(
    gateway: tuple[httpx.Client, Store], flaw: str, junk: bytes
) -> None:
    gzip_headers = {"Content-Encoding": "gzip"}
    if flaw == "big_event":
        call = {**_call("track"), "properties": {"blob": junk.hex() * (40_000 // len(junk))}}
        _refused(gateway, "/v1/track", json=call)
    elif flaw == "big_batch":
        blob = {"blob": "z" * 30_000}
        batch = [{**_call("track"), "properties": blob} for _ in range(18)]
        _refused(gateway, "/v1/import", json={"batch": batch})
    elif flaw == "bad_gzip":
        assume(not junk.startswith(b"\x1f\x8b"))
        _refused(gateway, "/v1/track", content=junk, headers=gzip_headers)
    else:
        assume(not _json_object(junk))
        _refused(gateway, "/v1/track", content=gzip.compress(junk), headers=gzip_headers)


def test_the_gateway_still_serves_after_all_that(gateway: tuple[httpx.Client, Store]) -> None:
    http, store = gateway
    before = store.row_counts()["events"]
    answer = http.post("/v1/track", json=_call("track"))
    assert answer.status_code == 200, answer.text
    assert store.row_counts()["events"] == before + 1
