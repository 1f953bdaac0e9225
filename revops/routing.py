"""Lead routing and SLA plans: who gets a lead that just became an MQL, and by when they must act.

Precedence: the owner of a named account (matched by account domain) > a team chosen by
territory (country, then region), preferring segment / ICP-tier / vertical specialists >
round-robin among that team's reps, skipping reps out of office or at capacity > the fallback
queue owner. Every decision carries a plain-language trace of each step it considered.

Everything here is pure so the handoff workflow can call it: ``now`` is an argument and the
round-robin cursor and open-lead counts come in as :class:`RoutingState` and go out as a cursor
update. Fairness under concurrency therefore needs one durable owner of that state (a routing
entity workflow or an atomic update in the store) that applies decisions one at a time.
Only :func:`load_routing` does I/O; workflow code receives an already loaded config.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from models.facts import ContactFacts
from revops.business_time import (
    BusinessCalendar,
    TimeZoneName,
    add_business_time,
    as_utc,
    next_open,
)
from revops.errors import ConfigError

__all__ = [
    "CursorUpdate",
    "Fallback",
    "OutOfOffice",
    "Rep",
    "RoutePlan",
    "RoutingConfig",
    "RoutingDecision",
    "RoutingInput",
    "RoutingMethod",
    "RoutingState",
    "SlaDuration",
    "SlaPlan",
    "SlaPolicy",
    "SlaSettings",
    "Team",
    "Trigger",
    "apply_decision",
    "load_routing",
    "next_rep_for_reassignment",
    "parse_routing",
    "plan_route",
    "release_lead",
    "route",
    "sla_for",
]

Trigger = Literal["hand_raiser", "score"]
"""Why the lead is routed: a hand-raise (demo request, contact-sales form) or a score gate."""

RoutingMethod = Literal["named_account", "round_robin", "fallback"]


def _label(value: str) -> str:
    return value.strip().casefold()


def _country(value: str) -> str:
    return value.strip().upper()


def _not_a_yaml_boolean(value: Any) -> Any:
    """YAML 1.1 reads an unquoted ``NO`` (Norway) as false; say so instead of "not a string"."""
    if isinstance(value, bool):
        raise ValueError("got true/false: quote country codes such as 'NO' in YAML")
    return value


def _domain(value: str) -> str:
    """``WWW.Acme.com.`` and ``acme.com`` are the same account."""
    host = value.strip().lower().rstrip(".")
    return host.removeprefix("www.")


Label = Annotated[str, AfterValidator(_label)]
"""A case-insensitive name (region, segment, ICP tier, vertical)."""
CountryCode = Annotated[str, BeforeValidator(_not_a_yaml_boolean), AfterValidator(_country)]
Domain = Annotated[str, AfterValidator(_domain)]

_FROZEN = ConfigDict(frozen=True, extra="forbid")


# --- configuration -------------------------------------------------------------------------


class OutOfOffice(BaseModel):
    """Dates (inclusive, in the rep's time zone) on which a rep gets no new leads."""

    model_config = _FROZEN

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


class Rep(BaseModel):
    """A person leads can be assigned to. ``id`` is opaque; decisions and traces use only it.

    ``in_rotation`` false keeps a rep (a manager, an ops owner) out of round-robin while still
    letting them own named accounts, receive escalations or own the fallback queue.
    ``max_open_leads`` of None means no capacity limit.
    """

    model_config = _FROZEN

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    team: str | None = None
    timezone: TimeZoneName = "UTC"
    max_open_leads: int | None = Field(default=None, ge=0)
    in_rotation: bool = True
    out_of_office: tuple[OutOfOffice, ...] = ()

    def absence_on(self, at: datetime) -> OutOfOffice | None:
        """The out-of-office period covering ``at`` (judged by the rep's local date), if any."""
        day = as_utc(at, "at").astimezone(ZoneInfo(self.timezone)).date()
        return next((period for period in self.out_of_office if period.covers(day)), None)


class Team(BaseModel):
    """A group of reps sharing a territory, a calendar (for SLAs) and a manager (escalations).

    Territory: ``countries`` (ISO codes) and ``regions``; a team naming neither covers any
    territory. ``segments``, ``icp_tiers`` and ``verticals`` make a team a specialist: when set,
    only leads with one of those values go to it, and it is preferred over generalists.
    """

    model_config = _FROZEN

    name: str = Field(min_length=1)
    manager: str | None = None
    calendar: str
    countries: tuple[CountryCode, ...] = ()
    regions: tuple[Label, ...] = ()
    segments: tuple[Label, ...] = ()
    icp_tiers: tuple[Label, ...] = ()
    verticals: tuple[Label, ...] = ()


class Fallback(BaseModel):
    """Who gets a lead no team can take, on which calendar, and who hears about breaches."""

    model_config = _FROZEN

    owner: str
    calendar: str
    escalate_to: str | None = None


_DURATION = re.compile(
    r"^\s*(?P<amount>\d+(?:\.\d+)?)\s*"
    r"(?:(?P<minutes>m|min|mins|minutes?)|(?P<hours>h|hours?)"
    r"|(?P<business_days>bd|business[ _]days?))"
    r"\s*$",
    re.IGNORECASE,
)


class SlaDuration(BaseModel):
    """An amount of business time: ``{minutes: 15}``, ``{business_days: 1}`` or ``"15m"``,
    ``"4h"``, ``"1 business day"``. A business day lasts as long as the calendar's working day.
    """

    model_config = _FROZEN

    minutes: float = Field(default=0, ge=0)
    hours: float = Field(default=0, ge=0)
    business_days: float = Field(default=0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _parse_short_form(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"expected a duration like '15m', '4h' or '1bd', got {value!r}")
        unit = next(name for name in ("minutes", "hours", "business_days") if match[name])
        return {unit: float(match["amount"])}

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


class SlaPolicy(BaseModel):
    """First-touch SLA for leads matching ``triggers`` or ``icp_tiers`` (neither = every lead).

    Reminder at ``reminder_fraction`` of the window; on breach, escalation to the team's
    manager; on a second breach (one more window later), reassignment to the next rep.
    """

    model_config = _FROZEN

    name: str = Field(min_length=1)
    triggers: tuple[Trigger, ...] = ()
    icp_tiers: tuple[Label, ...] = ()
    first_touch: SlaDuration
    reminder_fraction: float = Field(default=0.75, gt=0, lt=1)
    escalate_to_manager: bool = True
    reassign_on_second_breach: bool = True

    @property
    def matches_everything(self) -> bool:
        """A policy without conditions is the catch-all."""
        return not self.triggers and not self.icp_tiers

    def matches(self, lead: RoutingInput) -> bool:
        """Whether this policy governs ``lead``."""
        if self.matches_everything:
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


class SlaSettings(BaseModel):
    """SLA policies (first match wins; the last must match every lead) and the reply warning.

    ``reply_warning_hours`` is wall-clock time after the MQL moment at which, if sales has not
    replied, the manager gets a warning task (25 hours by default).
    """

    model_config = _FROZEN

    policies: tuple[SlaPolicy, ...] = Field(default_factory=_default_policies, min_length=1)
    reply_warning_hours: float = Field(default=25, gt=0)

    @model_validator(mode="after")
    def _check_catch_all(self) -> SlaSettings:
        """Every lead needs an SLA, so a policy without conditions must close the list."""
        if not self.policies[-1].matches_everything:
            raise ValueError("the last SLA policy must have no triggers and no icp_tiers")
        return self

    def policy_for(self, lead: RoutingInput) -> SlaPolicy:
        """The first policy matching ``lead`` (the catch-all guarantees one)."""
        return next(policy for policy in self.policies if policy.matches(lead))


class RoutingConfig(BaseModel):
    """The whole routing definition, as loaded from ``config/routing.yaml``.

    ``version`` is recorded on every decision so "why did this contact get this owner" can be
    answered against the definition in force at the time. ``regions`` maps a region to its
    countries, so a lead that only carries a country still reaches region-level teams.
    """

    model_config = _FROZEN

    version: str = Field(min_length=1)
    regions: dict[Label, tuple[CountryCode, ...]] = Field(default_factory=dict)
    calendars: tuple[BusinessCalendar, ...] = Field(min_length=1)
    reps: tuple[Rep, ...] = Field(min_length=1)
    teams: tuple[Team, ...] = ()
    named_accounts: dict[Domain, str] = Field(default_factory=dict)
    fallback: Fallback
    sla: SlaSettings = Field(default_factory=SlaSettings)

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


def parse_routing(data: Any, source: str = "<routing>") -> RoutingConfig:
    """Validate already parsed data; ConfigError lists each problem with its field path."""
    from revops.yamlio import format_validation_error  # imported here: workflows never load YAML

    try:
        return RoutingConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc)) from exc


