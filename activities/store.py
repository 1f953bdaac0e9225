"""Activities that read definitions and record what contact workflows decide.

Each write is idempotent (unique keys in the store), because an activity may run more than once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from temporalio import activity

from models.activities import RecordStagesInput
from models.changes import ContactChanges
from models.contact import ContactConfig
from revops.config import load_contact_config
from store.definitions_cache import DefinitionsCache
from store.history import History
from store.registry import Registry
from store.repo import Store

__all__ = ["ContactActivities"]


class ContactActivities:
    """Store and configuration access for the contact workflow."""

    def __init__(
        self,
        store: Store,
        config_dir: Path,
        config_overrides: dict[str, Any] | None = None,
        *,
        handoff_task_queue: str | None = None,
    ) -> None:
        self._store = store
        self._config_dir = config_dir
        self._overrides = config_overrides or {}
        self._handoff_task_queue = handoff_task_queue
        self._history = History(store)
        self._registry = Registry(store)
        # Checked on every load (no grace second): a contact pins what it loads until the next
        # deploy signal, so a stale answer here would outlive the deploy, not just trail it.
        self._cache: DefinitionsCache[ContactConfig] = DefinitionsCache(
            self._registry, [config_dir], recheck_seconds=0
        )

    @activity.defn(name="load_contact_config")
    def load_contact_config(self) -> ContactConfig:
        """The current definitions bundle, and where the sales handoff runs (worker settings)."""
        return self._cache.get(self._build_config)

    def _build_config(self) -> ContactConfig:
        config = load_contact_config(self._config_dir, self._active_body, **self._overrides)
        if self._handoff_task_queue is None or "handoff_task_queue" in self._overrides:
            return config
        return config.model_copy(update={"handoff_task_queue": self._handoff_task_queue})

    def _active_body(self, kind: str) -> dict[str, Any] | None:
        row = self._registry.active(kind, "default")
        return row.body if row else None

    @activity.defn(name="record_contact_changes")
    def record_contact_changes(self, changes: ContactChanges) -> None:
        """Record stages, scores, list stays and demand states (each idempotent)."""
        self._history.record(changes)

    @activity.defn(name="record_stage_entries")
    def record_stage_entries(self, data: RecordStagesInput) -> int:
        """Record stage entries; entries already stored are skipped."""
        return self._store.record_stage_entries(data.contact_id, data.entries)
