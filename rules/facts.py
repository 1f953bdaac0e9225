"""Fact building: what Python observes for one decision, flattened for the rules to match.

The rules only compare fields; everything that needs the definitions or a clock is observed
here, in plain Python and outside the engine's lock: entry and exit criteria (the one condition
language, on one snapshot built only when a criterion is evaluated), days since sales activity
and since the last entry, sends already in the cap window, the contact's local time. Event
property values are put in the condition language's form for each kind of operand a trigger
compares them with (``value_form``), and the triggers are compiled from the same definition
(``operand_forms``), so a trigger filter and a condition never disagree.

Facts come in two strata: the input facts of a request (the contact, its running journeys, the
occurrence), then, once those settled, the contest of exclusivity groups (``contest_facts``).
"""

from __future__ import annotations

from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from audience.conditions import Condition, Snapshot, evaluate, value_form
from audience.facts import ContactFacts
from lifecycle.stages import OPPORTUNITY_OPEN_TRAIT
from models.decisions import (
    ENROLL_REQUEST_EVENT,
    ActiveEnrollment,
    DecisionRequest,
    EventOccurred,
    ListEntered,
    SendRequested,
    StageEntered,
)
from rules.adapter import Fact, Session, exact, fact
from rules.catalog import Catalog, CompiledJourney, field_key
from rules.policies import Policies

__all__ = [
    "DAY_SECONDS",
    "Criteria",
    "Observation",
    "contest_facts",
    "hold_lists",
    "input_facts",
    "triggered_fact",
]

DAY_SECONDS = 86_400.0


class Criteria:
    """Entry and exit criteria of one decision, on one snapshot built only when needed."""

    def __init__(self, facts: ContactFacts) -> None:
        """Nothing is indexed until a criterion is actually evaluated."""
        self._facts = facts
        self._snapshot: Snapshot | None = None

    def holds(self, condition: Condition | None, default: bool) -> bool:
        """``condition`` evaluated now; ``default`` when the journey defines none."""
        if condition is None:
            return default
        if self._snapshot is None:
            self._snapshot = Snapshot.of(self._facts)
        return evaluate(condition, self._snapshot)


class Observation(NamedTuple):
    """What the rules' actions read about the decision being made (built once per decision)."""

    request: DecisionRequest
    criteria: Criteria

    @classmethod
    def of(cls, request: DecisionRequest) -> Observation:
        """The request, with its criteria not yet evaluated."""
        return cls(request, Criteria(request.contact))


def input_facts(seen: Observation, catalog: Catalog, policies: Policies) -> list[Fact]:
    """The first stratum: the occurrence, the contact, and each running journey."""
    request = seen.request
    actives = [_active_fact(a, catalog, seen.criteria, request) for a in request.active_enrollments]
    return [
        _occurrence_fact(request, catalog, policies),
        _contact_fact(request, policies),
        *actives,
    ]


def hold_lists(request: DecisionRequest, policies: Policies) -> list[str]:
    """The hold lists (``policies.hold.lists``) the contact is on, sorted."""
    return sorted(set(policies.hold.lists) & request.contact.lists)


def _contact_fact(request: DecisionRequest, policies: Policies) -> Fact:
    """Consent, deliverability, competitor flag, stage, days since sales activity, the
    suppression and hold lists the contact is on, and whether an opportunity is open."""
    consent = request.consent
    ago = -1.0
    if request.last_sales_activity_at is not None:
        seconds = (request.now - request.last_sales_activity_at).total_seconds()
        ago = max(0.0, seconds / DAY_SECONDS)
    holds = hold_lists(request, policies)
    return fact(
        "contact",
        "now",
        subscribed=consent.subscribed,
        unsubscribed=consent.unsubscribed,
        gdpr_refused=consent.gdpr_consent is False,
        ccpa_opt_out=consent.ccpa_opt_out,
        hard_bounced=request.hard_bounced,
        spam_complaint=request.spam_complaint,
        competitor=request.is_competitor,
        stage=request.contact.stage,
        sales_days_ago=round(ago, 6),
        suppression_lists=", ".join(sorted(request.suppression_lists)),
        hold_lists=", ".join(holds),
        on_hold=bool(holds),
        opportunity_open=request.contact.traits.get(OPPORTUNITY_OPEN_TRAIT) is True,
    )


def _journey_fields(
    name: str, version: int, priority: int, group: str, journey: CompiledJourney | None
) -> dict[str, Any]:
    """What every rule compares about a journey; an unknown one is marketing, not acquisition."""
    return {
        "journey": name,
        "version": version,
        "priority": priority,
        "group": group,
        "category": journey.category if journey else "",
        "marketing": journey.spec.marketing if journey else True,
        "acquisition": journey.spec.acquisition if journey else False,
    }


def _active_fact(
    active: ActiveEnrollment, catalog: Catalog, criteria: Criteria, request: DecisionRequest
) -> Fact:
    """A running journey as pinned (version, priority, group), with its version's attributes;
    a paused one says whether what paused it still holds it."""
    journey = catalog.definition(active.journey, active.version)
    group = active.exclusivity_group or ""
    return fact(
        "active",
        active.journey,
        **_journey_fields(active.journey, active.version, active.priority, group, journey),
        paused=active.paused,
        held=_held(active, request),
        exit_met=journey is not None and criteria.holds(journey.spec.exit, default=False),
    )