def load_routing(path: Path | str) -> RoutingConfig:
    """Read and validate a routing YAML file (I/O: call it from activities or the CLI).

    Raises ConfigError naming the file and the field path of each problem.
    """
    from revops.yamlio import read_yaml  # imported here: workflows never load YAML

    file = Path(path)
    return parse_routing(read_yaml(file) or {}, str(file))


# --- inputs, state and decisions -------------------------------------------------------------


class RoutingInput(BaseModel):
    """What routing looks at: firmographics only, no personal data (the contact id is opaque)."""

    model_config = _FROZEN

    contact_id: str
    trigger: Trigger = "score"
    account_domain: Domain | None = None
    country: CountryCode | None = None
    region: Label | None = None
    segment: Label | None = None
    icp_tier: Label | None = None
    industry: Label | None = None

    @classmethod
    def from_facts(cls, facts: ContactFacts, trigger: Trigger) -> RoutingInput:
        """Build the input from a contact snapshot's traits.

        Traits read: ``account_domain`` (or ``company_domain``), ``country``, ``region``,
        ``segment``, ``icp_tier``, ``industry``; missing or empty traits stay unset.
        """
        traits = facts.traits

        def trait(*names: str) -> str | None:
            for name in names:
                value = traits.get(name)
                if value not in (None, ""):
                    return str(value)
            return None

        return cls(
            contact_id=facts.contact_id,
            trigger=trigger,
            account_domain=trait("account_domain", "company_domain"),
            country=trait("country"),
            region=trait("region"),
            segment=trait("segment"),
            icp_tier=trait("icp_tier"),
            industry=trait("industry"),
        )


