"""``revops journeys``: the life cycle commands in process, ``simulate`` as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from starter.journeys_cli import journeys_app
from store.journeys import JourneyLog
from store.repo import Store
from tests.conftest import ID_SECRET, REPO

REVOPS = str(Path(sys.executable).parent / "revops")
WHITEPAPER = REPO / "config" / "journeys" / "whitepaper-nurture.yaml"


@pytest.fixture
def environ(tmp_path: Path) -> dict[str, str]:
    return {
        "REVOPS_DATA_DIR": str(tmp_path),
        "REVOPS_ID_SECRET": ID_SECRET,
        "REVOPS_CONFIG_DIR": str(REPO / "config"),
        "REVOPS_JOURNEYS_DIR": str(REPO / "config" / "journeys"),
        "REVOPS_LOG_LEVEL": "WARNING",
    }


def revops(environ: dict[str, str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(journeys_app, list(args), env=environ)
    return result.exit_code, result.output


def test_validate_exits_2_naming_the_file_step_and_field(
    environ: dict[str, str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    body = yaml.safe_load(WHITEPAPER.read_text())
    body["steps"][1]["send"]["channel"] = "fax"
    bad.write_text(yaml.safe_dump(body), encoding="utf-8")
    code, output = revops(environ, "validate", str(bad))
    assert code == 2
    assert "steps[1] (d0-confirmation).send: channel must be one of" in output.replace("\n", "")
    code, output = revops(environ, "validate", str(REPO / "config" / "journeys"))
    assert (code, "journey file(s) valid" in output) == (0, True)


def test_validate_refuses_names_nothing_defines_and_warns_about_unknown_traits(
    environ: dict[str, str], tmp_path: Path
) -> None:
    body = yaml.safe_load(WHITEPAPER.read_text())
    newsletter = next(s for s in _steps(body["steps"]) if s["id"] == "d20-newsletter")
    newsletter["set"]["list_add"] = "Monthly Newsleter"
    body["exit"] = {"all": [{"stage": {"at_least": "SQL"}}, {"score": "fitt", "gte": 1}]}
    bad = tmp_path / "whitepaper-nurture.yaml"
    bad.write_text(yaml.safe_dump(body), encoding="utf-8")
    code, output = revops(environ, "validate", str(bad))
    text = " ".join(output.split())
    assert code == 2
    assert (
        "set.list_add: unknown list 'Monthly Newsleter' (did you mean 'Monthly Newsletter'?)"
        in text
    )
    assert "exit.all[1].score: unknown score 'fitt' (did you mean 'fit'?)" in text
    body = yaml.safe_load(WHITEPAPER.read_text())
    body["entry"] = {"trait": "industy", "eq": "Software"}
    typo = tmp_path / "typo.yaml"
    typo.write_text(yaml.safe_dump(body), encoding="utf-8")
    code, output = revops(environ, "validate", str(typo))
    assert code == 0 and "warning:" in output and "did you mean 'industry'?" in output
    twice = tmp_path / "twice.yaml"
    twice.write_text(WHITEPAPER.read_text() + "category: nurture\n", encoding="utf-8")
    code, output = revops(environ, "validate", str(twice))
    assert code == 2 and "duplicate key 'category'" in output


def _steps(node: Any) -> list[Any]:
    """Every step (a mapping with an ``id``) of a YAML tree, nested ones included."""
    if isinstance(node, list):
        return [step for item in node for step in _steps(item)]
    if not isinstance(node, dict):
        return []
    inner = [step for value in node.values() for step in _steps(value)]
    return [node, *inner] if "id" in node else inner


def test_deploy_show_list_and_rollback_keep_versions_and_diffs(
    environ: dict[str, str], tmp_path: Path
) -> None:
    edited = tmp_path / "whitepaper-nurture.yaml"
    code, output = revops(environ, "deploy", str(WHITEPAPER), "--comment", "first")
    assert code == 0 and "v1 deployed" in output
    body = yaml.safe_load(WHITEPAPER.read_text())
    body["steps"][1]["send"]["subject"] = "Here is your whitepaper"
    edited.write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
    code, output = revops(environ, "deploy", str(edited))
    assert code == 0 and "v2 deployed" in output
    assert "+    subject: Here is your whitepaper" in output
    code, output = revops(environ, "deploy", str(edited))
    assert "unchanged, v2 stays active" in output
    code, output = revops(environ, "show", "whitepaper-nurture")
    assert code == 0 and "v1" in output and "v2" in output and "Here is your whitepaper" in output
    code, output = revops(environ, "list")
    assert code == 0 and "whitepaper-nurture" in output and "trial-onboarding" in output
    code, output = revops(environ, "rollback", "whitepaper-nurture")
    assert (code, "rolled back to v1" in output) == (0, True)
    code, output = revops(environ, "rollback", "no-such-journey")
    assert code == 1


def test_deploy_refuses_a_priority_clash_and_stores_nothing(
    environ: dict[str, str], tmp_path: Path
) -> None:
    clash = tmp_path / "clash.yaml"
    body = yaml.safe_load(WHITEPAPER.read_text())
    body["name"], body["priority"] = "clash", 10  # demand-state-nurture has 10 in "lifecycle"
    clash.write_text(yaml.safe_dump(body), encoding="utf-8")
    code, output = revops(environ, "deploy", str(clash))
    assert code == 2 and "priorities in a group must differ" in output.replace("\n", " ")
    code, output = revops(environ, "show", "clash")
    assert code == 1


def test_ab_report_names_a_winner_only_when_significant(environ: dict[str, str]) -> None:
    store = Store.open(
        f"sqlite:///{Path(environ['REVOPS_DATA_DIR']) / 'revops.db'}", id_secret=ID_SECRET
    )
    log, now = JourneyLog(store), datetime.now(UTC)
    for n in range(400):
        variant = "A" if n % 2 else "B"
        log.assigned(f"e{n}", f"c{n}", "ab-journey", 1, "subject", variant, now)
        log.variant_sent(f"e{n}", "subject", now)
        if (variant == "A" and n % 10 < 4) or (variant == "B" and n % 10 == 0):
            log.converted(f"e{n}", f"c{n}", "ab-journey", 1, "goal", now)
    store.engine.dispose()
    code, output = revops(environ, "ab-report", "ab-journey", "--json")
    report = json.loads(output)["splits"][0]
    assert code == 0 and report["winner"] == "A"
    assert {v["variant"]: v["sent"] for v in report["variants"]} == {"A": 200, "B": 200}
    code, output = revops(environ, "ab-report", "ab-journey", "--min-sample", "500")
    assert code == 0 and "no winner yet" in output


def test_simulate_prints_the_whitepaper_timeline_in_seconds(environ: dict[str, str]) -> None:
    began = time.monotonic()
    result = subprocess.run(
        [REVOPS, "journeys", "simulate", "whitepaper-nurture", "--json"],
        env={**environ, "PATH": str(Path(sys.executable).parent)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    elapsed = time.monotonic() - began
    assert result.returncode == 0, result.stderr
    steps = [json.loads(line) for line in result.stdout.splitlines()]
    sends = [(s["day"], s["step"]) for s in steps if s["outcome"] == "sent"]
    assert [day for day, _ in sends] == [0, 2, 3, 5, 10, 20]
    assert all({"at", "step", "outcome"} <= set(s) for s in steps)
    assert elapsed < 30
