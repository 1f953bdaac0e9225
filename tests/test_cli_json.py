"""``--json`` on every read command and ``--version``, run as a script would run the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from typing import Any

import typer
from temporalio.testing import WorkflowEnvironment
from typer.core import TyperGroup

import revops
from revops.settings import Settings
from starter.cli import CONTACT_COMMANDS, GROUPS, app
from starter.lazy import subcommands
from store.repo import Store
from tests.conftest import ID_SECRET, REPO
from tests.support import running_worker
from tests.test_cli import REVOPS, _cli_env, _revops

WRITES = {"send", "set-stage", "add", "remove", "deploy", "rollback", "validate", "schema"}
WRITES |= {"synth", "dev", "worker", "gateway", "simulate"}  # simulate streams JSON lines
WRITES |= {"schedule"}  # retention schedule
WRITES |= {"import", "resync"}
NOT_YET = {"history"}  # --json arrives with the definitions commands (starter/definitions_cli.py)
TIME_KEYS = ("at", "deployed_at", "entered_at", "left_at", "computed_at", "since", "decided_at")


def _read_commands(group: TyperGroup, path: str = "revops") -> dict[str, Any]:
    found: dict[str, Any] = {}
    if group.invoke_without_command:
        found[path] = group  # `revops lists` is itself the overview
    for name, command in subcommands(group).items():
        if isinstance(command, TyperGroup):
            found |= _read_commands(command, f"{path} {name}")
        elif name not in WRITES | NOT_YET:
            found[f"{path} {name}"] = command
    return found


def test_every_read_command_takes_json() -> None:
    commands = _read_commands(typer.main.get_group(app))
    missing = [
        path
        for path, command in commands.items()
        if not any("--json" in param.opts for param in command.params)
    ]
    assert len(commands) >= 10 and missing == []
    documented = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    assert [p for p in commands if f"| `{p.removeprefix('revops ')}" not in documented] == []


def test_help_lists_every_group_without_importing_it_and_each_loads_with_that_help() -> None:
    """`revops --help` and every command start without the other groups' imports (about a
    second each); the one line of help the table gives matches the group it loads."""
    heavy = sorted({lazy.target.partition(":")[0] for lazy in GROUPS.values()})
    probe = f"import starter.cli, sys; print([m for m in {heavy!r} if m in sys.modules])"
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert (shown.returncode, shown.stdout.strip()) == (0, "[]"), shown.stderr[-2000:]
    listing = subprocess.run([REVOPS, "--help"], capture_output=True, text=True, timeout=60)
    flat = " ".join(listing.stdout.replace("│", " ").split())
    loaded = subcommands(typer.main.get_group(app))
    contacts = loaded["contacts"]
    assert isinstance(contacts, TyperGroup)
    for table, group in ((GROUPS, loaded), (CONTACT_COMMANDS, subcommands(contacts))):
        for name, lazy in table.items():
            real = group[name].help or ""
            assert lazy.help == real.split("\n\n")[0].strip().replace("\n", " "), name
            command = group[name]
            assert subcommands(command) if isinstance(command, TyperGroup) else command.params
    for name, lazy in GROUPS.items():
        assert f"{name} {lazy.help}" in flat


def test_version_prints_the_package_version() -> None:
    result = subprocess.run([REVOPS, "--version"], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (0, f"revops {revops.__version__}\n")


def _times(document: Any) -> list[str]:
    """Every value under a time key, anywhere in the document."""
    if isinstance(document, list):
        return [t for item in document for t in _times(item)]
    if not isinstance(document, dict):
        return []
    found = [v for k, v in document.items() if k in TIME_KEYS and isinstance(v, str)]
    return found + [t for value in document.values() for t in _times(value)]


async def _json(environ: dict[str, str], *args: str) -> Any:
    result = await _revops(environ, *args, "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    document = json.loads(result.stdout)
    for moment in _times(document):
        assert datetime.fromisoformat(moment).tzinfo is not None, (args, moment)
    return document


async def test_read_commands_print_the_table_facts_as_json(
    env: WorkflowEnvironment, settings: Settings
) -> None:
    environ = {**_cli_env(env, settings), "REVOPS_JOURNEYS_DIR": str(REPO / "config/journeys")}
    store = Store.open(settings.sqlalchemy_url, id_secret=ID_SECRET)
    traits = ["--trait", "company_size=450", "--trait", "industry=Software"]
    traits += ["--trait", "title=VP Engineering", "--trait", "country=US"]
    async with running_worker(env.client, store, settings):
        await _revops(environ, "events", "send", "u-json", "Pricing Page Viewed", *traits)
        await _revops(environ, "events", "send", "u-json", "Pricing Page Viewed")
        await _revops(environ, "lists", "add", "Event Attendees", "u-json")
        why = await _json(environ, "contacts", "why", "u-json")
        why_text = " ".join((await _revops(environ, "contacts", "why", "u-json")).stdout.split())
        overview = await _json(environ, "lists")
        attendees = await _json(environ, "lists", "show", "Event Attendees")
    deployed = await _revops(
        environ, "journeys", "deploy", "config/journeys/whitepaper-nurture.yaml"
    )
    assert deployed.returncode == 0, deployed.stderr
    journeys = await _json(environ, "journeys", "list")
    whitepaper = await _json(environ, "journeys", "show", "whitepaper-nurture")
    freshness = await _json(environ, "lists", "freshness")
    backtest = await _json(environ, "scoring", "backtest", "--model", "config/scoring.yaml")

    contact_id = store.resolve("u-json")
    assert (why["user_id"], why["contact_id"]) == ("u-json", contact_id)
    assert why["score_card"]["fit"] == 65 and why["score_card"]["engagement"] == 50
    assert why["stage"] == "MQL" and why["stage_history"][-1]["stage"] == "MQL"
    assert {"Mid-Market", "Event Attendees"} <= set(why["lists"])
    assert f"Demand state: {why['demand_state']}" in why_text
    assert f"Gate (default segment): {why['gate']['reason']}" in why_text

    members = {line["name"]: line["members"] for line in overview["lists"]}
    assert members["Event Attendees"] == 1 and members["Competitors"] == 0
    assert attendees["members"] == 1 and attendees["definition"]["kind"] == "static"
    assert [stay["contact_id"] for stay in attendees["recent"]] == [contact_id]
    assert attendees["recent"][0]["left_at"] is None
    fresh = {line["name"]: line for line in freshness["lists"]}
    assert fresh["Event Attendees"] == {
        "name": "Event Attendees",
        "members": 1,
        "fresh": 1,
        "share": 1.0,
        "stale": False,
    }

    listed = {line["name"]: line for line in journeys["journeys"]}
    assert listed["whitepaper-nurture"]["deployed"] is True
    assert listed["trial-onboarding"]["deployed"] is False
    assert listed["whitepaper-nurture"]["trigger"]["kind"] == "event"
    assert [v["version"] for v in whitepaper["versions"]] == [1]
    assert whitepaper["versions"][0]["active"] is True and whitepaper["shown_version"] == 1
    assert whitepaper["steps"][0] == {"number": 1, "kind": "goal", "id": "booked-meeting"}

    assert backtest["report"]["events"] >= 2 and backtest["report"]["contacts"] == 1
    assert [row["threshold"] for row in backtest["report"]["thresholds"]][:2] == [40, 45]
