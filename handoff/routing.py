"""Lead routing and SLA plans: who gets a lead that just became an MQL, and by when they must act.

Precedence: the owner of a named account (matched by account domain) > a team chosen by
territory (country, then region), preferring segment / ICP-tier / vertical specialists >
round-robin among that team's reps, skipping reps out of office or at capacity > the fallback
queue owner. Every decision carries a plain-language trace of each step it considered.

Everything here is pure so the handoff workflow can call it: ``now`` is an argument and the
round-robin cursor and open-lead counts come in as :class:`RoutingState` and go out as a cursor
update. Fairness under concurrency therefore needs one durable owner of that state (a routing
entity workflow or an atomic update in the store) that applies decisions one at a time.
No I/O here: the definitions service reads the file or the deployed version.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from audience.facts import ContactFacts
from handoff import public_holidays
from handoff.business_time import (
    HOLIDAY_YEARS,
    BusinessCalendar,
    CountryCode,
    TimeZoneName,
    add_business_time,
    as_utc,
    next_open,
)
from revops.durations import BUSINESS
from revops.errors import ConfigError
from revops.strict import StrictModel

__all__ = [
    "PRIORITY_TIER",
    "CursorUpdate",
    "DealSizeRange",
    "Fallback",
    "IcpTier",
    "OutOfOffice",
    "Rep",
    "RoutePlan",
    "RoutingConfig",
    "RoutingDecision",
    "RoutingInput",
    "RoutingMethod",
    "RoutingStage",
    "RoutingState",
    "SlaDuration",
    "SlaPlan",
    "SlaPolicy",
    "SlaSettings",
    "Team",
    "Trigger",
    "apply_decision",
    "deal_amount",
    "next_rep_for_reassignment",
    "parse_routing",
    "plan_route",
    "release_lead",
    "route",
    "sla_for",
    "with_icp_tier",
]

Trigger = Literal["hand_raiser", "score"]
"""Why the lead is routed: a hand-raise (demo request, contact-sales form) or a score gate."""

PRIORITY_TIER = "tier1"
"""The ICP tier a lead routes with while an executive of its account engages (the account's
priority is high): the tier-1 SLA policy and tier-1 specialists (docs/accounts.md)."""

RoutingMethod = Literal["named_account", "round_robin", "fallback"]

RoutingStage = Literal["sdr", "ae"]
"""Which stage of the sales handoff a team serves: ``sdr`` (the MQL, first touch and
qualification; every team without a ``stage``) or ``ae`` (the qualified lead, an SQL, which an
Account Executive takes over; docs/handoff.md, "SDR, then AE")."""


def _label(value: str) -> str:
    return value.strip().casefold()


def _domain(value: str) -> str:
    """``WWW.Acme.com.`` and ``acme.com`` are the same account."""
    host = value.strip().lower().rstrip(".")
    return host.removeprefix("www.")


Label = Annotated[str, AfterValidator(_label)]
"""A case-insensitive name (region, segment, ICP tier, vertical)."""
Domain = Annotated[str, AfterValidator(_domain)]


# --- configuration -------------------------------------------------------------------------


class OutOfOffice(StrictModel):
    """Dates (inclusive, in the rep's time zone) on which a rep gets no new leads."""

    start: date
    end: date

    @model_validator(mode="after")
    def _check_order(self) -> OutOfOffice:
        if self.end < self.start:
            raise ValueError(f"out of office ends ({self.end}) before it starts ({self.start})")
        return self

    def covers(self, day: date) -> bool:
        """Whether ``day`` falls in the absence."""
        return self.start <= day <= self.end

    def __str__(self) -> str:
        return f"{self.start}..{self.end}"


class Rep(StrictModel):
    """A person leads can be assigned to. ``id`` is opaque; decisions and traces use only it.

    ``in_rotation`` false keeps a rep (a manager, an ops owner) out of round-robin while still
    letting them own named accounts, receive escalations or own the fallback queue.
    ``max_open_leads`` of None means no capacity limit.
    """

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    team: str | None = None
    timezone: TimeZoneName = "UTC"
    max_open_leads: int | None = Field(default=None, ge=0)
    in_rotation: bool = True
    out_of_office: tuple[OutOfOffice, ...] = ()
    booking_link: str | None = Field(default=None, pattern=r"^https?://\S+$")
    """The rep's meeting-booking page; the notices naming the rep as owner carry it."""

    def absence_on(self, at: datetime) -> OutOfOffice | None:
        """The out-of-office period covering ``at`` (judged by the rep's local date), if any."""
        day = as_utc(at, "at").astimezone(ZoneInfo(self.timezone)).date()
        return next((period for period in self.out_of_office if period.covers(day)), None)


class DealSizeRange(StrictModel):
    """Deal sizes a team takes: ``min`` inclusive, ``max`` exclusive (either may be open)."""

    min: float | None = Field(default=None, ge=0)
    max: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _check_order(self) -> DealSizeRange:
        if self.min is None and self.max is None:
            raise ValueError("a deal size range needs min, max or both")
        if self.min is not None and self.max is not None and self.max <= self.min:
            raise ValueError(f"deal_size max ({self.max:g}) must be above min ({self.min:g})")
        return self

    def covers(self, size: float | None) -> bool:
        """Whether a deal of ``size`` falls in the range (an unknown size falls in none)."""
        if size is None:
            return False
        return (self.min is None or size >= self.min) and (self.max is None or size < self.max)

    def __str__(self) -> str:
        low = f"{self.min:g}" if self.min is not None else "0"
        return f"{low}+" if self.max is None else f"{low}-{self.max:g}"


class Team(StrictModel):
    """A group of reps sharing a territory, a calendar (for SLAs) and a manager (escalations).

    Territory: ``countries`` (ISO codes) and ``regions``; a team naming neither covers any
    territory. ``segments``, ``icp_tiers``, ``verticals``, ``products`` (the lead's product
    interest) and ``deal_size`` make a team a specialist: when set, only leads with a matching
    value go to it, and it is preferred over generalists. ``stage`` says which stage of the
    handoff the team serves (``sdr`` unless told: MQLs; ``ae``: qualified leads).
    """

    name: str = Field(min_length=1)
    stage: RoutingStage = "sdr"
    manager: str | None = None
    calendar: str
    countries: tuple[CountryCode, ...] = ()
    regions: tuple[Label, ...] = ()
    segments: tuple[Label, ...] = ()
    icp_tiers: tuple[Label, ...] = ()
    verticals: tuple[Label, ...] = ()
    products: tuple[Label, ...] = ()
    deal_size: DealSizeRange | None = None


class IcpTier(StrictModel):
    """An ICP tier derived from fit: a lead whose fit is at least ``min_fit`` is in ``name``
    (the first tier met wins, so tiers go from the highest ``min_fit`` down)."""

    name: Label
    min_fit: float = Field(ge=0)


class Fallback(StrictModel):
    """Who gets a lead no team can take, on which calendar, and who hears about breaches."""

    owner: str
    calendar: str
    escalate_to: str | None = None


_SLA_FIELDS = {"m": "minutes", "h": "hours", "bd": "business_days"}


class SlaDuration(StrictModel):
    """An amount of business time: ``{minutes: 15}``, ``{business_days: 1}`` or ``"15m"``,
    ``"4h"``, ``"1 business day"``. A business day lasts as long as the calendar's working day.
    """

    minutes: float = Field(default=0, ge=0)
    hours: float = Field(default=0, ge=0)
    business_days: float = Field(default=0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _parse_short_form(cls, value: Any) -> Any:
        """``"4h"`` is ``{hours: 4}``: the routing file's durations (``revops.durations``)."""
        if not isinstance(value, str):
            return value
        amount, unit = BUSINESS.parse(value)
        return {_SLA_FIELDS[unit]: amount}

    @model_validator(mode="after")
    def _check_positive(self) -> SlaDuration:
        if not (self.minutes or self.hours or self.business_days):
            raise ValueError("an SLA duration must be longer than zero")
        return self

    def resolve(self, calendar: BusinessCalendar) -> timedelta:
        """The amount of working time this means on ``calendar``."""
        fixed = timedelta(minutes=self.minutes, hours=self.hours)
        return fixed + calendar.business_day_length() * self.business_days

    def __str__(self) -> str:
        parts = [
            f"{amount:g} {unit}"
            for amount, unit in (
                (self.business_days, "business days"),
                (self.hours, "business hours"),
                (self.minutes, "business minutes"),
            )
            if amount
        ]
        return " + ".join(parts)


class SlaPolicy(StrictModel):
    """First-touch SLA for leads matching ``triggers`` or ``icp_tiers`` (neither = every lead),
    in the handoff ``stages`` named (none: every stage; list ``ae`` policies first).

    Reminder at ``reminder_fraction`` of the window; on breach, escalation to the team's
    manager; on a second breach (one more window later), reassignment to the next rep.
    """

    name: str = Field(min_length=1)
    stages: tuple[RoutingStage, ...] = ()
    triggers: tuple[Trigger, ...] = ()
    icp_tiers: tuple[Label, ...] = ()
    first_touch: SlaDuration
    reminder_fraction: float = Field(default=0.75, gt=0, lt=1)
    escalate_to_manager: bool = True
    reassign_on_second_breach: bool = True

    @property
    def matches_everything(self) -> bool:
        """A policy without conditions is the catch-all."""
        return not self.triggers and not self.icp_tiers and not self.stages

    def matches(self, lead: RoutingInput) -> bool:
        """Whether this policy governs ``lead`` (in the handoff stage it is routed for)."""
        if self.stages and lead.stage not in self.stages:
            return False
        if not self.triggers and not self.icp_tiers:
            return True
        return lead.trigger in self.triggers or (lead.icp_tier in self.icp_tiers)


def _default_policies() -> tuple[SlaPolicy, ...]:
    return (
        SlaPolicy(
            name="hand-raisers-and-tier-1",
            triggers=("hand_raiser",),
            icp_tiers=("tier1",),
            first_touch=SlaDuration(minutes=15),
        ),
        SlaPolicy(name="score-mql", first_touch=SlaDuration(business_days=1)),
    )


class SlaSettings(StrictModel):
    """SLA policies (first match wins; the last must match every lead) and the reply warning.

    ``reply_warning_hours`` is wall-clock time after the MQL moment at which, if sales has not
    replied, the manager gets a warning task (25 hours by default).
    """

    policies: tuple[SlaPolicy, ...] = Field(default_factory=_default_policies, min_length=1)
    reply_warning_hours: float = Field(default=25, gt=0)

    @model_validator(mode="after")
    def _check_catch_all(self) -> SlaSettings:
        """Every lead needs an SLA, so a policy without conditions must close the list."""
        if not self.policies[-1].matches_everything:
            raise ValueError(
                "the last SLA policy must have no triggers and no icp_tiers (and no stages)"
            )
        return self

    def policy_for(self, lead: RoutingInput) -> SlaPolicy:
        """The first policy matching ``lead`` (the catch-all guarantees one)."""
        return next(policy for policy in self.policies if policy.matches(lead))


class RoutingConfig(StrictModel):
    """The whole routing definition, as loaded from ``config/routing.yaml``.

    ``version`` is recorded on every decision so "why did this contact get this owner" can be
    answered against the definition in force at the time. ``regions`` maps a region to its
    countries, so a lead that only carries a country still reaches region-level teams.
    """

    version: str = Field(min_length=1)
    regions: dict[Label, tuple[CountryCode, ...]] = Field(default_factory=dict)
    calendars: tuple[BusinessCalendar, ...] = Field(min_length=1)
    reps: tuple[Rep, ...] = Field(min_length=1)
    teams: tuple[Team, ...] = ()
    named_accounts: dict[Domain, str] = Field(default_factory=dict)
    fallback: Fallback
    sla: SlaSettings = Field(default_factory=SlaSettings)
    icp_tiers: tuple[IcpTier, ...] = ()
    """Tiers derived from fit when the lead carries no ``icp_tier`` trait (which overrides)."""

    @field_validator("icp_tiers")
    @classmethod
    def _tiers_descend(cls, tiers: tuple[IcpTier, ...]) -> tuple[IcpTier, ...]:
        """A tier after a lower one could never be reached: the first tier met wins."""
        for before, after in itertools.pairwise(tiers):
            if after.min_fit >= before.min_fit:
                raise ValueError(
                    f"tier {after.name} (min_fit {after.min_fit:g}) must have a lower min_fit "
                    f"than {before.name} ({before.min_fit:g}): the first tier met wins"
                )
        return tiers

    def tier_for(self, fit: float | None) -> IcpTier | None:
        """The ICP tier a fit score falls in (None: no tiers, no fit, or below every tier)."""
        if fit is None:
            return None
        return next((tier for tier in self.icp_tiers if fit >= tier.min_fit), None)

    @field_validator("named_accounts", mode="before")
    @classmethod
    def _reject_duplicate_domains(cls, value: Any) -> Any:
        """``Acme.com`` and ``acme.com`` would silently overwrite each other otherwise."""
        if isinstance(value, Mapping):
            seen: dict[str, Any] = {}
            for key in value:
                domain = _domain(str(key))
                if domain in seen:
                    raise ValueError(f"{key!r} and {seen[domain]!r} are the same account domain")
                seen[domain] = key
        return value

    @model_validator(mode="after")
    def _check_references(self) -> RoutingConfig:
        """Every name a definition mentions must exist, so routing never meets a dangling id."""
        problems = _duplicate_problems(self) + _reference_problems(self)
        if problems:
            raise PydanticCustomError("routing_reference", "; ".join(problems))
        return self

    def rep(self, rep_id: str) -> Rep:
        """The rep with ``rep_id``; KeyError if none."""
        for rep in self.reps:
            if rep.id == rep_id:
                return rep
        raise KeyError(f"no rep {rep_id!r} in routing config {self.version}")

    def team(self, name: str) -> Team:
        """The team called ``name``; KeyError if none."""
        for team in self.teams:
            if team.name == name:
                return team
        raise KeyError(f"no team {name!r} in routing config {self.version}")

    def calendar(self, name: str) -> BusinessCalendar:
        """The calendar called ``name``; KeyError if none."""
        for calendar in self.calendars:
            if calendar.name == name:
                return calendar
        raise KeyError(f"no calendar {name!r} in routing config {self.version}")

    def has_stage(self, stage: RoutingStage) -> bool:
        """Whether any team serves ``stage`` (no ``ae`` team: the SDR keeps the lead)."""
        return any(team.stage == stage for team in self.teams)

    def rotation(self, team: str) -> tuple[Rep, ...]:
        """Reps of ``team`` taking round-robin leads, in config order (the rotation order)."""
        return tuple(rep for rep in self.reps if rep.team == team and rep.in_rotation)


def _duplicate_problems(config: RoutingConfig) -> list[str]:
    problems = []
    home: dict[str, str] = {}
    for region, countries in config.regions.items():
        for country in countries:
            if country in home and home[country] != region:
                problems.append(f"regions.{region}: {country} is already in {home[country]}")
            home.setdefault(country, region)
    for field, names in (
        ("calendars", [calendar.name for calendar in config.calendars]),
        ("reps", [rep.id for rep in config.reps]),
        ("teams", [team.name for team in config.teams]),
    ):
        for index, name in enumerate(names):
            if name in names[:index]:
                problems.append(f"{field}[{index}]: {name!r} is defined twice")
    return problems


def _reference_problems(config: RoutingConfig) -> list[str]:
    reps = {rep.id for rep in config.reps}
    teams = {team.name for team in config.teams}
    calendars = {calendar.name for calendar in config.calendars}
    wanted: list[tuple[str, str | None, set[str], str]] = [
        ("fallback.owner", config.fallback.owner, reps, "rep"),
        ("fallback.calendar", config.fallback.calendar, calendars, "calendar"),
        ("fallback.escalate_to", config.fallback.escalate_to, reps, "rep"),
    ]
    for index, rep in enumerate(config.reps):
        wanted.append((f"reps[{index}].team", rep.team, teams, "team"))
    for index, team in enumerate(config.teams):
        wanted.append((f"teams[{index}].manager", team.manager, reps, "rep"))
        wanted.append((f"teams[{index}].calendar", team.calendar, calendars, "calendar"))
    for domain, owner in config.named_accounts.items():
        wanted.append((f"named_accounts.{domain}", owner, reps, "rep"))
    return [
        f"{path}: unknown {kind} {name!r}"
        for path, name, known, kind in wanted
        if name is not None and name not in known
    ]


def parse_routing(
    data: Any, source: str = "<routing>", *, holiday_years: range | None = None
) -> RoutingConfig:
    """Validate already parsed data; ConfigError lists each problem with its field path.

    Calendars naming a country get its public holidays for ``holiday_years`` (default: last
    year to five years ahead), as dates; ``public_holidays`` written by hand is refused.
    """
    from revops.yamlio import format_validation_error  # imported here: workflows never load YAML

    years = holiday_years or public_holidays.holiday_years(datetime.now(UTC).date())
    try:
        return RoutingConfig.model_validate(data, context={HOLIDAY_YEARS: years})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc)) from exc


