"""Loading the definitions a contact workflow evaluates (config/*.yaml) into one pinned bundle.

The bundle's ``version`` is a hash of its content: a workflow compares it with the version the
relay announces and reloads (through an activity) only when definitions really changed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from models.contact import ContactConfig, LifecycleRules
from revops.errors import ConfigError

__all__ = ["format_validation_error", "load_contact_config", "read_yaml"]


def read_yaml(path: Path) -> Any:
    """Parse a YAML file; a missing or malformed file is a ConfigError naming it."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc


def format_validation_error(source: str, exc: ValidationError) -> str:
    """One line per problem, each naming the field path: ``file: a.b[2].c: message``."""
    lines = []
    for err in exc.errors():
        path = ""
        for part in err["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        lines.append(f"{source}: {path or '(top)'}: {err['msg']}")
    return "\n".join(lines)


def load_contact_config(config_dir: Path, **overrides: Any) -> ContactConfig:
    """Build the bundle from ``config_dir``; raises ConfigError on a bad file.

    ``overrides`` set bundle fields directly (tests use a short history limit).
    """
    path = config_dir / "lifecycle.yaml"
    raw = read_yaml(path) or {}
    try:
        lifecycle = LifecycleRules.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(str(path), exc)) from exc
    body = {"lifecycle": lifecycle.model_dump(mode="json")}
    version = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]
    return ContactConfig(version=version, lifecycle=lifecycle, **overrides)
