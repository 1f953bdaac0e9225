"""The `revops` command line, run as a user runs it (a subprocess) against the real stack."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from revops.settings import Settings
from store.repo import Store
from tests.conftest import ID_SECRET
from tests.support import running_worker

REVOPS = str(Path(sys.executable).parent / "revops")


def _cli_env(env: WorkflowEnvironment, settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "REVOPS_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
        "REVOPS_TASK_QUEUE": settings.task_queue,
        "REVOPS_DATA_DIR": str(settings.data_dir),
        "REVOPS_ID_SECRET": ID_SECRET,
        "REVOPS_CONFIG_DIR": str(settings.config_dir),
        "REVOPS_LOG_LEVEL": "WARNING",
    }


async def _revops(environ: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, [REVOPS, *args], env=environ, capture_output=True, text=True, timeout=60
    )


async def test_send_then_show_reports_the_lead_stage(
    env: WorkflowEnvironment, settings: Settings
) -> None:
    environ = _cli_env(env, settings)
    store = Store.open(settings.sqlalchemy_url, id_secret=ID_SECRET)
    async with running_worker(env.client, store, settings):
        sent = await _revops(
            environ,
            "events",
            "send",
            "u-cli",
            "Signed Up",
            "--prop",
            "plan=pro",
            "--trait",
            "seats=5",
        )
        assert sent.returncode == 0, sent.stderr
        shown = await _revops(environ, "contacts", "show", "u-cli", "--json")
    assert shown.returncode == 0, shown.stderr
    view = json.loads(shown.stdout)
    assert view["user_id"] == "u-cli"
    assert view["stage"] == "Lead"
    assert [entry["stage"] for entry in view["stage_history"]] == ["Lead"]
    assert view["profile"] == {"seats": 5}
    assert view["event_counts"] == {"Signed Up": 1}


async def test_unknown_contact_exits_1_with_a_message(
    env: WorkflowEnvironment, settings: Settings
) -> None:
    shown = await _revops(_cli_env(env, settings), "contacts", "show", "nobody")
    assert shown.returncode == 1
    assert "no contact with user id 'nobody'" in shown.stderr


async def test_bad_arguments_exit_2_and_store_nothing(
    env: WorkflowEnvironment, settings: Settings
) -> None:
    environ = _cli_env(env, settings)
    missing = await _revops(environ, "events", "send", "u-x")
    bad_pair = await _revops(environ, "events", "send", "u-x", "Signed Up", "--prop", "novalue")
    bad_stage = await _revops(environ, "contacts", "set-stage", "u-x", "Wizard", "--reason", "r")
    no_reason = await _revops(environ, "contacts", "set-stage", "u-x", "Lead")
    for result in (missing, bad_pair, bad_stage, no_reason):
        assert result.returncode == 2, result.stderr
    assert "not key=value" in bad_pair.stderr
    store = Store.open(settings.sqlalchemy_url, id_secret=ID_SECRET)
    assert store.row_counts()["events"] == 0