# --- inputs, state and decisions -------------------------------------------------------------


class RoutingInput(StrictModel):
    """What routing looks at: firmographics only, no personal data (the contact id is opaque)."""

    contact_id: str
    trigger: Trigger = "score"
    stage: RoutingStage = "sdr"
    account_domain: Domain | None = None
    country: CountryCode | None = None
    region: Label | None = None
    segment: Label | None = None
    icp_tier: Label | None = None
    industry: Label | None = None
    product_interest: Label | None = None
    deal_size: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    fit: float | None = None
    """The contact's fit score: its ICP tier when no ``icp_tier`` trait says otherwise."""
    account_fit: float | None = None
    """The account's fit, preferred over the contact's when set. Hook for accounts (issue 15):
    nothing fills it yet; the account model sets it when a contact's account is known."""
    account_owner: str | None = None
    """The named owner of the contact's account (its ``owner`` trait): owns every member."""

    @classmethod
    def from_facts(cls, facts: ContactFacts, trigger: Trigger) -> RoutingInput:
        """Build the input from a contact snapshot's traits and its account.

        Traits read: ``account_domain`` (or ``company_domain``), ``country``, ``region``,
        ``segment``, ``icp_tier``, ``industry``, ``product_interest``, ``deal_size``; missing or
        empty traits stay unset. The account (docs/accounts.md) gives its owner, its domain when
        the contact has none, and ``PRIORITY_TIER`` while an executive of it engages.
        """
        traits = facts.traits

        def trait(*names: str) -> str | None:
            for name in names:
                value = traits.get(name)
                if value not in (None, ""):
                    return str(value)
            return None

        account = facts.account
        high = account is not None and account.priority == "high"
        return cls(
            contact_id=facts.contact_id,
            trigger=trigger,
            account_domain=trait("account_domain", "company_domain")
            or (account.domain if account else None),
            country=trait("country"),
            region=trait("region"),
            segment=trait("segment"),
            icp_tier=PRIORITY_TIER if high else trait("icp_tier"),
            industry=trait("industry"),
            product_interest=trait("product_interest"),
            deal_size=deal_amount(traits.get("deal_size")),
            account_owner=account.owner if account else None,
        )


