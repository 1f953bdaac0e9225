"""Multi-touch attribution: the versioned definition (``config/attribution.yaml``) and the view.

The definition says what a touchpoint is, which channel each belongs to, and how each model
splits an opportunity's amount over its touchpoints. The store computes the credits in SQL
(``store/attribution.py``); this module owns the rules they follow:

- An opportunity's **path** is every touchpoint of its contacts (all of them: an opportunity
  with three contacts is rolled up to their account) from ``lookback`` before it was created
  until it was created; a model with a ``closed_won`` weight extends the path to the
  closed-won moment.
- **Anchors** are positions on the path: ``first`` (the earliest touch), ``lead`` (the primary
  contact's last touch at or before it became a Lead; the first touch when there is none),
  ``opportunity`` (the last touch at or before the opportunity was created) and ``closed_won``
  (the last touch of the path; the opportunity touch until it is won).
- A position model gives each anchor its weight (anchors that coincide add up) and spreads
  ``spread`` equally over the touches that are no anchor. When every touch is an anchor, the
  anchors' weights are scaled to sum to one. So first touch is ``{first: 1}``, last touch
  ``{opportunity: 1}``, linear ``{spread: 1}``, U-shaped ``{first: .4, lead: .4, spread: .2}``,
  W-shaped ``{first: .3, lead: .3, opportunity: .3, spread: .1}``.
- A time-decay model weighs a touch ``0.5 ** (age / half_life)``, its age taken at the
  opportunity's creation, scaled so the weights sum to one.
- An opportunity with no touchpoint gives its whole amount to ``(no touchpoint)``.

So the credits of one opportunity always sum to its amount.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints, ValidationError, model_validator

from audience.conditions import config_error
from revops.durations import Duration
from revops.strict import StrictModel

__all__ = [
    "NO_TOUCHPOINT",
    "AttributionDefinition",
    "AttributionLine",
    "AttributionReport",
    "ModelName",
    "OpportunityCredit",
    "PositionModel",
    "TimeDecayModel",
    "TouchCredit",
    "TouchpointRules",
    "parse_attribution",
]

NO_TOUCHPOINT = "(no touchpoint)"
"""Where an opportunity's amount goes when none of its contacts had a touchpoint."""

ModelName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,39}$")]
Weight = Annotated[float, Field(ge=0, le=1)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]


class PositionModel(StrictModel):
    """Weights of the anchors and of the touches in between; they sum to 1."""

    first: Weight = 0.0
    lead: Weight = 0.0
    opportunity: Weight = 0.0
    closed_won: Weight = 0.0
    spread: Weight = 0.0

    @model_validator(mode="after")
    def _sums_to_one(self) -> PositionModel:
        total = self.first + self.lead + self.opportunity + self.closed_won + self.spread
        if abs(total - 1) > 1e-9:
            raise ValueError(f"weights must sum to 1, these sum to {total:g}")
        return self

    def anchors(self) -> dict[str, float]:
        """The anchors this model weighs (weight above zero)."""
        weights = {
            "first": self.first,
            "lead": self.lead,
            "opportunity": self.opportunity,
            "closed_won": self.closed_won,
        }
        return {name: weight for name, weight in weights.items() if weight > 0}


class TimeDecayModel(StrictModel):
    """Recent touches weigh more: a touch ``half_life`` older counts half as much."""

    half_life: Duration


class TouchpointRules(StrictModel):
    """What counts as a touchpoint besides UTM-tagged page views and events."""

    events: dict[Name, Name] = Field(
        default_factory=lambda: {"Email Clicked": "Email", "Webinar Attended": "Webinar"},
        description="event name -> channel: these count even without UTM tags",
    )
    sales_touches: bool = Field(
        default=False, description="count sales activity (sales_events) as touchpoints"
    )
    sales_events: tuple[Name, ...] = ("Sales Email Sent", "Sales Call Logged", "Meeting Booked")
    sales_channel: Name = "Sales"


class AttributionDefinition(StrictModel):
    """``config/attribution.yaml``: models, touchpoints, channels, report segments."""

    models: dict[ModelName, PositionModel | TimeDecayModel] = Field(min_length=1)
    default_model: ModelName
    lookback: Duration = timedelta(days=365)
    touchpoints: TouchpointRules = Field(default_factory=TouchpointRules)
    channels: dict[Name, Name] = Field(
        default_factory=dict, description="utm_medium (any case) -> channel name"
    )
    segments: tuple[Name, ...] = Field(
        default=(), description="the lists reports break down by, first match wins"
    )
    forecast_window: Duration = timedelta(days=180)

    @model_validator(mode="after")
    def _default_is_a_model(self) -> AttributionDefinition:
        if self.default_model not in self.models:
            known = ", ".join(self.models)
            raise ValueError(f"default_model {self.default_model!r} is not a model ({known})")
        return self

    def model_named(self, name: str | None) -> tuple[str, PositionModel | TimeDecayModel]:
        """The model called ``name`` (the default for None); KeyError lists the models."""
        chosen = name or self.default_model
        if chosen not in self.models:
            raise KeyError(f"no attribution model {chosen!r} (models: {', '.join(self.models)})")
        return chosen, self.models[chosen]

    def extraction_digest(self) -> str:
        """A fingerprint of what decides touchpoints and their channels (not the weights)."""
        body = {
            "touchpoints": self.touchpoints.model_dump(mode="json"),
            "channels": {k.lower(): v for k, v in self.channels.items()},
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def parse_attribution(data: Any, source: str) -> AttributionDefinition:
    """Validate an attribution definition; ConfigError names ``source`` and the field."""
    try:
        return AttributionDefinition.model_validate(data)
    except ValidationError as exc:
        raise config_error(exc, source) from exc


# ---- the report view ---------------------------------------------------------------------


class AttributionLine(BaseModel):
    """Credit given to one channel, campaign, journey or account."""

    name: str
    opportunities: int = Field(description="opportunities created in the period it touched")
    pipeline: float = Field(description="credited amount of opportunities created in the period")
    won: int = Field(description="opportunities won in the period it touched")
    revenue: float = Field(description="credited amount of opportunities won in the period")


class AttributionReport(BaseModel):
    """Pipeline and revenue by channel, campaign, journey and account under one model."""

    generated_at: datetime
    since: datetime | None
    until: datetime
    segment: str | None
    model: str
    opportunities: int
    pipeline: float
    won: int
    revenue: float
    channels: list[AttributionLine]
    campaigns: list[AttributionLine]
    journeys: list[AttributionLine]
    accounts: list[AttributionLine]

    def csv_rows(self) -> list[dict[str, Any]]:
        """One row per line, ``by`` naming the breakdown."""
        rows: list[dict[str, Any]] = []
        for by in ("channels", "campaigns", "journeys", "accounts"):
            for line in getattr(self, by):
                rows.append({"model": self.model, "by": by[:-1], **line.model_dump()})
        return rows


class TouchCredit(BaseModel):
    """One touchpoint's share of one opportunity."""

    at: datetime | None
    contact_id: str | None
    event: str | None
    channel: str
    campaign: str | None
    journey: str | None
    weight: float
    credit: float


class OpportunityCredit(BaseModel):
    """How one model splits one opportunity's amount over its touchpoints."""

    opportunity_id: str
    model: str
    amount: float
    created_at: datetime
    won_at: datetime | None
    contacts: list[str]
    touches: list[TouchCredit]

    def csv_rows(self) -> list[dict[str, Any]]:
        """One row per touchpoint."""
        return [
            {
                "opportunity_id": self.opportunity_id,
                "model": self.model,
                **t.model_dump(mode="json"),
            }
            for t in self.touches
        ]
