"""Governance (seed 000): who may validate, deploy and roll back which kind of definition."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from revops.access import refusal
from store.repo import Store
from tests.conftest import ID_SECRET
from tests.test_definitions import CONFIG, JOURNEYS, _edited, _write, revops

OPERATORS = {"ana": ["admin"], "sam": ["journey-author"], "lee": ["analyst"]}
ROLES = {
    "journey-author": {"validate": ["*"], "deploy": ["journey"], "rollback": ["journey"]},
    "analyst": {"validate": ["scoring", "lists"]},
}


@pytest.mark.parametrize(
    ("who", "action", "kind", "allowed"),
    [
        ("ana", "deploy", "scoring", True),
        ("sam", "deploy", "journey", True),
        ("sam", "validate", "routing", True),
        ("sam", "deploy", "scoring", False),
        ("sam", "rollback", "routing", False),
        ("lee", "validate", "scoring", True),
        ("lee", "validate", "routing", False),
        ("kim", "validate", "scoring", False),
    ],
)
def test_roles_say_who_may_do_what_to_which_kind(
    who: str, action: str, kind: str, allowed: bool
) -> None:
    assert (refusal(OPERATORS, ROLES, who, action, kind) is None) is allowed  # type: ignore[arg-type]


def test_without_operators_nobody_is_checked() -> None:
    assert refusal({}, {}, "anyone", "deploy", "scoring") is None


async def test_a_deploy_without_the_role_is_refused_logged_and_changes_nothing(
    store: Store, env: WorkflowEnvironment, tmp_path: Path
) -> None:
    base = {
        "REVOPS_DATA_DIR": str(tmp_path),
        "REVOPS_DATABASE_URL": store.engine.url.render_as_string(hide_password=False),
        "REVOPS_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
        "REVOPS_ID_SECRET": ID_SECRET,
        "REVOPS_CONFIG_DIR": str(CONFIG),
        "REVOPS_JOURNEYS_DIR": str(JOURNEYS),
        "REVOPS_LOG_FORMAT": "json",
        "REVOPS_OPERATORS": json.dumps(OPERATORS),
        "REVOPS_ROLES": json.dumps(ROLES),
    }
    edited = _write(tmp_path, "scoring.yaml", _edited("scoring"))

    def as_(who: str) -> dict[str, str]:
        return {**base, "LOGNAME": who, "USER": who}

    checked = await revops(as_("sam"), "definitions", "validate", "scoring", str(edited))
    refused = await revops(as_("sam"), "definitions", "deploy", "scoring", str(edited))
    stranger = await revops(as_("kim"), "scoring", "deploy", str(edited))
    deployed = await revops(as_("ana"), "definitions", "deploy", "scoring", str(edited))
    no_rollback = await revops(as_("sam"), "definitions", "rollback", "scoring")
    history = await revops(as_("sam"), "definitions", "history", "scoring", "--json")
    assert checked.exit_code == 0, checked.output
    assert refused.exit_code == 4
    assert "refused: sam (roles: journey-author) may not deploy scoring" in refused.output
    assert '"definition_refused"' in refused.output and '"operator": "sam"' in refused.output
    assert stranger.exit_code == 4 and "kim is not an operator" in stranger.output
    assert deployed.exit_code == 0 and "scoring: v1 deployed" in deployed.output
    assert no_rollback.exit_code == 4
    changes = json.loads(history.stdout)["changes"]
    assert [(c["action"], c["author"]) for c in changes] == [("deploy", "ana")]