def deal_amount(value: Any) -> float | None:
    """A deal size from a trait or a webhook (a number or a numeric string), else None."""
    if isinstance(value, bool) or value in (None, ""):
        return None
    try:
        amount = float(value)
    except (TypeError, ValueError):
        return None
    return amount if math.isfinite(amount) and amount >= 0 else None


class RoutingState(BaseModel):
    """The only mutable input of routing, owned by one durable place.

    ``cursors`` maps a team to the rep who got its last round-robin lead (a rep id rather than
    a position, so adding a rep does not shift everyone's turn). ``open_leads`` counts each
    rep's open leads, for capacity.
    """

    model_config = ConfigDict(frozen=True)

    cursors: dict[str, str] = Field(default_factory=dict)
    open_leads: dict[str, int] = Field(default_factory=dict)


class CursorUpdate(StrictModel):
    """The round-robin turn a decision used: ``team``'s cursor moves to ``rep_id``."""

    team: str
    rep_id: str


class RoutePlan(StrictModel):
    """The state-free part of routing: an available named owner and ranked candidate teams."""

    named_owner: str | None
    teams: tuple[str, ...]
    trace: tuple[str, ...]

    @property
    def primary_team(self) -> str | None:
        """The team a lead most likely lands in (before looking at reps' availability)."""
        return self.teams[0] if self.teams else None


