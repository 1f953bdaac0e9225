"""Encrypted Temporal payloads (docs/privacy.md): the codec, key rotation, a real workflow's
history as Temporal stores it, and the codec endpoint the Temporal UI and CLI use."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from revops.codec import ENCODING, KEY_ID, EncryptionCodec, parse_keys
from revops.errors import ConfigError
from revops.settings import Settings
from revops.temporal import connect, data_converter
from store.repo import Store
from tests.gateway_support import serve_gateway
from tests.support import eventually, handle_for, running_worker, send, state_of, track

SECRET_TITLE = "Chief Zymurgist of Quux"


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def _payload(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(text).encode())


@given(st.text(max_size=300))
async def test_a_payload_round_trips_and_its_bytes_hide_the_text(text: str) -> None:
    codec = EncryptionCodec(parse_keys({"k1": _key()}))
    [sealed] = await codec.encode([_payload(text)])
    [opened] = await codec.decode([sealed])
    assert opened == _payload(text)
    assert sealed.metadata["encoding"] == ENCODING and sealed.metadata[KEY_ID] == b"k1"
    if len(text) >= 4:
        assert json.dumps(text).encode() not in sealed.data


async def test_rotation_new_key_encrypts_old_keys_still_decrypt() -> None:
    old, new = _key(), _key()
    before = EncryptionCodec(parse_keys({"2026-01": old}))
    after = EncryptionCodec(parse_keys({"2026-06": new, "2026-01": old}))
    [written_before] = await before.encode([_payload("Dana")])
    [written_after] = await after.encode([_payload("Dana")])
    assert written_after.metadata[KEY_ID] == b"2026-06"
    assert await after.decode([written_before, written_after]) == [_payload("Dana")] * 2
    with pytest.raises(ValueError, match="unknown key id '2026-06'"):
        await before.decode([written_after])


async def test_plain_payloads_pass_and_tampering_is_refused() -> None:
    codec = EncryptionCodec(parse_keys({"k": _key()}))
    assert await codec.decode([_payload("old history")]) == [_payload("old history")]
    [sealed] = await codec.encode([_payload("x")])
    relabelled = Payload(metadata={**sealed.metadata, KEY_ID: b"other"}, data=sealed.data)
    flipped = Payload(
        metadata=sealed.metadata, data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    )
    for bad in (relabelled, flipped):
        with pytest.raises(ValueError):
            await codec.decode([bad])


@pytest.mark.parametrize(
    "keys", [{}, {"k": "not base64!"}, {"k": base64.b64encode(b"short").decode()}]
)
def test_bad_keys_are_refused_with_the_setting_named(keys: dict[str, str]) -> None:
    settings = Settings(
        payload_encryption=True, payload_keys={k: SecretStr(v) for k, v in keys.items()}
    )
    with pytest.raises(ConfigError, match="REVOPS_PAYLOAD_KEYS"):
        data_converter(settings)


def _encrypted(settings: Settings, token: str) -> Settings:
    return settings.model_copy(
        update={
            "payload_encryption": True,
            "payload_keys": {"k1": SecretStr(_key())},
            "codec_tokens": [SecretStr(token)],
        }
    )


async def _client(env: WorkflowEnvironment, settings: Settings) -> Client:
    config = env.client.config()
    config["data_converter"] = data_converter(settings)
    return Client(**config)


def _signal_payload(history: Any) -> Payload:
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            payload: Payload = event.workflow_execution_signaled_event_attributes.input.payloads[0]
            return payload
    raise AssertionError("no signal in the history")


async def test_a_real_history_read_without_the_key_shows_no_plaintext(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    settings = _encrypted(settings, "support-token")
    client = await _client(env, settings)
    async with running_worker(client, store, settings, children=False) as relay:
        event = track("u-codec", "Signed Up", traits={"title": SECRET_TITLE, "industry": "Zyth"})
        await send(store, relay, event)
        handle = handle_for(client, store, "u-codec")
        state = await eventually(lambda: state_of(handle), lambda s: s.stage == "Lead")
        raw = await env.client.get_workflow_handle(handle.id).fetch_history()
        async with serve_gateway(settings, store) as url, httpx.AsyncClient(base_url=url) as http:
            body = {"payloads": [json.loads(_to_json(_signal_payload(raw)))]}
            decoded = await http.post(
                "/v1/codec/decode", json=body, headers={"Authorization": "Bearer support-token"}
            )
            refused = await http.post("/v1/codec/decode", json=body)
            ui = settings.temporal_ui
            preflight = await http.options(
                "/v1/codec/decode",
                headers={"Origin": ui, "Access-Control-Request-Method": "POST"},
            )
            stranger = await http.options(
                "/v1/codec/decode", headers={"Origin": "https://evil.example"}
            )
    assert state.traits["title"] == SECRET_TITLE, "the workflow saw the trait"
    stored = b"".join(e.SerializeToString() for e in raw.events)
    assert SECRET_TITLE.encode() not in stored and b"Zyth" not in stored
    assert ENCODING in stored
    assert decoded.status_code == 200, decoded.text
    data = base64.b64decode(decoded.json()["payloads"][0]["data"])
    assert SECRET_TITLE.encode() in data
    assert refused.status_code == 401
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == ui
    assert preflight.headers["access-control-allow-credentials"] == "true"
    assert stranger.status_code == 403


def _to_json(payload: Payload) -> str:
    from google.protobuf import json_format

    return json_format.MessageToJson(payload)


async def test_connect_encrypts_when_the_settings_say_so(
    env: WorkflowEnvironment, settings: Settings
) -> None:
    address = env.client.service_client.config.target_host
    on = _encrypted(settings.model_copy(update={"temporal_address": address}), "t")
    client = await connect(on)
    off = await connect(settings.model_copy(update={"temporal_address": address}))
    assert isinstance(client.data_converter.payload_codec, EncryptionCodec)
    assert off.data_converter.payload_codec is None
