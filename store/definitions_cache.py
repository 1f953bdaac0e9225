"""A value built from the active definitions, kept until they change.

Reading every definition (YAML files, registry rows) and validating it costs far more than
what activities do with it (one rules decision is about 0.2 ms; re-reading was about 7 ms),
and every contact step needs them. The cache key is the registry's revision (it moves on every
deploy and rollback) and the size and mtime of each definition file, checked at most once per
``recheck_seconds`` (one query and a few ``stat`` calls): a deploy is seen within a second.
Callers whose result is pinned (the contact's definitions bundle) check every time.
One thread builds while the others wait for its result, so a cold start compiles once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import BaseModel

from revops.definitions import KINDS, parse_definition
from revops.yamlio import read_yaml
from store.registry import Registry

__all__ = ["DefinitionsCache", "active_definition"]

T = TypeVar("T")


def active_definition(registry: Registry, kind: str, config_dir: Path) -> BaseModel:
    """The deployed ``kind/default``, else the file shipped in ``config_dir``, validated.

    Raises ``ConfigError`` naming the source when it does not validate.
    """
    row = registry.active(kind, "default")
    if row is not None:
        return parse_definition(kind, row.body, f"deployed {kind} v{row.version}")
    path = config_dir / KINDS[kind].filename
    return parse_definition(kind, read_yaml(path), str(path))


class DefinitionsCache(Generic[T]):
    """Builds once per version of the definitions; safe to share between activity threads."""

    def __init__(
        self, registry: Registry, folders: Sequence[Path], *, recheck_seconds: float = 1.0
    ) -> None:
        self._registry = registry
        self._folders = list(folders)
        self._recheck = recheck_seconds
        self._lock = threading.Lock()
        self._cached: tuple[Hashable, T] | None = None
        self._checked_at = float("-inf")

    def get(self, build: Callable[[], T]) -> T:
        """The cached value, or ``build()`` when the definitions changed since it was built."""
        with self._lock:
            cached = self._cached
            if cached is not None and time.monotonic() - self._checked_at < self._recheck:
                return cached[1]
            key = self._key()
            self._checked_at = time.monotonic()
            if cached is not None and cached[0] == key:
                return cached[1]
            value = build()  # under the lock: concurrent callers wait for this one build
            self._cached = (key, value)
            return value

    def _key(self) -> Hashable:
        stamps = []
        for folder in self._folders:
            for path in sorted(folder.glob("*.yaml")):
                with suppress(FileNotFoundError):
                    stat = path.stat()
                    stamps.append((str(path), stat.st_mtime_ns, stat.st_size))
        return self._registry.revision(), tuple(stamps)