class RoutingDecision(StrictModel):
    """Who owns the lead now, how that was decided, and what the SLA clock runs on."""

    contact_id: str
    rep_id: str
    method: RoutingMethod
    team: str | None
    manager_id: str | None
    calendar: str
    cursor: CursorUpdate | None
    reassigned_from: str | None = None
    config_version: str
    decided_at: datetime
    trace: tuple[str, ...]


class SlaPlan(StrictModel):
    """The timers of one handoff: remind, breach (escalate), second breach (reassign), warn.

    All instants are UTC. ``first_touch_within`` is business time on ``calendar``;
    ``reply_warning_at`` is wall-clock time after the MQL moment.
    """

    policy: str
    calendar: str
    mql_at: datetime
    clock_starts_at: datetime
    first_touch_within: timedelta
    reminder_at: datetime
    deadline: datetime
    escalate_to: str | None
    reassign_at: datetime | None
    reply_warning_at: datetime
    reply_warning_to: str | None


# --- routing ----------------------------------------------------------------------------------


def plan_route(config: RoutingConfig, lead: RoutingInput, now: datetime) -> RoutePlan:
    """Named owner (if available at ``now``) and candidate teams, best first; needs no state.

    The teams are: the named owner's team (covering an absent owner or a reassignment), then
    territory matches ranked by specialisms matched, then by territory precision (country >
    region > any), then by config order.
    """
    trace: list[str] = []
    owner = _named_account_owner(config, lead, now, trace)
    lead = _with_region(config, lead, trace)
    lead = with_icp_tier(config, lead, trace)
    teams: list[str] = []
    named = _owner_id(config, lead, [])
    if named is not None:
        owner_team = config.rep(named[0]).team
        if owner_team is not None:
            teams.append(owner_team)
    teams.extend(name for name in _ranked_teams(config, lead, trace) if name not in teams)
    return RoutePlan(
        named_owner=owner.id if owner else None, teams=tuple(teams), trace=tuple(trace)
    )


