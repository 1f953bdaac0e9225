"""Which event names make a hand-raiser, so the relay can deliver those contacts first.

Speed-to-lead is decided before the contact workflow runs: a demo request that waits in the
outbox behind a pass over thousands of ordinary events has already lost seconds. The names
come from the active definitions, as the contact workflow sees them: the scoring model's
``hand_raisers`` (they make an MQL at once) and the policies' ``hand_raiser.events``. They are
re-read when a deploy moves the registry's revision, checked at most every few seconds, so the
hot accept path costs a set lookup.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from revops.definitions import KINDS, parse_definition
from revops.errors import ConfigError
from revops.logging import get_logger
from revops.policies import Policies
from revops.scoring import ScoringModel
from revops.yamlio import read_yaml
from store.registry import Registry
from store.repo import Store

__all__ = ["HandRaiserEvents"]

log = get_logger(__name__)


class HandRaiserEvents:
    """The current hand-raiser event names (a frozenset), refreshed after deploys."""

    def __init__(self, store: Store, config_dir: Path, *, recheck_seconds: float = 5.0) -> None:
        self._registry = Registry(store)
        self._config_dir = config_dir
        self._recheck = recheck_seconds
        self._lock = threading.Lock()
        self._names: frozenset[str] = frozenset()
        self._revision = -1
        self._checked = float("-inf")

    def names(self) -> frozenset[str]:
        """The names; a stale set is kept (and logged) if the definitions cannot be read."""
        with self._lock:
            if time.monotonic() - self._checked < self._recheck:
                return self._names
            self._checked = time.monotonic()
            try:
                revision = self._registry.revision()
                if revision != self._revision:
                    self._names = self._read()
                    self._revision = revision
            except (ConfigError, OSError) as exc:
                log.warning("hand_raiser_names_unreadable", error=str(exc))
            except Exception as exc:  # the store is down: accept fails on its own, keep going
                log.warning("hand_raiser_names_unreadable", error=type(exc).__name__)
            return self._names

    def _read(self) -> frozenset[str]:
        scoring = self._definition("scoring")
        policies = self._definition("policies")
        assert isinstance(scoring, ScoringModel) and isinstance(policies, Policies)
        return frozenset(scoring.hand_raisers) | frozenset(policies.hand_raiser.events)

    def _definition(self, kind: str) -> Any:
        row = self._registry.active(kind, "default")
        if row is not None:
            return parse_definition(kind, row.body, f"deployed {kind} v{row.version}")
        path = self._config_dir / KINDS[kind].filename
        return parse_definition(kind, read_yaml(path), str(path))
