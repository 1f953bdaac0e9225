"""docker-compose.yml is well formed, consistent with the code, and only runs what its images ship.

No Docker engine runs here, so what each image provides (binaries, environment variables, HTTP
endpoints, files) is written down below from the images' own Dockerfiles and documentation,
with the source beside each entry; every command, entrypoint and healthcheck in the compose
file must use only that. The revops image's interface is read from the code itself (the
``revops`` command's real subcommands).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import typer.main
import yaml

from activities.crm_sync import crm_configured
from models.search_attributes import ALL_SEARCH_ATTRIBUTES
from revops.settings import Settings
from starter.cli import app
from starter.lazy import subcommands
from tests.conftest import REPO

COMPOSE: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]

BUSYBOX = {"sh", "nc", "grep", "echo", "sleep", "cut", "awk", "getent", "hostname", "wget"}
"""Applets of Alpine's busybox, in every alpine-based image below."""

IMAGES: dict[str, dict[str, Any]] = {
    # postgres (Docker official image), docs on Docker Hub "postgres": the server and client
    # programs, pg_isready among them, are on PATH; POSTGRES_USER/PASSWORD/DB create the
    # first user and database.
    "postgres": {
        "binaries": {"postgres", "psql", "pg_isready", "sh", "bash"},
        "env": {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"},
    },
    # temporalio/server 1.31: temporalio/temporal docker/targets/server.Dockerfile (alpine,
    # /usr/local/bin/temporal-server, CMD /etc/temporal/entrypoint.sh; no tctl, no temporal
    # CLI); environment from temporalio/docker-builds docker-readme/server.md and
    # docker/config_template_embedded.yaml (DYNAMIC_CONFIG_FILE_PATH, BIND_ON_IP).
    "temporalio/server": {
        "binaries": {"temporal-server"} | BUSYBOX,
        "env": {
            "DB",
            "DB_PORT",
            "POSTGRES_USER",
            "POSTGRES_PWD",
            "POSTGRES_SEEDS",
            "BIND_ON_IP",
            "DYNAMIC_CONFIG_FILE_PATH",
            "TEMPORAL_BROADCAST_ADDRESS",
            "NUM_HISTORY_SHARDS",
        },
        "ports": {7233},
    },
    # temporalio/admin-tools 1.31: temporalio/temporal docker/targets/admin-tools.Dockerfile
    # (alpine; temporal, temporal-sql-tool, temporal-cassandra-tool, temporal-elasticsearch-tool,
    # tdbg in /usr/local/bin; schema files in /etc/temporal/schema). temporal-sql-tool reads
    # SQL_* variables (temporalio/docker-builds docker/auto-setup.sh); the temporal CLI reads
    # TEMPORAL_ADDRESS (docs.temporal.io/cli, environment configuration).
    "temporalio/admin-tools": {
        "binaries": {
            "temporal",
            "temporal-sql-tool",
            "temporal-cassandra-tool",
            "temporal-elasticsearch-tool",
            "tdbg",
        }
        | BUSYBOX,
        "env": {
            "SQL_PLUGIN",
            "SQL_HOST",
            "SQL_PORT",
            "SQL_USER",
            "SQL_PASSWORD",
            "SQL_DATABASE",
            "TEMPORAL_ADDRESS",
        },
        "files": {
            "/etc/temporal/schema/postgresql/v12/temporal/versioned",
            "/etc/temporal/schema/postgresql/v12/visibility/versioned",
        },
        # `temporal` subcommands (docs.temporal.io/cli/operator) and temporal-sql-tool's
        # (samples-server compose/scripts/setup-postgres.sh).
        "subcommands": {
            "temporal": {
                "operator cluster health",
                "operator namespace describe",
                "operator namespace create",
                "operator search-attribute list",
                "operator search-attribute create",
            },
            "temporal-sql-tool": {"create", "setup-schema", "update-schema"},
        },
    },
    # temporalio/ui: temporalio/ui server/Dockerfile (FROM temporalio/base-server: alpine with
    # bash and curl, temporalio/docker-builds docker/base-images/base-server.Dockerfile);
    # GET /healthz (server/server/route/health.go) on port 8080 (docker/config-template.yaml);
    # TEMPORAL_ADDRESS, TEMPORAL_CORS_ORIGINS and TEMPORAL_CODEC_ENDPOINT from that template.
    "temporalio/ui": {
        "binaries": {"curl", "bash"} | BUSYBOX,
        "env": {
            "TEMPORAL_ADDRESS",
            "TEMPORAL_CORS_ORIGINS",
            "TEMPORAL_UI_PORT",
            "TEMPORAL_CODEC_ENDPOINT",
        },
        "http": {8080: {"/healthz"}},
    },
}


def _revops_interface() -> dict[str, Any]:
    """This repo's image: python:3.11-slim (no curl) with the revops console script."""
    commands = subcommands(typer.main.get_group(app))
    settings = Settings()
    return {
        "binaries": {"revops", "python", "sh"},
        "subcommands": {"revops": set(commands)},
        "http": {
            settings.gateway_port: {"/healthz", "/readyz"},
            8081: {"/healthz", "/readyz"},  # REVOPS_WORKER_HEALTH_PORT in this file
        },
    }


def _interface(service: dict[str, Any]) -> dict[str, Any]:
    if "build" in service:
        return _revops_interface()
    repository = service["image"].rsplit(":", 1)[0]
    return IMAGES[repository]


def _argv(value: str | list[str]) -> list[str]:
    return shlex.split(value) if isinstance(value, str) else list(value)


def _scripts(service: dict[str, Any]) -> list[Path]:
    """Host files a service runs (mounted scripts), read from its volumes."""
    scripts = []
    for volume in service.get("volumes", []):
        host, _, _ = volume.partition(":")
        if host.endswith(".sh"):
            scripts.append(REPO / host)
    return scripts


PREFIXES = {"until", "if", "while", "then", "do", "else", "!"}
STATEMENTS = {"set", "exit", "for", "done", "fi", "shift", "return", "true", "false"}
SHELL_WORDS = PREFIXES | STATEMENTS | {"[", "echo", "sleep"}
"""Keywords and builtins of the POSIX shell the scripts run in (no image binary needed)."""


def _script_commands(script: Path) -> list[list[str]]:
    """The commands a shell script runs: one argv each, keywords and assignments skipped."""
    text = script.read_text().replace("\\\n", " ")
    commands = []
    for raw in text.splitlines():
        line = re.sub(r"\$\(\([^)]*\)\)", "0", raw.split(" #")[0]).strip()  # arithmetic
        if not line or line.startswith("#"):
            continue
        pieces = [*re.findall(r"\$\(([^)]*)\)", line), re.sub(r"\$\([^)]*\)", "X", line)]
        for piece in pieces:
            for part in re.split(r"\|\||&&|\||;", piece):
                words = part.split()
                while words and words[0] in PREFIXES:
                    words = words[1:]
                if words and words[0] not in STATEMENTS and not re.match(r"^\w+=", words[0]):
                    commands.append(words)
    return commands


def test_production_services_are_all_there() -> None:
    assert {
        "postgresql",
        "temporal-schema",
        "temporal",
        "temporal-setup",
        "temporal-ui",
        "migrate",
        "worker",
        "handoff-worker",
        "gateway",
        "links",
    } <= set(SERVICES)
    assert SERVICES["links"]["command"] == ["revops", "gateway", "--role", "links"]


def test_no_deprecated_image_or_tool_is_used() -> None:
    text = (REPO / "docker-compose.yml").read_text()
    scripts = " ".join(p.read_text() for s in SERVICES.values() for p in _scripts(s))
    assert "auto-setup" not in text
    assert "tctl" not in text + scripts


def test_every_image_is_pinned_or_built_here() -> None:
    for name, service in SERVICES.items():
        image = service.get("image", "")
        assert "build" in service or (":" in image and not image.endswith(":latest")), name
        if "build" in service:
            assert (REPO / service["build"] / "Dockerfile").exists()


def test_every_command_and_healthcheck_exists_in_its_image() -> None:
    for name, service in SERVICES.items():
        interface = _interface(service)
        argvs = [_argv(service[key]) for key in ("entrypoint", "command") if key in service]
        test = service.get("healthcheck", {}).get("test")
        if test:
            assert test[0] in {"CMD", "CMD-SHELL"}, name
            argvs.append(test[1:] if test[0] == "CMD" else shlex.split(test[1]))
        argvs += [words for script in _scripts(service) for words in _script_commands(script)]
        for argv in argvs:
            binary = Path(argv[0]).name
            if argv[0].startswith("/scripts/"):
                continue
            assert binary in interface["binaries"] | SHELL_WORDS, (name, argv)
            _check_subcommand(name, interface, argv)
            _check_http(name, interface, argv)


def _check_subcommand(name: str, interface: dict[str, Any], argv: list[str]) -> None:
    known = interface.get("subcommands", {}).get(Path(argv[0]).name)
    if known is None:
        return
    words = [w for w in argv[1:] if not w.startswith("-") and not w.startswith('"$')]
    used = " ".join(words)
    assert any(used.startswith(k) or k in words for k in known), (name, argv)


def _check_http(name: str, interface: dict[str, Any], argv: list[str]) -> None:
    for word in argv:
        match = re.match(r"https?://(?:127\.0\.0\.1|localhost):(\d+)(/\S*)", word)
        if match:
            port, path = int(match[1]), match[2]
            assert path in interface.get("http", {}).get(port, set()), (name, word)


def test_environment_variables_are_ones_the_images_read() -> None:
    fields = {f"REVOPS_{field.upper()}" for field in Settings.model_fields}
    for name, service in SERVICES.items():
        environment = service.get("environment", {})
        if "build" in service:
            unknown = {key for key in environment if key.startswith("REVOPS_")} - fields
            assert not unknown, f"{name} sets settings that do not exist: {unknown}"
            continue
        documented = _interface(service)["env"] | {
            "REVOPS_TEMPORAL_NAMESPACE",  # read by our own setup script
            "REVOPS_SEARCH_ATTRIBUTES",
        }
        assert set(environment) <= documented, (name, set(environment) - documented)


def test_admin_tools_scripts_use_schema_files_the_image_ships() -> None:
    script = (REPO / "deploy/compose/temporal-schema.sh").read_text()
    shipped = IMAGES["temporalio/admin-tools"]["files"]
    used = set(re.findall(r'"(/etc/temporal/schema/[^"$]*)\$kind/versioned"', script))
    assert used, "the schema script names the versioned schema directories"
    for prefix in used:
        assert {f"{prefix}temporal/versioned", f"{prefix}visibility/versioned"} <= shipped
    for db in ("temporal", "temporal_visibility"):
        assert db in script
    assert all(step in script for step in ("create", "setup-schema -v 0.0", "update-schema"))


def test_temporal_server_waits_for_its_schema_and_loads_the_dynamic_config() -> None:
    temporal = SERVICES["temporal"]
    assert temporal["depends_on"]["temporal-schema"]["condition"] == (
        "service_completed_successfully"
    )
    assert temporal["environment"]["DB"] == "postgres12"
    assert temporal["environment"]["POSTGRES_SEEDS"] == "postgresql"
    mount = next(v for v in temporal["volumes"] if "dynamicconfig" in v)
    host, container, _ = mount.split(":")
    config = temporal["environment"]["DYNAMIC_CONFIG_FILE_PATH"]
    assert config.startswith(container)
    dynamic = yaml.safe_load((REPO / host / Path(config).name).read_text())
    assert dynamic["matching.useNewMatcher"][0]["value"] is True  # task priorities


def test_setup_registers_every_search_attribute_the_code_uses() -> None:
    setup = SERVICES["temporal-setup"]
    names = setup["environment"]["REVOPS_SEARCH_ATTRIBUTES"].split()
    assert sorted(names) == sorted(key.name for key in ALL_SEARCH_ATTRIBUTES)
    assert all(key.indexed_value_type.name == "KEYWORD" for key in ALL_SEARCH_ATTRIBUTES)
    assert "--type Keyword" in (REPO / "deploy/compose/temporal-setup.sh").read_text()


def test_workers_and_gateway_wait_for_the_one_shot_jobs() -> None:
    for name in ("worker", "handoff-worker", "gateway"):
        depends = SERVICES[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
    for name in ("worker", "handoff-worker"):
        depends = SERVICES[name]["depends_on"]
        assert depends["temporal-setup"]["condition"] == "service_completed_successfully"
    assert SERVICES["migrate"]["command"] == ["revops", "migrate"]


def test_one_shot_jobs_do_not_restart_after_success_and_services_do() -> None:
    for name in ("temporal-schema", "temporal-setup", "migrate"):
        assert SERVICES[name]["restart"].startswith("on-failure"), name
    for name in ("postgresql", "temporal", "temporal-ui", "worker", "handoff-worker", "gateway"):
        assert SERVICES[name]["restart"] == "unless-stopped", name


def test_every_long_running_service_has_a_healthcheck() -> None:
    for name in ("postgresql", "temporal", "temporal-ui", "worker", "handoff-worker", "gateway"):
        assert SERVICES[name]["healthcheck"]["test"], name
    for name in ("worker", "handoff-worker"):
        environment = SERVICES[name]["environment"]
        assert environment["REVOPS_WORKER_HEALTH_PORT"] == "8081"  # what `revops health` probes


def test_handoff_workers_serve_only_the_priority_queue() -> None:
    handoff = SERVICES["handoff-worker"]["environment"]
    worker = SERVICES["worker"]["environment"]
    assert handoff["REVOPS_TASK_QUEUE"] == handoff["REVOPS_PRIORITY_TASK_QUEUE"]
    assert handoff["REVOPS_PRIORITY_TASK_QUEUE"] == Settings().priority_task_queue
    assert worker["REVOPS_SERVE_PRIORITY_QUEUE"] == "false"
    assert "container_name" not in SERVICES["worker"]  # `--scale worker=N` needs that


def test_required_secrets_are_marked_required() -> None:
    text = (REPO / "docker-compose.yml").read_text()
    for variable in (
        "POSTGRES_PASSWORD",
        "REVOPS_ID_SECRET",
        "REVOPS_WRITE_KEYS",
        "REVOPS_WEBHOOK_SECRETS",
        "REVOPS_PUBLIC_URL",
        "REVOPS_MAIL_FROM",
        "REVOPS_SMTP_HOST",
    ):
        assert re.search(rf"\$\{{{variable}:\?[^}}]+\}}", text), variable
        assert not re.search(rf"\$\{{{variable}:-", text), variable  # never a silent default
    for variable in ("REVOPS_PUBLIC_URL", "REVOPS_MAIL_FROM"):
        assert variable.removeprefix("REVOPS_").lower() in Settings.model_fields


def test_published_ports_match_the_documented_ones() -> None:
    assert "7233:7233" in SERVICES["temporal"]["ports"]
    assert "8233:8080" in SERVICES["temporal-ui"]["ports"]
    assert "8000:8000" in SERVICES["gateway"]["ports"]


def test_dockerfile_copies_every_package() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    packages = [
        p.name for p in REPO.iterdir() if (p / "__init__.py").exists() and p.name != "tests"
    ]
    for package in packages:
        assert f"COPY {package} " in dockerfile, package
    assert Path(REPO / "worker.py").exists() and "COPY worker.py" in dockerfile


CRM_SETTINGS = {
    "REVOPS_SLACK_SIGNING_SECRET",
    "REVOPS_HUBSPOT_ACCESS_TOKEN",
    "REVOPS_HUBSPOT_CLIENT_SECRET",
    "REVOPS_SALESFORCE_INSTANCE_URL",
    "REVOPS_SALESFORCE_ACCESS_TOKEN",
    "REVOPS_SALESFORCE_USERNAME",
    "REVOPS_SALESFORCE_PASSWORD",
    "REVOPS_SALESFORCE_SECURITY_TOKEN",
}
"""The CRM loop's settings (docs/crm.md), optional in every revops container."""


def test_crm_settings_are_optional_and_left_unset_they_leave_the_crm_off() -> None:
    for name in ("worker", "handoff-worker", "gateway", "migrate"):
        environment = SERVICES[name]["environment"]
        for variable in CRM_SETTINGS:
            assert environment[variable] == f"${{{variable}:-}}", (name, variable)
    empty = Settings.model_validate(
        {variable.removeprefix("REVOPS_").lower(): "" for variable in CRM_SETTINGS}
    )
    assert not crm_configured(empty), "an empty token is no token"
    assert empty.slack_signing_secret is None and empty.hubspot_client_secret is None
    given = Settings.model_validate({"hubspot_access_token": "pat-na1-x"})
    assert crm_configured(given)
