"""Which event names make a hand-raiser, so the relay can deliver those contacts first.

Speed-to-lead is decided before the contact workflow runs: a demo request that waits in the
outbox behind a pass over thousands of ordinary events has already lost seconds. The names
come from the active definitions, as the contact workflow sees them: the scoring model's
``hand_raisers``, the one place hand-raisers are named (they make an MQL at once, and the
rules route them and move nurture aside). They are re-read when a deploy moves the registry's
revision or a file changes, checked at most every few seconds (the definitions service's
cache), so the hot accept path costs a set lookup.
"""

from __future__ import annotations

from pathlib import Path

from definitions import SCORING, Definitions
from revops.errors import ConfigError
from revops.logging import get_logger
from store.registry import Registry
from store.repo import Store

__all__ = ["HandRaiserEvents"]

log = get_logger(__name__)


class HandRaiserEvents:
    """The current hand-raiser event names (a frozenset), refreshed after deploys."""

    def __init__(self, store: Store, config_dir: Path, *, recheck_seconds: float = 5.0) -> None:
        definitions = Definitions(Registry(store), config_dir, recheck_seconds=recheck_seconds)
        self._definitions = definitions
        self._current = definitions.memo(self._read)
        self._names: frozenset[str] = frozenset()

    def names(self) -> frozenset[str]:
        """The names; the last good set is kept (and logged) if the definitions cannot be read."""
        try:
            self._names = self._current.get()
        except ConfigError as exc:
            log.warning("hand_raiser_names_unreadable", error=str(exc))
        except Exception as exc:  # the store is down: accept fails on its own, keep going
            log.warning("hand_raiser_names_unreadable", error=type(exc).__name__)
        return self._names

    def _read(self) -> frozenset[str]:
        return frozenset(self._definitions.get(SCORING).hand_raisers)