def route(
    config: RoutingConfig, lead: RoutingInput, state: RoutingState, now: datetime
) -> RoutingDecision:
    """Choose the lead's owner: named account > territory team round-robin > fallback owner."""
    plan = plan_route(config, lead, now)
    trace = list(plan.trace)
    if plan.named_owner is not None:
        owner = config.rep(plan.named_owner)
        return _decide(config, lead, now, owner.id, "named_account", owner.team, None, trace)
    return _assign_from_teams(config, lead, state, now, plan.teams, frozenset(), trace)


def next_rep_for_reassignment(
    config: RoutingConfig,
    lead: RoutingInput,
    state: RoutingState,
    now: datetime,
    *,
    tried: Sequence[str],
) -> RoutingDecision:
    """Who takes over after a second SLA breach; ``tried`` lists every owner so far, last one
    being the current owner. Nobody in ``tried`` is picked again.

    Looks in the current owner's team first (the colleagues who know the territory), then in
    the other candidate teams, then falls back to the fallback queue owner.
    """
    if not tried:
        raise ValueError("tried must name at least the current owner")
    current = tried[-1]
    trace = [f"reassignment: {current} breached the SLA twice; looking for another rep"]
    current_team = config.rep(current).team if current in {r.id for r in config.reps} else None
    plan = plan_route(config, lead, now)
    teams = [current_team] if current_team else []
    teams.extend(name for name in plan.teams if name not in teams)
    decision = _assign_from_teams(config, lead, state, now, tuple(teams), frozenset(tried), trace)
    return decision.model_copy(update={"reassigned_from": current})


