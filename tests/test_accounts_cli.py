"""The README's account-based marketing commands, run as a user runs them (``revops`` as a
subprocess against a real worker): three colleagues engage, the CFO's visit raises the
priority and starts the account play; ``accounts show|list`` and ``contacts show`` say so."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

from temporalio.testing import WorkflowEnvironment

from revops.settings import Settings
from store.repo import Store
from tests.conftest import ID_SECRET, REPO
from tests.support import eventually, quick_accounts, running_worker
from tests.test_cli import _cli_env, _revops


def _readme_commands() -> list[list[str]]:
    """The ``revops events send`` lines of the README's account-based marketing example."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = text.split("Account-based marketing (seed 001", 1)[1].split("```", 2)[1]
    return [
        [part.strip('"') for part in re.findall(r'"[^"]*"|\S+', line)][1:]
        for line in block.splitlines()
        if line.startswith(".venv/bin/revops events send")
    ]


async def test_the_readme_abm_commands_start_the_account_play(
    env: WorkflowEnvironment, settings: Settings, tmp_path: Path
) -> None:
    settings = quick_accounts(settings, tmp_path)
    environ = _cli_env(env, settings)
    store = Store.open(settings.sqlalchemy_url, id_secret=ID_SECRET)
    domain, tag = f"initech-{uuid.uuid4().hex[:6]}.example", uuid.uuid4().hex[:6]
    commands = [
        [arg.replace("initech.example", domain).replace("u-", f"u-{tag}-", 1) for arg in command]
        for command in _readme_commands()
    ]
    assert len(commands) == 6 and commands[-1][3] == "Pricing Page Viewed"

    async def show(*args: str) -> Any:
        result = await _revops(environ, *args, "--json")
        return json.loads(result.stdout) if result.returncode == 0 else None

    async with running_worker(env.client, store, settings, children=False):
        for command in commands[:-1]:
            sent = await _revops(environ, *command)
            assert sent.returncode == 0, sent.stderr
        before = await eventually(
            lambda: show("accounts", "show", domain),
            lambda v: v is not None and v["engaged_contacts"] == 2,
        )
        assert before["priority"] == "normal" and before["plays"] == 0
        assert before["committee"] == ["economic_buyer", "champion", "technical_evaluator"]
        sent = await _revops(environ, *commands[-1])  # the CFO's visit
        assert sent.returncode == 0, sent.stderr
        after = await eventually(
            lambda: show("accounts", "show", domain), lambda v: v is not None and v["plays"] == 1
        )
        assert after["priority"] == "high" and after["engaged_contacts"] == 3
        contact = await eventually(
            lambda: show("contacts", "show", f"u-{tag}-eng"),
            lambda v: v is not None and (v.get("account") or {}).get("engaged_contacts") == 3,
        )
        assert contact["account"]["domain"] == domain and contact["account"]["via"] == "domain"
        listed = await show("accounts", "list")
        assert any(r["domain"] == domain and r["plays"] == 1 for r in listed)
        text = await _revops(environ, "accounts", "show", domain)
        assert "priority: high" in " ".join(text.stdout.split())
        missing = await _revops(environ, "accounts", "show", "nowhere.example")
        assert missing.returncode == 1 and "no account" in missing.stderr
