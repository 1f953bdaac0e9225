"""Fuzzing every endpoint of the gateway's OpenAPI document: no input gets a server error.

Schemathesis turns each operation of ``/openapi.json`` into a Hypothesis strategy, valid
bodies (positive) and bodies that break the schema (negative), with the write key, and posts
them over real HTTP to the gateway on a SQLite store. The signed sales webhook is signed, so
the fuzzed bodies get past the signature to validation. Tokens (unsubscribe, click, open) and
the email providers' webhooks are fuzzed as they come. A server error (5xx) anywhere fails
the test with the request that caused it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from pydantic import SecretStr
from schemathesis import Case, GenerationMode
from schemathesis.core.result import Ok

from gateway.sales import SIGNATURE_HEADER, sign
from revops.settings import Settings
from store.repo import Store
from tests.conftest import ID_SECRET, REPO
from tests.gateway_support import basic_auth, threaded_gateway

EXAMPLES_PER_MODE = 25
WEBHOOK_SECRET = "dev-webhook"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder: Path = tmp_path_factory.mktemp("fuzz")
    current = Settings(data_dir=folder, id_secret=SecretStr(ID_SECRET), config_dir=REPO / "config")
    store = Store.open(current.sqlalchemy_url, id_secret=ID_SECRET)
    with threaded_gateway(current, store) as url:
        yield url
    store.engine.dispose()


def _send(case: Case[Any], url: str, http: httpx.Client) -> httpx.Response:
    """The case over HTTP; a sales webhook body is signed as a real sender would sign it."""
    kwargs: dict[str, Any] = case.as_transport_kwargs(base_url=url)
    headers = {**basic_auth(), **(kwargs.get("headers") or {})}
    content: bytes | None = None
    if "json" in kwargs:
        content = json.dumps(kwargs["json"]).encode()
        headers["Content-Type"] = "application/json"
    elif kwargs.get("data") is not None:
        data = kwargs["data"]
        content = data if isinstance(data, bytes) else str(data).encode()
    if case.operation.path == "/v1/webhooks/sales":
        headers[SIGNATURE_HEADER] = sign(content or b"", WEBHOOK_SECRET, int(time.time()))
    return http.request(
        kwargs["method"],
        kwargs["url"],
        params=kwargs.get("params"),
        headers={k: str(v) for k, v in headers.items()},
        content=content,
    )


def _fuzz(operation: Any, mode: GenerationMode, url: str, found: list[str]) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_MODE,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Case[Any]) -> None:
        answer = _send(case, url, http)
        if answer.status_code >= 500 and not _readiness(case, answer):
            found.append(
                f"{case.method} {case.formatted_path} -> {answer.status_code}: "
                f"{answer.text[:200]} ({case.as_curl_command()[:300]})"
            )

    with httpx.Client(timeout=10) as http:
        try:
            run()
        except Unsatisfiable:  # nothing to break: the operation takes no input (/healthz)
            assert mode is GenerationMode.NEGATIVE


def _readiness(case: Case[Any], answer: httpx.Response) -> bool:
    """``/readyz/delivery`` answers 503 by design when this gateway cannot deliver (it has no
    relay here); every other endpoint, ``/readyz`` included, must not."""
    return case.operation.path == "/readyz/delivery" and answer.status_code == 503


def test_no_input_to_any_endpoint_gets_a_server_error(gateway: str) -> None:
    schema = schemathesis.openapi.from_url(f"{gateway}/openapi.json")
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # the document itself is valid
        operations.append(result.ok())
    paths = {operation.path for operation in operations}
    assert {"/v1/t", "/v1/b", "/v1/webhooks/sales", "/v1/unsubscribe", "/t/c/{token}"} <= paths
    found: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz(operation, mode, gateway, found)
    assert found == []


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(token=st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=60))
def test_tokens_of_any_text_are_refused_not_crashed(gateway: str, token: str) -> None:
    """Unsubscribe, click and open tokens: any text (non-ASCII too) is a 4xx or a page."""
    in_path = quote(token, safe="")
    with httpx.Client(base_url=gateway, timeout=10) as http:
        answers = [
            http.post("/v1/unsubscribe", params={"token": token}),
            http.get("/v1/unsubscribe", params={"token": token}),
            http.get(f"/t/c/{in_path}", follow_redirects=False),
            http.get(f"/t/o/{in_path}"),
        ]
    assert all(a.status_code < 500 for a in answers), [(a.url, a.status_code) for a in answers]