def apply_decision(state: RoutingState, decision: RoutingDecision) -> RoutingState:
    """The state after ``decision``: its team's cursor moved, its rep holding one more lead."""
    cursors = dict(state.cursors)
    if decision.cursor is not None:
        cursors[decision.cursor.team] = decision.cursor.rep_id
    open_leads = dict(state.open_leads)
    open_leads[decision.rep_id] = open_leads.get(decision.rep_id, 0) + 1
    return RoutingState(cursors=cursors, open_leads=open_leads)


def release_lead(state: RoutingState, rep_id: str) -> RoutingState:
    """The state after one of ``rep_id``'s leads was accepted, rejected or closed."""
    open_leads = dict(state.open_leads)
    open_leads[rep_id] = max(open_leads.get(rep_id, 0) - 1, 0)
    return state.model_copy(update={"open_leads": open_leads})


def _owner_id(
    config: RoutingConfig, lead: RoutingInput, trace: list[str]
) -> tuple[str, str] | None:
    """Who owns the lead's account: its own named owner (a rep of this config), else the
    ``named_accounts`` entry of its domain; with the words for the trace."""
    if lead.account_owner is not None:
        if any(rep.id == lead.account_owner for rep in config.reps):
            return lead.account_owner, "the account"
        trace.append(f"named account: the account's owner {lead.account_owner} is not a rep here")
    domain = lead.account_domain
    if domain is not None and domain in config.named_accounts:
        return config.named_accounts[domain], domain
    return None


def _named_account_owner(
    config: RoutingConfig, lead: RoutingInput, now: datetime, trace: list[str]
) -> Rep | None:
    """The named account's owner if there is one and they are not out of office.

    Capacity is not applied: an account owner keeps their accounts however busy they are.
    """
    if lead.account_owner is not None:
        found = _owner_id(config, lead, trace)
        if found is not None:
            return _available_owner(config.rep(found[0]), found[1], now, trace)
    domain = lead.account_domain
    if domain is None:
        trace.append("named account: the lead has no account domain")
        return None
    if domain not in config.named_accounts:
        trace.append(f"named account: {domain} is not a named account")
        return None
    return _available_owner(config.rep(config.named_accounts[domain]), domain, now, trace)


def _available_owner(owner: Rep, domain: str, now: datetime, trace: list[str]) -> Rep | None:
    absence = owner.absence_on(now)
    if absence is not None:
        trace.append(
            f"named account: {domain} is owned by {owner.id}, who is out of office {absence};"
            " trying their team and the territory teams"
        )
        return None
    trace.append(f"named account: {domain} is owned by {owner.id}; assigned to the owner")
    return owner


