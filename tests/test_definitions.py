"""The definitions service and ``revops definitions``: every kind, one life cycle, one cache.

The CLI runs in process (Typer's runner) against the real store, on SQLite and PostgreSQL;
deploys of the contact's own kinds signal running contacts through the real dev server.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner, Result

from activities.handoff import HandoffActivities
from contacts.contract import DecideStepResult
from definitions import (
    HANDOFF,
    ROUTING,
    SCORING,
    Definitions,
    deployable_body,
)
from handoff.routing import RoutingConfig
from revops.errors import ConfigError
from revops.settings import Settings
from starter.cli import app
from store.registry import Registry
from store.repo import Store
from tests.conftest import ID_SECRET, REPO
from tests.support import eventually, handle_for, running_worker, send, state_of, track

CONFIG = REPO / "config"
JOURNEYS = CONFIG / "journeys"


def _shipped(kind: str) -> dict[str, Any]:
    """A shipped definition as the registry keeps it (JSON: dates as ISO text)."""
    body: dict[str, Any] = json.loads(
        json.dumps(yaml.safe_load((CONFIG / f"{kind}.yaml").read_text()), default=str)
    )
    return body


def _edited(kind: str) -> dict[str, Any]:
    """The shipped definition with one harmless change a user would make."""
    body = _shipped(kind)
    if kind == "lifecycle":
        body["promotions"].append({"event": "Demo Attended", "stage": "Lead"})
    elif kind == "policies":
        body["frequency_cap"]["max_sends"] = 4
    elif kind == "handoff":
        body["max_reassignments"] = 3
    elif kind in ("lists", "demand_states", "recycle", "traits", "accounts"):
        body["version"] = 2
    elif kind == "attribution":
        body["default_model"] = "u_shaped"
    elif kind == "crm":
        body["score_change_threshold"] = 10
    else:
        body["version"] = "2026.9"
    return body


def _write(folder: Path, name: str, body: dict[str, Any]) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def environ(any_store: Store, env: WorkflowEnvironment, tmp_path: Path) -> dict[str, str]:
    return {
        "REVOPS_DATA_DIR": str(tmp_path),
        "REVOPS_DATABASE_URL": any_store.engine.url.render_as_string(hide_password=False),
        "REVOPS_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
        "REVOPS_ID_SECRET": ID_SECRET,
        "REVOPS_CONFIG_DIR": str(CONFIG),
        "REVOPS_JOURNEYS_DIR": str(JOURNEYS),
        "REVOPS_LOG_LEVEL": "WARNING",
    }


async def revops(environ: dict[str, str], *args: str) -> Result:
    """``revops ARGS`` in process (a thread: commands that signal contacts run their own loop)."""
    runner = CliRunner()
    return await asyncio.to_thread(lambda: runner.invoke(app, list(args), env=environ))


# ---- the service ------------------------------------------------------------------------------


def test_get_is_typed_deployed_first_and_the_shipped_file_otherwise(any_store: Store) -> None:
    registry = Registry(any_store)
    definitions = Definitions(registry, CONFIG, JOURNEYS, recheck_seconds=0)
    shipped = definitions.active(ROUTING)
    routing: RoutingConfig = definitions.get(ROUTING)
    assert routing.version == "2026.1"
    assert (shipped.source, shipped.version) == (str(CONFIG / "routing.yaml"), None)
    registry.deploy("routing", "default", _edited("routing"), author="ana")
    deployed = definitions.active(ROUTING)
    assert (deployed.model.version, deployed.source, deployed.version) == (
        "2026.9",
        "deployed routing v1",
        1,
    )


def test_handoff_settings_are_a_kind_the_handoff_activities_read(any_store: Store) -> None:
    registry = Registry(any_store)
    definitions = Definitions(registry, CONFIG, JOURNEYS, recheck_seconds=0)
    handoff = HandoffActivities(any_store, definitions, effects=None)  # type: ignore[arg-type]
    assert handoff.load_config().settings.max_reassignments == 2
    registry.deploy("handoff", "default", _edited("handoff"), author="ana")
    assert handoff.load_config().settings.max_reassignments == 3
    assert definitions.get(HANDOFF).max_reassignments == 3


def test_hot_paths_trail_a_deploy_by_the_recheck_but_the_contact_bundle_never(
    store: Store,
) -> None:
    registry = Registry(store)
    definitions = Definitions(registry, CONFIG, JOURNEYS, recheck_seconds=3600)
    before = definitions.contact_bundle()
    assert definitions.get(SCORING).version == "2026.2"
    registry.deploy("scoring", "default", _edited("scoring"), author="ana")
    assert definitions.get(SCORING).version == "2026.2"  # within the recheck: cached
    after = definitions.contact_bundle()  # a contact pins this: always checked
    assert after.version != before.version
    assert after.scoring is not None and after.scoring.version == "2026.9"
    assert definitions.get(SCORING).version == "2026.9"  # the fresh check serves everyone


def test_the_journey_catalog_validates_and_names_the_bad_file(store: Store, tmp_path: Path) -> None:
    library = tmp_path / "journeys"
    library.mkdir()
    body = yaml.safe_load((JOURNEYS / "webinar.yaml").read_text())
    _write(library, "webinar.yaml", body)
    broken = _write(library, "broken.yaml", {**body, "name": "broken", "steps": []})
    definitions = Definitions(Registry(store), CONFIG, library)
    with pytest.raises(ConfigError) as caught:
        definitions.journeys()
    assert str(broken) in str(caught.value) and "steps" in str(caught.value)


def test_a_result_recorded_by_1_0_0_reads_its_raw_bodies_as_definitions() -> None:
    body = json.loads(json.dumps(yaml.safe_load((JOURNEYS / "webinar.yaml").read_text())))
    broken = {**body, "name": "broken", "steps": []}
    recorded = {
        "decisions": [],
        "journeys": {
            "webinar": {"name": "webinar", "version": 3, "body": body},
            "broken": {"name": "broken", "version": 1, "body": broken},
        },
    }
    result = DecideStepResult.model_validate_json(json.dumps(recorded))
    assert list(result.journeys) == ["webinar"]  # 1.0.0 started no child on an invalid body
    definition = result.journeys["webinar"].definition
    assert (definition.name, definition.version) == ("webinar", 3)


# ---- the CLI ------------------------------------------------------------------------------------

KINDS_WITH_ONE_DEFINITION = [
    "lifecycle",
    "scoring",
    "lists",
    "demand_states",
    "routing",
    "policies",
    "handoff",
    "recycle",
    "traits",
    "attribution",
    "crm",
    "accounts",
]


@pytest.mark.parametrize("kind", KINDS_WITH_ONE_DEFINITION)
async def test_every_kind_validates_deploys_shows_its_history_and_rolls_back(
    environ: dict[str, str], tmp_path: Path, kind: str
) -> None:
    shipped = _write(tmp_path, f"{kind}-1.yaml", _shipped(kind))
    edited = _write(tmp_path, f"{kind}-2.yaml", _edited(kind))
    checked = await revops(environ, "definitions", "validate", kind, str(shipped), str(edited))
    assert (checked.exit_code, f"2 {kind} file(s) valid" in checked.stdout) == (0, True)
    first = await revops(environ, "definitions", "deploy", kind, str(shipped), "--comment", "go")
    second = await revops(environ, "definitions", "deploy", kind, str(edited))
    again = await revops(environ, "definitions", "deploy", kind, str(edited))
    assert first.exit_code == 0 and f"{kind}: v1 deployed" in first.stdout, first.output
    assert second.exit_code == 0 and f"{kind}: v2 deployed" in second.stdout, second.output
    assert f"{kind}: unchanged, v2 stays active" in again.stdout
    shown = json.loads((await revops(environ, "definitions", "show", kind, "--json")).stdout)
    assert (shown["version"], shown["source"]) == (2, f"deployed {kind} v2")
    assert shown["body"] == _edited(kind)
    rolled = await revops(environ, "definitions", "rollback", kind)
    assert rolled.exit_code == 0 and f"{kind}: rolled back to v1" in rolled.stdout
    history = await revops(environ, "definitions", "history", kind, "--json")
    changes = json.loads(history.stdout)["changes"]
    assert [(c["action"], c["version"], c["previous_version"]) for c in changes] == [
        ("rollback", 1, 2),
        ("deploy", 2, 1),
        ("deploy", 1, None),
    ]
    assert all(c["kind"] == kind and c["author"] for c in changes)
    assert all(c["at"].endswith(("Z", "+00:00")) for c in changes)  # times carry their offset
    shown = json.loads((await revops(environ, "definitions", "show", kind, "--json")).stdout)
    assert (shown["version"], shown["body"]) == (1, _shipped(kind))
    old = await revops(environ, "definitions", "show", kind, "--version", "2")
    assert old.exit_code == 0 and f"deployed {kind} v2" in old.stdout
    first_again = await revops(environ, "definitions", "rollback", kind)
    assert first_again.exit_code == 2 and "first version" in first_again.output


async def test_list_shows_every_kind_and_journey_with_its_source(
    environ: dict[str, str], tmp_path: Path
) -> None:
    routing = _write(tmp_path, "routing.yaml", _edited("routing"))
    assert (await revops(environ, "definitions", "deploy", "routing", str(routing))).exit_code == 0
    listed = await revops(environ, "definitions", "list", "--json")
    rows = {(r["kind"], r["name"]): r for r in json.loads(listed.stdout)["definitions"]}
    assert rows["routing", "default"]["version"] == 1
    assert rows["handoff", "default"]["source"] == str(CONFIG / "handoff.yaml")
    assert rows["journey", "webinar"]["source"] == str(JOURNEYS / "webinar.yaml")
    assert {kind for kind, _ in rows} == {*KINDS_WITH_ONE_DEFINITION, "journey"}
    assert rows["recycle", "default"]["source"] == str(CONFIG / "recycle.yaml")


async def test_bad_input_exits_2_with_a_reason_and_stores_nothing(
    environ: dict[str, str], any_store: Store, tmp_path: Path
) -> None:
    routing = _shipped("routing")
    routing["teams"][0]["manager"] = "nobody"
    bad_routing = _write(tmp_path, "routing.yaml", routing)
    lists = _shipped("lists")
    lists["lists"].append({"name": "Buying", "when": {"demand_state": {"at_least": "buying"}}})
    unknown_state = _write(tmp_path, "lists.yaml", lists)
    without_smb = _shipped("lists")
    without_smb["lists"] = [d for d in without_smb["lists"] if d["name"] != "SMB"]
    missing_list = _write(tmp_path, "lists-no-smb.yaml", without_smb)
    policies = _shipped("policies")
    policies["priorities"] = {}
    no_defaults = _write(tmp_path, "policies.yaml", policies)
    cases = {
        "unknown definition kind 'colours'": ("deploy", "colours", str(bad_routing)),
        "teams[0].manager: unknown rep 'nobody'": ("deploy", "routing", str(bad_routing)),
        "unknown demand state 'buying'": ("deploy", "lists", str(unknown_state)),
        "the model uses list 'SMB'": ("deploy", "lists", str(missing_list)),
        "priority: missing": ("deploy", "policies", str(no_defaults)),
        "file not found": ("deploy", "handoff", str(tmp_path / "absent.yaml")),
        "routing has one definition": ("rollback", "routing", "default-ish"),
        "journey: give the journey's name": ("history", "journey", ""),
    }
    for reason, args in cases.items():
        result = await revops(environ, "definitions", *args)
        assert result.exit_code == 2, (reason, result.output)
        assert reason in result.output.replace("\n", " "), (reason, result.output)
    assert Registry(any_store).changes() == []
    never = await revops(environ, "definitions", "rollback", "routing")
    absent = await revops(environ, "definitions", "show", "scoring", "--version", "7")
    assert (never.exit_code, absent.exit_code) == (1, 1)
    assert "never been deployed" in never.output and "no version 7" in absent.output


def _journey(name: str, priority: int) -> dict[str, Any]:
    return {
        "name": name,
        "trigger": {"event": f"{name} Requested"},
        "priority": priority,
        "exclusivity_group": "lifecycle",
        "steps": [{"id": "wait", "wait": "1d"}],
    }


async def test_a_rollback_that_would_clash_with_the_active_journeys_is_refused(
    environ: dict[str, str], any_store: Store, tmp_path: Path
) -> None:
    for name, priority in (("clash", 20), ("clash", 25), ("other", 20)):
        path = _write(tmp_path, f"{name}-{priority}.yaml", _journey(name, priority))
        deployed = await revops(environ, "journeys", "deploy", str(path))
        assert deployed.exit_code == 0, deployed.output
    refused = await revops(environ, "definitions", "rollback", "journey", "clash")
    assert refused.exit_code == 2
    assert "priorities in a group must differ" in refused.output.replace("\n", " ")
    active = Registry(any_store).active("journey", "clash")
    assert active is not None and active.version == 2
    history = await revops(environ, "journeys", "history", "clash", "--json")
    assert [c["action"] for c in json.loads(history.stdout)["changes"]] == ["deploy", "deploy"]
    shown = await revops(environ, "definitions", "show", "journey", "clash", "--json")
    assert json.loads(shown.stdout)["body"]["priority"] == 25
    catalog = Definitions(Registry(any_store), CONFIG, JOURNEYS).journeys()
    assert (catalog["clash"].version, catalog["webinar"].version) == (2, 2)
    listed = await revops(environ, "journeys", "list")
    assert "clash" in listed.stdout and "v2" in listed.stdout


async def test_journey_files_deploy_under_their_name_without_their_version_key(
    environ: dict[str, str], any_store: Store
) -> None:
    result = await revops(
        environ, "definitions", "deploy", "journey", str(JOURNEYS / "webinar.yaml")
    )
    assert result.exit_code == 0 and "journey webinar: v1 deployed" in result.stdout
    row = Registry(any_store).active("journey", "webinar")
    raw = yaml.safe_load((JOURNEYS / "webinar.yaml").read_text())
    assert row is not None and row.body == deployable_body(raw) and "version" not in row.body


async def test_deploying_demand_states_re_evaluates_running_contacts(
    env: WorkflowEnvironment, settings: Settings, tmp_path: Path
) -> None:
    store = Store.open(settings.sqlalchemy_url, id_secret=ID_SECRET)
    environ = {
        "REVOPS_DATA_DIR": str(settings.data_dir),
        "REVOPS_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
        "REVOPS_ID_SECRET": ID_SECRET,
        "REVOPS_CONFIG_DIR": str(CONFIG),
        "REVOPS_LOG_LEVEL": "WARNING",
    }
    states = _shipped("demand_states")
    hungry = {"name": "pricing-hungry", "when": {"event": "Pricing Page Viewed", "within": "60d"}}
    states["states"].append(hungry)
    candidate = _write(tmp_path, "demand_states.yaml", states)
    async with running_worker(env.client, store, settings) as relay:
        await send(store, relay, track("u-states", "Pricing Page Viewed"))
        handle = handle_for(env.client, store, "u-states")
        await eventually(lambda: state_of(handle), lambda s: s.demand_state == "solution-aware")
        deployed = await revops(environ, "definitions", "deploy", "demand_states", str(candidate))
        after = await eventually(
            lambda: state_of(handle), lambda s: s.demand_state == "pricing-hungry"
        )
    assert deployed.exit_code == 0, deployed.output
    assert "1 running contact(s) re-evaluating" in deployed.stdout
    assert after.demand_state == "pricing-hungry"
