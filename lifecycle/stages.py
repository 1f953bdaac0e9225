"""lifecycle.stages."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

__all__: list[str] = []

OPPORTUNITY_OPEN_TRAIT = "opportunity_open"
"""The trait the contact keeps true while an opportunity is open (entered Opportunity, not
yet won or lost): the rules hold automated marketing back until it closes."""


class Stage(StrEnum):
    """Lifecycle stages in promotion order."""

    SUBSCRIBER = "Subscriber"
    LEAD = "Lead"
    MQL = "MQL"
    SAL = "SAL"
    SQL = "SQL"
    OPPORTUNITY = "Opportunity"
    CUSTOMER = "Customer"
    EVANGELIST = "Evangelist"

    @property
    def rank(self) -> int:
        """Position in the funnel: a promotion goes to a higher rank only."""
        return STAGES.index(self)


STAGES: tuple[Stage, ...] = tuple(Stage)


class StageEntry(BaseModel):
    """One stage entered: when, why, and whether it was a manual override."""

    stage: Stage
    at: datetime
    reason: str
    override: bool = False
    message_id: str | None = None


class StagePromotion(BaseModel):
    """A rule: this event (optionally of a sales ``kind``) promotes to ``stage``."""

    event: str
    stage: Stage


class LifecycleRules(BaseModel):
    """Which behaviours move a contact up the funnel (config/lifecycle.yaml)."""

    initial_stage: Stage = Stage.SUBSCRIBER
    promotions: list[StagePromotion] = Field(default_factory=list)
    closed_lost_event: str = "Closed Lost"
    recycle_after_days: float = Field(default=90, gt=0)

    def stage_for(self, event_name: str) -> Stage | None:
        """The stage an event promotes to, if any (the highest rule wins)."""
        stages = [p.stage for p in self.promotions if p.event == event_name]
        return max(stages, key=lambda s: s.rank) if stages else None


__all__ = [
    "OPPORTUNITY_OPEN_TRAIT",
    "STAGES",
    "LifecycleRules",
    "Stage",
    "StageEntry",
    "StagePromotion",
]
