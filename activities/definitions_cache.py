"""A value built from the active definitions, kept until they change.

Reading every definition (YAML files, registry rows) and validating it costs far more than
what activities do with it (one rules decision is about 0.2 ms; re-reading was about 7 ms),
and every contact step needs them. The cache key is the registry's revision (it moves on every
deploy and rollback) and the size and mtime of each definition file: one query and a few
``stat`` calls per use.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Generic, TypeVar

from store.registry import Registry

__all__ = ["DefinitionsCache"]

T = TypeVar("T")


class DefinitionsCache(Generic[T]):
    """Builds once per version of the definitions; safe to share between activity threads."""

    def __init__(self, registry: Registry, folders: Sequence[Path]) -> None:
        self._registry = registry
        self._folders = list(folders)
        self._lock = threading.Lock()
        self._cached: tuple[Hashable, T] | None = None

    def get(self, build: Callable[[], T]) -> T:
        """The cached value, or ``build()`` when the definitions changed since it was built."""
        key = self._key()
        with self._lock:
            if self._cached is not None and self._cached[0] == key:
                return self._cached[1]
        value = build()  # outside the lock: a slow build does not hold up other threads
        with self._lock:
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