def with_icp_tier(
    config: RoutingConfig, lead: RoutingInput, trace: list[str] | None = None
) -> RoutingInput:
    """The lead with its ICP tier: the ``icp_tier`` trait when it has one (the override), else
    the tier its account's fit, or its own fit, falls in (``icp_tiers`` of the definition)."""
    if lead.icp_tier is not None:
        return lead
    fit, whose = (
        (lead.account_fit, "the account's")
        if lead.account_fit is not None
        else (
            lead.fit,
            "the contact's",
        )
    )
    tier = config.tier_for(fit)
    if tier is None:
        return lead
    if trace is not None:
        trace.append(f"ICP tier: {tier.name}, from {whose} fit {fit:g} (>= {tier.min_fit:g})")
    return lead.model_copy(update={"icp_tier": tier.name})


def _with_region(config: RoutingConfig, lead: RoutingInput, trace: list[str]) -> RoutingInput:
    """Fill in the lead's region from its country, as the config's ``regions`` map says."""
    if lead.region is not None or lead.country is None:
        return lead
    for region, countries in config.regions.items():
        if lead.country in countries:
            trace.append(f"territory: country {lead.country} is in region {region}")
            return lead.model_copy(update={"region": region})
    return lead


def _territory_fit(team: Team, lead: RoutingInput) -> tuple[int, str] | None:
    """How precisely ``team``'s territory covers the lead (2 country, 1 region, 0 any)."""
    if lead.country is not None and lead.country in team.countries:
        return 2, f"country {lead.country}"
    if lead.region is not None and lead.region in team.regions:
        return 1, f"region {lead.region}"
    if not team.countries and not team.regions:
        return 0, "any territory"
    return None


def _specialist_fit(team: Team, lead: RoutingInput) -> tuple[int, str | None]:
    """Number of specialisms the lead matches, or the reason the team does not serve it."""
    matched = 0
    for kind, served, value in (
        ("segments", team.segments, lead.segment),
        ("ICP tiers", team.icp_tiers, lead.icp_tier),
        ("verticals", team.verticals, lead.industry),
        ("products", team.products, lead.product_interest),
    ):
        if not served:
            continue
        if value not in served:
            return matched, f"serves {kind} {', '.join(served)}, the lead has {value or 'none'}"
        matched += 1
    if team.deal_size is not None:
        if not team.deal_size.covers(lead.deal_size):
            size = f"{lead.deal_size:g}" if lead.deal_size is not None else "none"
            return matched, f"serves deal sizes {team.deal_size}, the lead has {size}"
        matched += 1
    return matched, None


def _ranked_teams(config: RoutingConfig, lead: RoutingInput, trace: list[str]) -> list[str]:
    """Teams whose territory and specialisms fit the lead, best first, each step traced."""
    ranked: list[tuple[int, int, int, str]] = []
    for index, team in enumerate(config.teams):
        if team.stage != lead.stage:
            continue  # another stage's team: never a candidate, not worth a trace line
        territory = _territory_fit(team, lead)
        if territory is None:
            where = lead.country or lead.region or "an unknown territory"
            trace.append(f"territory: team {team.name} skipped, it does not cover {where}")
            continue
        specialisms, refusal = _specialist_fit(team, lead)
        if refusal is not None:
            trace.append(f"territory: team {team.name} skipped, it {refusal}")
            continue
        trace.append(
            f"territory: team {team.name} fits ({territory[1]}, {specialisms} specialisms matched)"
        )
        ranked.append((-specialisms, -territory[0], index, team.name))
    ranked.sort()
    if ranked:
        trace.append("territory: teams in order of preference: " + ", ".join(r[3] for r in ranked))
    return [name for *_, name in ranked]


def _unavailable(rep: Rep, state: RoutingState, now: datetime) -> str | None:
    """Why ``rep`` cannot take a round-robin lead at ``now``, or None if they can."""
    absence = rep.absence_on(now)
    if absence is not None:
        return f"out of office {absence}"
    held = state.open_leads.get(rep.id, 0)
    if rep.max_open_leads is not None and held >= rep.max_open_leads:
        return f"at capacity ({held} of {rep.max_open_leads} open leads)"
    return None


