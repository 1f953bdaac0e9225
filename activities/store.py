"""Activities that read definitions and record what contact workflows decide.

Each write is idempotent (unique keys in the store), because an activity may run more than once.
"""

from __future__ import annotations

from typing import Any

from temporalio import activity

from contacts.contract import ContactConfig
from definitions import Definitions
from models.changes import ContactChanges
from store.history import History
from store.repo import Store

__all__ = ["ContactActivities"]


class ContactActivities:
    """Store and configuration access for the contact workflow."""

    def __init__(
        self,
        store: Store,
        definitions: Definitions,
        config_overrides: dict[str, Any] | None = None,
        *,
        handoff_task_queue: str | None = None,
    ) -> None:
        self._store = store
        self._definitions = definitions
        self._overrides = dict(config_overrides or {})
        if handoff_task_queue is not None:
            self._overrides.setdefault("handoff_task_queue", handoff_task_queue)
        self._history = History(store)

    @activity.defn(name="load_contact_config")
    def load_contact_config(self) -> ContactConfig:
        """The current definitions bundle (checked on every load: the contact pins it until
        the next deploy signal), and where the sales handoff runs (worker settings)."""
        config = self._definitions.contact_bundle()
        return config.model_copy(update=self._overrides) if self._overrides else config

    @activity.defn(name="record_contact_changes")
    def record_contact_changes(self, changes: ContactChanges) -> None:
        """Record stages, scores, list stays and demand states (each idempotent)."""
        self._history.record(changes)
