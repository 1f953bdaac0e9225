"""Staged rollout of a journey version with automatic rollback on its error rate.

Through the real product: the CLI deploys v1 and a v2 rolling out to half of new enrollments;
whitepaper downloads arrive through the gateway; the real contact and journey workflows pin
the version the rules activity chose; v2's first step posts to an endpoint that refuses, so
its sends keep failing, and the next enrollment rolls the journey back to v1 by itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from activities.rollout import AUTO_ROLLBACK, Rollouts
from definitions import Definitions
from journeys.definition import Rollout
from journeys.program import in_rollout
from revops.ids import contact_id_for
from revops.settings import Settings
from store.registry import Registry
from store.repo import Store
from tests.scenario_support import Stack, compressed_config, stack
from tests.support import eventually

pytestmark = pytest.mark.slow

JOURNEY = "whitepaper-nurture"


def _versions(config: Path, tmp_path: Path) -> tuple[Path, Path]:
    """v1: the shipped nurture; v2: rolling out to 50%, its first send to a closed port."""
    body: dict[str, Any] = yaml.safe_load((config / "journeys" / f"{JOURNEY}.yaml").read_text())
    first = tmp_path / "v1.yaml"
    first.write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
    broken = {
        "id": "d0-confirmation",
        "send": {"channel": "webhook", "url": "http://127.0.0.1:9/closed", "body": {"x": 1}},
    }
    steps = [broken if s.get("id") == "d0-confirmation" else s for s in body["steps"]]
    second = tmp_path / "v2.yaml"
    rollout = {"percent": 50, "max_error_rate": 0.5, "min_sends": 2}
    second.write_text(
        yaml.safe_dump({**body, "steps": steps, "rollout": rollout}, sort_keys=False), "utf-8"
    )
    return first, second


def _users(s: Stack, prefix: str, inside: bool, count: int) -> list[str]:
    secret = s.settings.id_secret.get_secret_value()
    found = []
    for n in range(400):
        user_id = s.user(f"{prefix}{n}")
        if in_rollout(contact_id_for(user_id, secret), JOURNEY, 2, 50) == inside:
            found.append(user_id)
        if len(found) == count:
            return found
    raise AssertionError("not enough contacts in the group")


def test_a_rollout_share_must_be_a_share() -> None:
    with pytest.raises(ValueError, match="percent"):
        Rollout.model_validate({"percent": 0})


async def test_a_version_rolls_out_to_its_share_and_rolls_back_when_its_sends_fail(
    env: WorkflowEnvironment, store: Store, settings: Settings, tmp_path: Path
) -> None:
    config = compressed_config(tmp_path)
    v1, v2 = _versions(config, tmp_path)
    async with stack(env.client, store, settings, config) as s:
        for path in (v1, v2):
            deployed = await s.cli("journeys", "deploy", str(path))
            assert deployed.returncode == 0, deployed.stderr
        first, second, late = _users(s, "u-new", True, 3)
        (outside,) = _users(s, "u-old", False, 1)
        for user_id in (first, second, outside):
            traits = {"first_name": user_id[:5], "email": f"{user_id}@acme.io"}
            await s.segment("identify", userId=user_id, traits=traits)
            await s.track(user_id, "Content Downloaded", type="whitepaper")
        await s.email(f"Your whitepaper is ready, {outside[:5]}")
        on_v2 = await s.progress(first, JOURNEY, lambda p: True)
        rollouts = Rollouts(store, Definitions(Registry(store), config, config / "journeys"))
        await eventually(
            lambda: _listed(rollouts.error_rate(JOURNEY, 2)), lambda r: r[1] >= 2, within=60
        )
        traits = {"first_name": "Lateo", "email": "late@acme.io"}
        await s.segment("identify", userId=late, traits=traits)
        await s.track(late, "Content Downloaded", type="whitepaper")
        await s.email("Your whitepaper is ready, Lateo")
        after = await s.progress(late, JOURNEY, lambda p: True)
        history = await s.cli("journeys", "history", JOURNEY, "--json")
        await s.keep_history(first, "journey_rollout_v2", journey=JOURNEY)
    assert on_v2.version == 2 and after.version == 1
    changes = json.loads(history.stdout)["changes"]
    assert (changes[0]["action"], changes[0]["author"]) == ("rollback", AUTO_ROLLBACK)
    assert (changes[0]["version"], changes[0]["previous_version"]) == (1, 2)


async def _listed(value: Any) -> Any:
    return value