def _round_robin(
    config: RoutingConfig,
    team: str,
    state: RoutingState,
    now: datetime,
    exclude: frozenset[str],
    trace: list[str],
) -> Rep | None:
    """The next available rep after the team's cursor, wrapping around once."""
    members = config.rotation(team)
    if not members:
        trace.append(f"round-robin in {team}: no reps in rotation")
        return None
    ids = [rep.id for rep in members]
    last = state.cursors.get(team)
    first = ids.index(last) + 1 if last in ids else 0
    for step in range(len(members)):
        rep = members[(first + step) % len(members)]
        reason = "already had this lead" if rep.id in exclude else _unavailable(rep, state, now)
        if reason is not None:
            trace.append(f"round-robin in {team}: skipped {rep.id}, {reason}")
            continue
        held = state.open_leads.get(rep.id, 0)
        limit = rep.max_open_leads if rep.max_open_leads is not None else "unlimited"
        trace.append(f"round-robin in {team}: assigned {rep.id} ({held} of {limit} open leads)")
        return rep
    trace.append(f"round-robin in {team}: nobody available")
    return None


def _assign_from_teams(
    config: RoutingConfig,
    lead: RoutingInput,
    state: RoutingState,
    now: datetime,
    teams: tuple[str, ...],
    exclude: frozenset[str],
    trace: list[str],
) -> RoutingDecision:
    """Round-robin in each candidate team in turn; the fallback owner if all come up empty."""
    for team in teams:
        rep = _round_robin(config, team, state, now, exclude, trace)
        if rep is not None:
            cursor = CursorUpdate(team=team, rep_id=rep.id)
            return _decide(config, lead, now, rep.id, "round_robin", team, cursor, trace)
    owner = config.fallback.owner
    why = "no team could take the lead" if teams else "no team covers the lead"
    note = " (they already had it, but nobody else is left)" if owner in exclude else ""
    trace.append(f"fallback: {why}; assigned to the fallback queue owner {owner}{note}")
    return _decide(config, lead, now, owner, "fallback", None, None, trace)


def _decide(
    config: RoutingConfig,
    lead: RoutingInput,
    now: datetime,
    rep_id: str,
    method: RoutingMethod,
    team: str | None,
    cursor: CursorUpdate | None,
    trace: list[str],
) -> RoutingDecision:
    """Assemble a decision; a team-less owner uses the fallback calendar and escalation."""
    team_config = config.team(team) if team is not None else None
    return RoutingDecision(
        contact_id=lead.contact_id,
        rep_id=rep_id,
        method=method,
        team=team,
        manager_id=team_config.manager if team_config else config.fallback.escalate_to,
        calendar=team_config.calendar if team_config else config.fallback.calendar,
        cursor=cursor,
        config_version=config.version,
        decided_at=as_utc(now, "now"),
        trace=tuple(trace),
    )


# --- SLA ----------------------------------------------------------------------------------------


def sla_for(
    config: RoutingConfig,
    lead: RoutingInput,
    now: datetime,
    *,
    decision: RoutingDecision | None = None,
) -> SlaPlan:
    """The SLA timers for a lead routed at ``now`` (the MQL moment), on its team's calendar.

    Pass the ``decision`` when there is one: its team (after any failover) sets the calendar
    and the manager. Without it, the team is the one routing would prefer for this lead.
    """
    mql_at = as_utc(now, "now")
    lead = with_icp_tier(config, lead)
    calendar_name, manager = _calendar_and_manager(config, lead, mql_at, decision)
    calendar = config.calendar(calendar_name)
    policy = config.sla.policy_for(lead)
    window = policy.first_touch.resolve(calendar)
    deadline = add_business_time(calendar, mql_at, window)
    reassign_at = (
        add_business_time(calendar, deadline, window) if policy.reassign_on_second_breach else None
    )
    return SlaPlan(
        policy=policy.name,
        calendar=calendar.name,
        mql_at=mql_at,
        clock_starts_at=next_open(calendar, mql_at),
        first_touch_within=window,
        reminder_at=add_business_time(calendar, mql_at, window * policy.reminder_fraction),
        deadline=deadline,
        escalate_to=manager if policy.escalate_to_manager else None,
        reassign_at=reassign_at,
        reply_warning_at=mql_at + timedelta(hours=config.sla.reply_warning_hours),
        reply_warning_to=manager,
    )


def _calendar_and_manager(
    config: RoutingConfig, lead: RoutingInput, now: datetime, decision: RoutingDecision | None
) -> tuple[str, str | None]:
    if decision is not None:
        return decision.calendar, decision.manager_id
    plan = plan_route(config, lead, now)
    team_name = config.rep(plan.named_owner).team if plan.named_owner else plan.primary_team
    if team_name is None:
        return config.fallback.calendar, config.fallback.escalate_to
    team = config.team(team_name)
    return team.calendar, team.manager
