"""docker-compose.yml is well formed and consistent with the code (no Docker engine runs here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from models.search_attributes import ALL_SEARCH_ATTRIBUTES
from revops.settings import Settings
from tests.conftest import REPO

COMPOSE: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]


def test_production_services_are_all_there() -> None:
    assert {"postgresql", "temporal", "temporal-ui", "worker", "gateway"} <= set(SERVICES)


def test_temporal_runs_on_the_compose_postgresql() -> None:
    temporal = SERVICES["temporal"]
    assert temporal["environment"]["DB"].startswith("postgres")
    assert temporal["environment"]["POSTGRES_SEEDS"] == "postgresql"
    assert "postgresql" in temporal["depends_on"]


def test_every_image_is_pinned_or_built_here() -> None:
    for name, service in SERVICES.items():
        image = service.get("image", "")
        assert "build" in service or (":" in image and not image.endswith(":latest")), name
        if "build" in service:
            assert (REPO / service["build"] / "Dockerfile").exists()


def test_worker_and_gateway_settings_are_real_settings() -> None:
    fields = {f"REVOPS_{name.upper()}" for name in Settings.model_fields}
    for name in ("worker", "gateway"):
        environment = SERVICES[name]["environment"]
        unknown = {key for key in environment if key.startswith("REVOPS_")} - fields
        assert not unknown, f"{name} sets settings that do not exist: {unknown}"
    assert SERVICES["worker"]["environment"]["REVOPS_TEMPORAL_ADDRESS"] == "temporal:7233"


def test_published_ports_match_the_documented_ones() -> None:
    assert "7233:7233" in SERVICES["temporal"]["ports"]
    assert "8233:8080" in SERVICES["temporal-ui"]["ports"]
    assert "8000:8000" in SERVICES["gateway"]["ports"]


def test_setup_registers_every_search_attribute_the_code_uses() -> None:
    command = " ".join(SERVICES["temporal-setup"]["command"])
    for key in ALL_SEARCH_ATTRIBUTES:
        assert key.name in command


def test_dockerfile_copies_every_package() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    packages = [
        p.name for p in REPO.iterdir() if (p / "__init__.py").exists() and p.name != "tests"
    ]
    for package in packages:
        assert f"COPY {package} " in dockerfile, package
    assert Path(REPO / "worker.py").exists() and "COPY worker.py" in dockerfile
