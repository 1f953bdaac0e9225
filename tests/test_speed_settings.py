"""Issue 20's speed settings: the workflow runner choice and eager activities on the dev server.

What they buy is measured by bench/new_contacts.py and bench/speed_to_lead.py
(docs/performance.md); these tests hold the wiring: the setting picks the runner the worker
gets, and every dev server we start grants eager activities.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.worker import UnsandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from revops.settings import Settings
from starter.devserver import EAGER_ACTIVITIES, DevServer
from worker import workflow_runner


def test_workflows_run_in_the_sandbox_unless_turned_off(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    assert isinstance(workflow_runner(Settings(database_url=url)), SandboxedWorkflowRunner)
    plain = Settings(database_url=url, workflow_sandbox=False)
    assert isinstance(workflow_runner(plain), UnsandboxedWorkflowRunner)


def test_the_workflow_sandbox_setting_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REVOPS_WORKFLOW_SANDBOX", "false")
    assert Settings().workflow_sandbox is False


def test_the_dev_server_grants_eager_activities(tmp_path: Path) -> None:
    command = DevServer(tmp_path / "t.db", port=7299, ui_port=None).command()
    flag = EAGER_ACTIVITIES[1]
    assert flag == "system.enableActivityEagerExecution=true"
    assert command[command.index(flag) - 1] == "--dynamic-config-value"