class RoutingState(BaseModel):
    """The only mutable input of routing, owned by one durable place.

    ``cursors`` maps a team to the rep who got its last round-robin lead (a rep id rather than
    a position, so adding a rep does not shift everyone's turn). ``open_leads`` counts each
    rep's open leads, for capacity.
    """

    model_config = ConfigDict(frozen=True)

    cursors: dict[str, str] = Field(default_factory=dict)
    open_leads: dict[str, int] = Field(default_factory=dict)


class CursorUpdate(BaseModel):
    """The round-robin turn a decision used: ``team``'s cursor moves to ``rep_id``."""

    model_config = _FROZEN

    team: str
    rep_id: str


class RoutePlan(BaseModel):
    """The state-free part of routing: an available named owner and ranked candidate teams."""

    model_config = _FROZEN

    named_owner: str | None
    teams: tuple[str, ...]
    trace: tuple[str, ...]

    @property
    def primary_team(self) -> str | None:
        """The team a lead most likely lands in (before looking at reps' availability)."""
        return self.teams[0] if self.teams else None


class RoutingDecision(BaseModel):
    """Who owns the lead now, how that was decided, and what the SLA clock runs on."""

    model_config = _FROZEN

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


class SlaPlan(BaseModel):
    """The timers of one handoff: remind, breach (escalate), second breach (reassign), warn.

    All instants are UTC. ``first_touch_within`` is business time on ``calendar``;
    ``reply_warning_at`` is wall-clock time after the MQL moment.
    """

    model_config = _FROZEN

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
    teams: list[str] = []
    if lead.account_domain in config.named_accounts:
        owner_team = config.rep(config.named_accounts[lead.account_domain]).team
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


def _named_account_owner(
    config: RoutingConfig, lead: RoutingInput, now: datetime, trace: list[str]
) -> Rep | None:
    """The named account's owner if there is one and they are not out of office.

    Capacity is not applied: an account owner keeps their accounts however busy they are.
    """
    domain = lead.account_domain
    if domain is None:
        trace.append("named account: the lead has no account domain")
        return None
    if domain not in config.named_accounts:
        trace.append(f"named account: {domain} is not a named account")
        return None
    owner = config.rep(config.named_accounts[domain])
    absence = owner.absence_on(now)
    if absence is not None:
        trace.append(
            f"named account: {domain} is owned by {owner.id}, who is out of office {absence};"
            " trying their team and the territory teams"
        )
        return None
    trace.append(f"named account: {domain} is owned by {owner.id}; assigned to the owner")
    return owner


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
    ):
        if not served:
            continue
        if value not in served:
            return matched, f"serves {kind} {', '.join(served)}, the lead has {value or 'none'}"
        matched += 1
    return matched, None


def _ranked_teams(config: RoutingConfig, lead: RoutingInput, trace: list[str]) -> list[str]:
    """Teams whose territory and specialisms fit the lead, best first, each step traced."""
    ranked: list[tuple[int, int, int, str]] = []
    for index, team in enumerate(config.teams):
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
