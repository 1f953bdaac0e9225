"""`revops gateway` as production runs it: a process serving the app and the relay."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from temporalio.testing import WorkflowEnvironment

from revops.settings import Settings
from store.repo import Store
from tests.conftest import ID_SECRET
from tests.gateway_support import basic_auth, free_port, state_after
from tests.support import eventually, handle_for, running_worker

REVOPS = str(Path(sys.executable).parent / "revops")


async def _healthy(url: str) -> bool:
    try:
        async with httpx.AsyncClient(base_url=url) as http:
            return (await http.get("/healthz")).status_code == 200
    except httpx.HTTPError:
        return False


async def test_revops_gateway_serves_relays_and_stops_on_sigterm(
    env: WorkflowEnvironment, settings: Settings
) -> None:
    port = free_port()
    environ = {
        **os.environ,
        "REVOPS_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
        "REVOPS_TASK_QUEUE": settings.task_queue,
        "REVOPS_PRIORITY_TASK_QUEUE": settings.priority_task_queue,
        "REVOPS_DATA_DIR": str(settings.data_dir),
        "REVOPS_ID_SECRET": ID_SECRET,
        "REVOPS_GATEWAY_PORT": str(port),
        "REVOPS_WRITE_KEYS": '["prod-key"]',
        "REVOPS_LOG_FORMAT": "json",
    }
    url = f"http://127.0.0.1:{port}"
    store = Store.open(settings.sqlalchemy_url, id_secret=ID_SECRET)
    process = subprocess.Popen(
        [REVOPS, "gateway"], env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        await eventually(lambda: _healthy(url), bool)
        async with (
            running_worker(env.client, store, settings),
            httpx.AsyncClient(base_url=url, headers=basic_auth("prod-key")) as http,
        ):
            answer = await http.post("/v1/track", json={"userId": "gw-cli", "event": "Signed Up"})
            assert answer.status_code == 200, answer.text
            state = await state_after(handle_for(env.client, store, "gw-cli"), 1)
            ready = (await http.get("/readyz")).json()
        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 20)
    finally:
        process.kill()
        output = process.stdout.read().decode() if process.stdout else ""
    assert code == 0, output
    assert state.stage == "Lead"
    assert ready == {
        "ready": True,
        "store": "ok",
        "temporal": "ok",
        "relay": "active",
        "outbox_pending": 0,
    }
    assert '"event": "http_request"' in output and "gw-cli" not in output
