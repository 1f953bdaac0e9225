"""Recycle policies: where a contact sales is not working any more goes next, and when.

A contact is recycled for a cause: its score fell below the MQL gate after it qualified
(``score_drop``), sales rejected it (``rejected``, with the rep's reason), the deal was lost
(``closed_lost``, with its reason), or a journey's ``recycle`` step said so (any other cause
name, e.g. ``disengaged`` on the whitepaper nurture's Day 20). Each cause says after what
``delay`` the contact goes ``to`` a list (a static list such as Re-nurture, whose members a
re-nurture journey enrolls) or a journey (entered through the rules, like an ``enroll``
step); a reason may have its own rule. The contact workflow keeps the delay as a durable
timer. Recycling never changes the lifecycle stage (promotion only).

``config/recycle.yaml`` is a versioned definition (kind ``recycle``). Pure models: workflow
code evaluates them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, PlainSerializer, model_validator

from revops.durations import format_duration, to_timedelta
from revops.strict import StrictModel

__all__ = [
    "BUILT_IN_CAUSES",
    "CLOSED_LOST",
    "REJECTED",
    "SCORE_DROP",
    "RecycleCause",
    "RecyclePolicy",
    "RecycleRule",
    "RecycleTarget",
]

SCORE_DROP = "score_drop"
REJECTED = "rejected"
CLOSED_LOST = "closed_lost"
BUILT_IN_CAUSES: tuple[str, ...] = (SCORE_DROP, REJECTED, CLOSED_LOST)
"""Causes the contact workflow recycles for by itself; each must have a rule."""


def _delay(value: Any) -> Any:
    """``0``, ``0d`` or ``now`` mean at once; otherwise a duration (``90d``)."""
    if value in (0, "0", "now") or (isinstance(value, str) and value.strip() in ("0d", "0h")):
        return timedelta(0)
    return to_timedelta(value)


Delay = Annotated[
    timedelta, BeforeValidator(_delay), PlainSerializer(lambda d: format_duration(d) if d else 0)
]


class RecycleTarget(StrictModel):
    """Where a recycled contact goes: ``{list: Re-nurture}`` or ``{journey: NAME}``."""

    list_: str | None = Field(default=None, alias="list", min_length=1)
    journey: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> RecycleTarget:
        if (self.list_ is None) == (self.journey is None):
            raise ValueError("give exactly one of: list, journey")
        return self

    def describe(self) -> str:
        """``list Re-nurture`` or ``journey renurture-closed-lost``."""
        return f"list {self.list_}" if self.list_ is not None else f"journey {self.journey}"


class RecycleRule(StrictModel):
    """After ``delay``, the contact goes ``to`` a list or a journey."""

    delay: Delay = timedelta(0)
    to: RecycleTarget


class RecycleCause(RecycleRule):
    """A cause's rule, and rules of its own for some reasons (matched ignoring case)."""

    reasons: dict[str, RecycleRule] = Field(default_factory=dict)

    def for_reason(self, reason: str | None) -> RecycleRule:
        """The rule for ``reason`` when one is given for it, else the cause's own."""
        wanted = (reason or "").strip().casefold()
        for name, rule in self.reasons.items():
            if name.strip().casefold() == wanted:
                return rule
        return self


def _as_released() -> dict[str, RecycleCause]:
    """What release 1.0.0 did, for a configuration without ``recycle.yaml``: a lost deal to
    Re-nurture after 90 days, a score drop or a rejection at once."""
    renurture = RecycleTarget.model_validate({"list": "Re-nurture"})
    return {
        SCORE_DROP: RecycleCause(to=renurture),
        REJECTED: RecycleCause(to=renurture),
        CLOSED_LOST: RecycleCause(delay=timedelta(days=90), to=renurture),
    }


class RecyclePolicy(StrictModel):
    """Every cause a contact is recycled for, with its delay and destination (without any,
    what release 1.0.0 did)."""

    version: int = Field(default=1, ge=1)
    causes: dict[str, RecycleCause] = Field(default_factory=_as_released)

    @model_validator(mode="after")
    def _built_ins_covered(self) -> RecyclePolicy:
        missing = [cause for cause in BUILT_IN_CAUSES if cause not in self.causes]
        if missing:
            raise ValueError(
                f"causes: every recycle needs a destination; add {', '.join(missing)} "
                f"(built-in causes: {', '.join(BUILT_IN_CAUSES)})"
            )
        return self

    def rule(self, cause: str, reason: str | None = None) -> RecycleRule | None:
        """The rule for ``cause`` (and ``reason``), None for a cause the policy lacks."""
        found = self.causes.get(cause)
        return found.for_reason(reason) if found is not None else None

    def targets(self) -> list[tuple[str, RecycleTarget]]:
        """Every destination with the path that names it (``causes.rejected.reasons.X.to``)."""
        found: list[tuple[str, RecycleTarget]] = []
        for cause, rule in self.causes.items():
            found.append((f"causes.{cause}.to", rule.to))
            for reason, sub in rule.reasons.items():
                found.append((f"causes.{cause}.reasons.{reason}.to", sub.to))
        return found
