"""Reading definition files: YAML parsing and validation messages that name the field.

Kept free of model imports so every definition module (scoring, lists, routing, journeys) can
use it without import cycles.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from revops.errors import ConfigError

__all__ = ["format_validation_error", "read_yaml"]


def read_yaml(path: Path) -> Any:
    """Parse a YAML file; a missing or malformed file is a ConfigError naming it."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc


def format_validation_error(source: str, exc: ValidationError) -> str:
    """One line per problem, each naming the field path: ``file: a.b[2].c: message``.

    Union tags pydantic adds to locations (``cond:any``, ``function-after[...]``) are dropped so
    the path reads like the YAML the user wrote.
    """
    lines = []
    for err in exc.errors():
        path = ""
        for part in err["loc"]:
            if isinstance(part, str) and (":" in part or "[" in part):
                continue
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        lines.append(f"{source}: {path or '(top)'}: {err['msg']}")
    return "\n".join(lines)
