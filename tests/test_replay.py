"""Replay every committed workflow history against today's workflow code.

A change that would break running executions (non-determinism) fails here. When a workflow
changes on purpose, ship it behind ``workflow.patched`` and add a new history; never edit these.
Capture new ones with ``REVOPS_CAPTURE_HISTORIES=1 .venv/bin/python -m pytest tests``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from revops.temporal import DATA_CONVERTER
from worker import WORKFLOWS

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_histories_are_committed() -> None:
    assert len(HISTORIES) >= 3, "capture histories with REVOPS_CAPTURE_HISTORIES=1"


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays_without_nondeterminism(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text(encoding="utf-8"))
    replayer = Replayer(workflows=WORKFLOWS, data_converter=DATA_CONVERTER)
    # A history the replayer cannot finish (one cut off mid-task) must fail, not hang CI.
    result = await asyncio.wait_for(
        replayer.replay_workflow(history, raise_on_replay_failure=True), timeout=60
    )
    assert result.replay_failure is None
