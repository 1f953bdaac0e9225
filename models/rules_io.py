"""Input and result of the contact workflow's one rules call per step."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from models.decisions import Decision, DecisionRequest, Occurrence

__all__ = ["DecideStepInput", "DecideStepResult", "PinnedJourney"]


class DecideStepInput(BaseModel):
    """The contact's facts once, and every occurrence of this step, decided in order."""

    base: DecisionRequest
    occurrences: list[Occurrence] = Field(default_factory=list)


class PinnedJourney(BaseModel):
    """A journey definition at the version an enrollment pins (the whole YAML body)."""

    name: str
    version: int
    body: dict[str, Any]


class DecideStepResult(BaseModel):
    """One decision per occurrence, and the definitions of journeys to enroll in."""

    decisions: list[Decision] = Field(default_factory=list)
    journeys: dict[str, PinnedJourney] = Field(default_factory=dict)
