"""Reading definition files: YAML parsing and validation messages that name the field.

Kept free of model imports so every definition module (scoring, lists, routing, journeys) can
use it without import cycles. A key written twice in one mapping is refused (plain YAML keeps
the last one silently, so half of a definition would vanish without a word).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from revops.errors import ConfigError

__all__ = ["format_validation_error", "load_yaml", "read_mapping", "read_yaml", "require_mapping"]


class _DuplicateKey(yaml.YAMLError):
    """A mapping gives one key twice (``line`` is where the second one is)."""

    def __init__(self, key: object, line: int, first: int) -> None:
        message = f"line {line}: duplicate key {key!r} (first on line {first}); write it once"
        super().__init__(message)


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if isinstance(key, str | int | float | bool) and key in seen:
                raise _DuplicateKey(key, line, seen[key])
            if isinstance(key, str | int | float | bool):
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str, source: str) -> Any:
    """Parse YAML text (duplicate keys refused); a malformed one is a ConfigError naming
    ``source``."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506  # a SafeLoader subclass
    except _DuplicateKey as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc


def read_yaml(path: Path) -> Any:
    """Parse a YAML file; a missing or malformed file is a ConfigError naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found") from exc
    return load_yaml(text, str(path))


def read_mapping(path: Path, expected: str) -> Mapping[str, Any]:
    """``read_yaml`` of a file whose top level must be a mapping (``expected`` says of what)."""
    return require_mapping(read_yaml(path), str(path), expected)


def require_mapping(data: object, source: str, expected: str) -> Mapping[str, Any]:
    """``data`` when it is a mapping; else a ConfigError naming ``source`` and ``expected``."""
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{source}: expected a mapping with {expected}, got {type(data).__name__}"
        )
    return data


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
