"""What one contact-workflow step changed, recorded in the store for reports and ``why``."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from audience.demand_states import DemandStateEntry
from lifecycle.stages import StageEntry

__all__ = [
    "ContactChanges",
    "DemandStateEntry",
    "ListChange",
    "ScoreSnapshot",
]


class ScoreSnapshot(BaseModel):
    """Scores at one moment, with the model version and the behaviours behind them."""

    at: datetime
    fit: float
    engagement: float
    engagement_recent: float
    model_version: str
    top_behaviours: list[str] = Field(default_factory=list)
    cause: str = ""


class ListChange(BaseModel):
    """A contact entered or left a list."""

    list_name: str
    at: datetime
    entered: bool
    reason: str = ""


class ContactChanges(BaseModel):
    """Everything a step changed; each part is written idempotently."""

    contact_id: str
    stage_entries: list[StageEntry] = Field(default_factory=list)
    score: ScoreSnapshot | None = None
    list_changes: list[ListChange] = Field(default_factory=list)
    demand_states: list[DemandStateEntry] = Field(default_factory=list)

    @property
    def empty(self) -> bool:
        """True when there is nothing to record."""
        return not (self.stage_entries or self.score or self.list_changes or self.demand_states)
