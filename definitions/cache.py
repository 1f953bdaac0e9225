"""Values built from the active definitions, kept until the definitions change.

Reading every definition (YAML files, registry rows) and validating it costs far more than
what activities do with it (one rules decision is about 0.2 ms; re-reading was about 7 ms),
and every contact step needs them. One key says whether anything changed: the registry's
revision (it moves on every deploy and rollback) and the size and mtime of each definition
file. ``Stamps`` computes it at most once per ``recheck_seconds`` (one query and a few
``stat`` calls), so a deploy is seen within a second; a caller whose result is pinned (the
contact's definitions bundle) asks for a fresh key every time, and a fresh key serves the
others too. Each ``Memo`` rebuilds its value when the key moved; one thread builds while the
others wait for its result, so a cold start compiles once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Generic, TypeVar

from store.registry import Registry

__all__ = ["Memo", "Stamps"]

T = TypeVar("T")


class Stamps:
    """The key of the current definitions: registry revision and definition file stamps."""

    def __init__(self, registry: Registry, folders: Sequence[Path], recheck_seconds: float) -> None:
        self._registry = registry
        self._folders = list(folders)
        self._recheck = recheck_seconds
        self._lock = threading.Lock()
        self._key: Hashable | None = None
        self._checked_at = float("-inf")

    def current(self, *, fresh: bool = False) -> Hashable:
        """The key; a fresh one when ``fresh`` or when the last is older than the recheck."""
        with self._lock:
            recent = time.monotonic() - self._checked_at < self._recheck
            if self._key is None or fresh or not recent:
                self._key = self._registry.revision(), self._files()
                self._checked_at = time.monotonic()
            return self._key

    def _files(self) -> tuple[tuple[str, int, int], ...]:
        stamps = []
        for folder in self._folders:
            for path in sorted(folder.glob("*.yaml")):
                with suppress(FileNotFoundError):
                    stat = path.stat()
                    stamps.append((str(path), stat.st_mtime_ns, stat.st_size))
        return tuple(stamps)


class Memo(Generic[T]):
    """One value built from the definitions; safe to share between activity threads."""

    def __init__(self, stamps: Stamps, build: Callable[[], T], *, fresh: bool = False) -> None:
        self._stamps = stamps
        self._build = build
        self._fresh = fresh
        self._lock = threading.Lock()
        self._cached: tuple[Hashable, T] | None = None

    def get(self) -> T:
        """The cached value, or a new one when the definitions changed since it was built."""
        with self._lock:
            key = self._stamps.current(fresh=self._fresh)
            if self._cached is not None and self._cached[0] == key:
                return self._cached[1]
            value = self._build()  # under the lock: concurrent callers wait for this one build
            self._cached = (key, value)
            return value
