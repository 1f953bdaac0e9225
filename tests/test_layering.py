"""The package layering of README "Layout": a package imports only from packages below it.

An upward import is how a room becomes a grab-bag (and how cycles start), so it fails here
before review. Imports are read from the source (every ``import`` and ``from ... import``,
including those inside functions and ``imports_passed_through`` blocks).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

LAYERS: list[tuple[str, ...]] = [
    ("revops",),
    ("lifecycle",),
    ("audience",),
    ("scoring",),
    ("models",),
    ("crm",),
    ("journeys",),
    ("handoff",),
    ("rules",),
    ("contacts",),
    ("accounts",),
    ("analysis",),
    ("store",),
    ("definitions",),
    ("activities",),
    ("workflows",),
    ("worker",),
    ("privacy",),
    ("gateway",),
    ("starter",),
]
RANK = {package: rank for rank, group in enumerate(LAYERS) for package in group}


def _modules() -> list[Path]:
    files = [REPO / "worker.py"]
    for package in RANK:
        folder = REPO / package
        if folder.is_dir():
            files.extend(sorted(folder.rglob("*.py")))
    return [f for f in files if "migrations" not in f.parts]


def _imported_packages(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & set(RANK)


def _package_of(path: Path) -> str:
    relative = path.relative_to(REPO)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def test_every_layer_exists() -> None:
    missing = [p for p in RANK if not (REPO / p).is_dir() and not (REPO / f"{p}.py").exists()]
    assert missing == []


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_module_imports_only_from_lower_layers(path: Path) -> None:
    own = _package_of(path)
    upward = sorted(p for p in _imported_packages(path) if p != own and RANK[p] >= RANK[own])
    assert upward == [], f"{path.relative_to(REPO)} ({own}) imports {upward}: move the code down"