def _held(paused: ActiveEnrollment, request: DecisionRequest) -> bool:
    """A paused journey stays paused while a running journey of its group outranks it, while
    the journey that pre-empted it runs, and (a hand-raiser's pause) while sales has the lead.
    A hold list holds every journey on its own (the contact fact's ``on_hold``)."""
    if not paused.paused:
        return False
    others = [a for a in request.active_enrollments if a.journey != paused.journey]
    group = paused.exclusivity_group
    if group and any(
        not a.paused and a.exclusivity_group == group and a.priority > paused.priority
        for a in others
    ):
        return True
    if paused.paused_by == "hand-raiser":
        return request.handoff_open
    return any(a.journey == paused.paused_by for a in others)


def _occurrence_fact(request: DecisionRequest, catalog: Catalog, policies: Policies) -> Fact:
    """The triggering occurrence, flattened for pattern matching."""
    occurrence = request.occurrence
    flat = fact("occurrence", "now", kind=occurrence.kind)
    if isinstance(occurrence, EventOccurred):
        flat["name"] = occurrence.name
        if occurrence.name == ENROLL_REQUEST_EVENT:
            flat["requested"] = str(occurrence.properties.get("journey") or "")
        for key, kind in catalog.filters:
            form = value_form(occurrence.properties.get(key), kind)
            if form is None:
                continue
            field_name = catalog.property_fields.get(field_key(key, kind, form))
            if field_name is not None and exact(form):  # else no trigger could equal it
                flat[field_name] = form
    elif isinstance(occurrence, ListEntered):
        flat["list"] = occurrence.list
    elif isinstance(occurrence, StageEntered):
        flat["stage"] = occurrence.stage
    elif isinstance(occurrence, SendRequested):
        flat.update(_send_fields(request, occurrence, catalog, policies))
    return flat


def _send_fields(
    request: DecisionRequest, send: SendRequested, catalog: Catalog, policies: Policies
) -> dict[str, Any]:
    """Marketing or not, sends already in the cap window, and the contact's local time."""
    pinned = next((a for a in request.active_enrollments if a.journey == send.journey), None)
    journey = catalog.definition(send.journey, pinned.version if pinned else None)
    local = request.now.astimezone(ZoneInfo(request.time_zone))
    window = policies.frequency_cap.in_window(request.now, request.recent_marketing_sends)
    return {
        "journey": send.journey,
        "step": send.step,
        "channel": send.channel,
        "transactional": send.transactional,
        "marketing": not send.transactional and (journey.spec.marketing if journey else True),
        "sends_in_window": len(window),
        "time_zone": request.time_zone,
        "local_time": f"{local:%H:%M}",
        "local_minute": local.hour * 60 + local.minute,
    }


def triggered_fact(seen: Observation, journey: CompiledJourney) -> Fact:
    """A journey whose trigger fired: criteria now, plus what re-enrollment policies compare."""
    request, spec = seen.request, journey.spec
    active = next((a for a in request.active_enrollments if a.journey == spec.name), None)
    entries = [p.enrolled_at for p in request.past_enrollments if p.journey == spec.name]
    entries += [a.enrolled_at for a in request.active_enrollments if a.journey == spec.name]
    since = -1.0
    if entries:
        since = max(0.0, (request.now - max(entries)).total_seconds() / DAY_SECONDS)
    return fact(
        "triggered",
        spec.name,
        **_journey_fields(spec.name, spec.version, journey.priority, journey.group, journey),
        active=active is not None,
        active_version=active.version if active else 0,
        entry_ok=seen.criteria.holds(spec.entry, default=True),
        exit_met=seen.criteria.holds(spec.exit, default=False),
        reenrollment=spec.reenrollment if isinstance(spec.reenrollment, str) else "per_days",
        past_entries=len(entries),
        days_since_last=round(since, 6),
    )


def contest_facts(session: Session[Observation]) -> list[Fact]:
    """The second stratum: survivors and running journeys of every contested group.

    Survivors are journeys that triggered and were not vetoed; a group is contested when it
    has more than one contender. Paused journeys and journeys leaving do not hold a group.
    """
    vetoed = {f["journey"] for f in session.of_type("veto")}
    survivors = [f for f in session.of_type("triggered") if f["journey"] not in vetoed]
    if not any(f["group"] for f in survivors):
        return []
    leaving = {f["journey"] for f in session.of_type("exit") + session.of_type("pause")}
    staying = [
        a
        for a in session.context.request.active_enrollments
        if not a.paused and a.journey not in leaving and a.exclusivity_group
    ]
    groups = [f["group"] for f in survivors if f["group"]]
    groups += [a.exclusivity_group for a in staying]
    contested = {g for g in groups if groups.count(g) > 1}
    facts = [
        fact(
            "survivor", f["journey"], journey=f["journey"], group=f["group"], priority=f["priority"]
        )
        for f in survivors
        if f["group"] in contested
    ]
    facts += [
        fact(
            "staying", a.journey, journey=a.journey, group=a.exclusivity_group, priority=a.priority
        )
        for a in staying
        if a.exclusivity_group in contested
    ]
    return facts
