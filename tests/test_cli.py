"""The `revops` command line, run as a user runs it (a subprocess) against the real stack."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from temporalio.testing import WorkflowEnvironment

from revops.settings import Settings
from store.repo import Store
from tests.conftest import ID_SECRET
from tests.support import eventually, handle_for, running_worker, state_of

REVOPS = str(Path(sys.executable).parent / "revops")


def _cli_env(env: WorkflowEnvironment, settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "REVOPS_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
        "REVOPS_TASK_QUEUE": settings.task_queue,
        "REVOPS_PRIORITY_TASK_QUEUE": settings.priority_task_queue,
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


async def test_why_explains_an_mql_in_words_a_rep_understands(
    env: WorkflowEnvironment, settings: Settings
) -> None:
    environ = _cli_env(env, settings)
    store = Store.open(settings.sqlalchemy_url, id_secret=ID_SECRET)
    traits = ["--trait", "company_size=450", "--trait", "industry=Software"]
    traits += ["--trait", "title=VP Engineering", "--trait", "country=US"]
    async with running_worker(env.client, store, settings):
        await _revops(environ, "events", "send", "u-why", "Pricing Page Viewed", *traits)
        await _revops(environ, "events", "send", "u-why", "Pricing Page Viewed")
        why = await _revops(environ, "contacts", "why", "u-why")
        shown = await _revops(environ, "contacts", "show", "u-why", "--json")
    assert why.returncode == 0, why.stderr
    text = why.stdout
    assert "+50 Viewed the pricing page x2" in text
    assert "+20 Decision-maker title" in text
    assert "model 2026.2" in text
    assert "Top behaviours: Viewed the pricing page 2 times" in text
    assert "entered MQL" in text
    view = json.loads(shown.stdout)
    assert view["scores"]["fit"] == 65 and view["scores"]["engagement"] == 50
    assert view["segment"] is None and "Mid-Market" in view["lists"]
    assert view["demand_state"] == "commercial-negotiating"


async def test_static_lists_from_the_cli_and_dynamic_ones_refused(
    env: WorkflowEnvironment, settings: Settings
) -> None:
    environ = _cli_env(env, settings)
    store = Store.open(settings.sqlalchemy_url, id_secret=ID_SECRET)
    async with running_worker(env.client, store, settings):
        await _revops(environ, "events", "send", "u-list", "Signed Up")
        added = await _revops(environ, "lists", "add", "Event Attendees", "u-list")
        dynamic = await _revops(environ, "lists", "add", "Pricing Engaged ICP", "u-list")
        unknown = await _revops(environ, "lists", "add", "Event Attendees", "nobody")
        await asyncio.sleep(1)
        overview = await _revops(environ, "lists")
        detail = await _revops(environ, "lists", "show", "Event Attendees")
    assert added.returncode == 0, added.stderr
    assert dynamic.returncode == 2 and "dynamic list" in dynamic.stderr
    assert unknown.returncode == 1
    assert "Event Attendees" in overview.stdout
    assert "members: 1" in detail.stdout
    contact_id = store.resolve("u-list") or ""
    assert contact_id in detail.stdout


async def test_deploying_a_list_change_reevaluates_existing_contacts(
    env: WorkflowEnvironment, settings: Settings, tmp_path: Path
) -> None:
    environ = _cli_env(env, settings)
    store = Store.open(settings.sqlalchemy_url, id_secret=ID_SECRET)
    lists = yaml.safe_load((settings.config_dir / "lists.yaml").read_text())
    for definition in lists["lists"]:
        if definition["name"] == "SMB":
            definition["when"] = {"trait": "company_size", "lt": 500}
    candidate = tmp_path / "lists.yaml"
    candidate.write_text(yaml.safe_dump(lists))
    async with running_worker(env.client, store, settings):
        await _revops(
            environ, "events", "send", "u-smb", "Signed Up", "--trait", "company_size=450"
        )
        handle = handle_for(env.client, store, "u-smb")
        before = await eventually(lambda: state_of(handle), lambda s: "Mid-Market" in s.lists)
        deployed = await _revops(environ, "lists", "deploy", str(candidate))
        after = await eventually(lambda: state_of(handle), lambda s: "SMB" in s.lists)
        history = await _revops(environ, "lists", "history")
    assert "SMB" not in before.lists
    assert deployed.returncode == 0, deployed.stderr[-3000:]
    assert "v1 deployed" in deployed.stdout and "1 running contact(s)" in deployed.stdout
    assert "SMB" in after.lists and "Mid-Market" in after.lists
    assert "deploy" in history.stdout


async def test_an_invalid_list_file_is_refused_with_its_field(
    env: WorkflowEnvironment, settings: Settings, tmp_path: Path
) -> None:
    bad = tmp_path / "lists.yaml"
    bad.write_text("version: 1\nlists:\n  - name: X\n    when: {event: Y, within: 7x}\n")
    result = await _revops(_cli_env(env, settings), "lists", "validate", str(bad))
    assert result.returncode == 2
    assert "lists[0].when" in result.stderr and "7x" in result.stderr


async def test_scoring_deploy_is_used_by_running_contacts_and_rollback_restores(
    env: WorkflowEnvironment, settings: Settings, tmp_path: Path
) -> None:
    environ = _cli_env(env, settings)
    store = Store.open(settings.sqlalchemy_url, id_secret=ID_SECRET)
    model = yaml.safe_load((settings.config_dir / "scoring.yaml").read_text())
    model["version"] = "2026.2"
    for rule in model["engagement"]:
        if rule["name"] == "case_study":
            rule["points"] = 30
    candidate = tmp_path / "scoring.yaml"
    candidate.write_text(yaml.safe_dump(model))
    async with running_worker(env.client, store, settings):
        await _revops(environ, "events", "send", "u-model", "Case Study Viewed")
        handle = handle_for(env.client, store, "u-model")
        await eventually(lambda: state_of(handle), lambda s: s.scores is not None)
        deployed = await _revops(environ, "scoring", "deploy", str(candidate))
        after = await eventually(
            lambda: state_of(handle),
            lambda s: s.scores is not None and s.scores.model_version == "2026.2",
        )
        rolled = await _revops(environ, "scoring", "rollback")
        history = await _revops(environ, "scoring", "history")
        backtest = await _revops(environ, "scoring", "backtest", "--model", str(candidate))
    assert deployed.returncode == 0, deployed.stderr[-2000:]
    assert after.scores is not None and after.scores.engagement == 30
    assert rolled.returncode == 2 and "first version" in rolled.stderr
    assert "deploy" in history.stdout
    assert backtest.returncode == 0, backtest.stderr[-2000:]
    assert "stored event log" in backtest.stderr and "Model 2026.2" in backtest.stdout
