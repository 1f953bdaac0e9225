"""Pure state transitions of one contact: apply events, promote stages, fire wakeups.

The contact workflow changes its state only through this package (here; decisions in
``contacts.enrollments``; children's requests in ``contacts.requests`` and
``contacts.handoff``), so the same rules can be tested without Temporal and stay
deterministic (no clocks: ``now`` is always passed in).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from audience.consent import addresses_subscription, says_something, update_consent
from audience.demand_states import DemandStateEntry, evaluate_demand_state
from audience.facts import ContactFacts, EventRecord
from audience.lists import MembershipResult, diff_memberships, evaluate_memberships
from contacts.behaviour import RELEASED, Behaviour
from contacts.contract import ContactConfig, ContactState, Explanation, Renurture, Scores, Wakeup
from contacts.enrollments import active_enrollments, past_enrollments
from contacts.recycling import (
    Fired,
    cancel_recycle,
    fire_recycles,
    pending_recycle,
    schedule_recycle,
)
from lifecycle.recycle import CLOSED_LOST, SCORE_DROP
from lifecycle.stages import OPPORTUNITY_OPEN_TRAIT, Stage, StageEntry
from models.changes import ListChange, ScoreSnapshot
from models.decisions import (
    ConsentFacts,
    DecisionRequest,
    EventOccurred,
    ListEntered,
    Occurrence,
    Review,
    StageEntered,
)
from models.events import ContactEvent
from scoring.model import GateResult, ScoreCard, compute_scores, evaluate_gate

__all__ = [
    "SEEN_IDS_KEPT",
    "Changes",
    "apply_events",
    "decision_base",
    "derive",
    "explain_now",
    "facts_of",
    "fire_due",
    "fire_due_wakeups",
    "mark_merged",
    "needs_review",
    "next_run",
    "next_wakeup",
    "occurrences_of",
    "override_stage",
    "promote",
    "set_static_membership",
]

SEEN_IDS_KEPT = 5000
"""How many recent messageIds a contact remembers (across continue-as-new) to drop repeats."""

SALES_TOUCHES = frozenset(
    {
        "Sales Email Sent",
        "Sales Call Logged",
        "Meeting Booked",
        "Lead Accepted",
        "Opportunity Created",
    }
)
"""Sales activity that suppresses marketing for a while (the rules' sales-active window)."""


@dataclass
class Changes:
    """What one step changed, for the store and the search attributes."""

    stage_entries: list[StageEntry] = field(default_factory=list)
    score: ScoreSnapshot | None = None
    list_changes: list[ListChange] = field(default_factory=list)
    demand_states: list[DemandStateEntry] = field(default_factory=list)
    applied: int = 0
    duplicates: int = 0
    applied_events: list[ContactEvent] = field(default_factory=list)

    @property
    def stage_changed(self) -> bool:
        """True when a stage was entered."""
        return bool(self.stage_entries)


def promote(state: ContactState, stage: Stage, at: datetime, reason: str, changes: Changes) -> bool:
    """Enter ``stage`` if it is above the current one (promotion only)."""
    if state.stage is not None and stage.rank <= state.stage.rank:
        return False
    entry = StageEntry(stage=stage, at=at, reason=reason)
    state.stage = stage
    state.stage_history.append(entry)
    changes.stage_entries.append(entry)
    return True


def override_stage(
    state: ContactState, stage: Stage, at: datetime, reason: str, actor: str
) -> StageEntry:
    """A manual stage change, up or down, kept in the history as an override."""
    entry = StageEntry(
        stage=stage, at=at, reason=f"manual override by {actor}: {reason}", override=True
    )
    state.stage = stage
    state.stage_history.append(entry)
    return entry


def apply_events(
    state: ContactState,
    events: Sequence[ContactEvent],
    config: ContactConfig,
    now: datetime,
    behaviour: Behaviour = RELEASED,
) -> Changes:
    """Apply new events in timestamp order, skipping messageIds seen before."""
    changes = Changes()
    seen = set(state.seen_message_ids)
    for event in sorted(events, key=lambda e: (e.timestamp, e.message_id)):
        if event.message_id in seen:
            changes.duplicates += 1
            continue
        seen.add(event.message_id)
        state.seen_message_ids.append(event.message_id)
        _apply_one(state, event, config, now, changes, behaviour)
        changes.applied += 1
        changes.applied_events.append(event)
    del state.seen_message_ids[:-SEEN_IDS_KEPT]
    _prune_events(state, config, now)
    return changes


def _apply_one(
    state: ContactState,
    event: ContactEvent,
    config: ContactConfig,
    now: datetime,
    changes: Changes,
    behaviour: Behaviour,
) -> None:
    state.events_applied += 1
    state.event_counts[event.name] = state.event_counts.get(event.name, 0) + 1
    if state.last_event_at is None or event.timestamp > state.last_event_at:
        state.last_event_at = event.timestamp
    record = EventRecord(name=event.name, at=event.timestamp, properties=event.properties)
    bisect.insort(state.events, record, key=lambda r: r.at)
    if event.traits:
        state.traits.update(event.traits)
    if event.account_id:
        state.account_id = event.account_id
    _apply_consent(state, event, now)
    rules = config.lifecycle
    target = rules.stage_for(event.name)
    if target is not None:
        promote(state, target, now, event.name, changes)
    elif state.stage is None:
        promote(state, rules.initial_stage, now, f"first seen: {event.name}", changes)
    if event.name == rules.closed_lost_event:
        if behaviour.recycle_policy and config.recycle is not None:
            reason = str(event.properties.get("reason") or "") or None
            words = f"closed lost: {reason or 'no reason given'}"
            schedule_recycle(state, config.recycle, CLOSED_LOST, reason, words, now)
        else:
            _schedule_recycle(state, event, config, now)
    if behaviour.open_opportunity:
        _track_opportunity(state, event.name, target, rules.closed_lost_event)
    if event.kind == "sales" and event.name in SALES_TOUCHES:
        latest = state.last_sales_activity_at
        state.last_sales_activity_at = max(latest, event.timestamp) if latest else event.timestamp


def _track_opportunity(
    state: ContactState, name: str, target: Stage | None, closed_lost_event: str
) -> None:
    """An event promoting to Opportunity opens one; closed lost or a customer stage closes it."""
    if target == Stage.OPPORTUNITY:
        state.traits[OPPORTUNITY_OPEN_TRAIT] = True
    elif state.traits.get(OPPORTUNITY_OPEN_TRAIT) and (
        name == closed_lost_event or (target is not None and target.rank > Stage.OPPORTUNITY.rank)
    ):
        state.traits[OPPORTUNITY_OPEN_TRAIT] = False


def _apply_consent(state: ContactState, event: ContactEvent, now: datetime) -> None:
    """Consent rules live in audience.consent (the store's copy applies the same ones)."""
    if not says_something(event.name, event.properties, event.traits):
        return
    update_consent(state.consent, event.name, event.properties, event.traits, now)
    if addresses_subscription(event.name, event.properties, event.traits):
        state.traits["unsubscribed"] = not state.consent.subscribed  # scoring's negative rule


def _schedule_recycle(
    state: ContactState, event: ContactEvent, config: ContactConfig, now: datetime
) -> None:
    reason = str(event.properties.get("reason") or "no reason given")
    at = now + timedelta(days=config.lifecycle.recycle_after_days)
    state.wakeups = [w for w in state.wakeups if w.kind != "recycle"]
    state.wakeups.append(Wakeup(at=at, kind="recycle", reason=f"closed lost: {reason}"))


def _prune_events(state: ContactState, config: ContactConfig, now: datetime) -> None:
    horizon = now - timedelta(days=config.event_window_days)
    cut = bisect.bisect_left(state.events, horizon, key=lambda r: r.at)
    extra = max(0, len(state.events) - cut - config.max_events_kept)
    del state.events[: cut + extra]


def mark_merged(state: ContactState, survivor: str) -> None:
    """An alias merged this contact into ``survivor``: its workflow completes."""
    state.merged_into = survivor


def next_run(state: ContactState) -> ContactState:
    """The state a continue-as-new carries into the next run."""
    state.runs += 1
    return state


def next_wakeup(state: ContactState) -> datetime | None:
    """The earliest pending wakeup or re-evaluation (decay, window expiry), or None."""
    moments = [w.at for w in state.wakeups]
    if state.next_evaluation_at is not None:
        moments.append(state.next_evaluation_at)
    return min(moments, default=None)


def fire_due(
    state: ContactState, now: datetime, config: ContactConfig, behaviour: Behaviour = RELEASED
) -> Fired:
    """Every wakeup due at ``now``: by the recycle policy when the contact recycles by it,
    else as 1.0.0 did (to the re-nurture list)."""
    if behaviour.recycle_policy and config.recycle is not None:
        return fire_recycles(state, now, config.renurture_list)
    return Fired(wakeups=fire_due_wakeups(state, now, config.renurture_list))


def fire_due_wakeups(
    state: ContactState, now: datetime, renurture_list: str | None = None
) -> list[Wakeup]:
    """Run every wakeup whose time has come; returns those fired."""
    due = [w for w in state.wakeups if w.at <= now]
    state.wakeups = [w for w in state.wakeups if w.at > now]
    for wakeup in due:
        if wakeup.kind == "recycle":
            state.renurture = Renurture(
                since=now, reason=f"recycled to nurture after {wakeup.reason}"
            )
            if renurture_list:
                _set_static(state, renurture_list, member=True)
    return due


# ---- derived facts: scores, lists, demand state, the MQL gate --------------------------------


def facts_of(state: ContactState, now: datetime) -> ContactFacts:
    """The snapshot every condition and rule evaluates, from the live state."""
    scores = state.scores
    return ContactFacts(
        contact_id=state.contact_id,
        now=now,
        traits=state.traits,
        scores=(
            {
                "fit": scores.fit,
                "engagement": scores.engagement,
                "engagement_recent": scores.engagement_recent,
            }
            if scores
            else {}
        ),
        stage=state.stage.value if state.stage else Stage.SUBSCRIBER.value,
        lists=frozenset(state.lists),
        demand_state=state.demand_state,
        events=state.events,
        account=state.account,
    )


def derive(
    state: ContactState,
    config: ContactConfig,
    now: datetime,
    changes: Changes,
    cause: str,
    behaviour: Behaviour = RELEASED,
) -> None:
    """Recompute scores, lists, demand state and the MQL gate; record what changed.

    Order matters: scores first (lists may test them), then lists (segment gates select by
    list), then demand state (may test lists), then the gate, which may promote the contact
    in this same step, so an MQL is declared in the workflow task of the qualifying event.
    """
    facts = facts_of(state, now)
    card = compute_scores(config.scoring, facts) if config.scoring else None
    if card is not None:
        facts = facts.model_copy(
            update={
                "scores": {
                    "fit": card.fit,
                    "engagement": card.engagement,
                    "engagement_recent": card.engagement_recent,
                }
            }
        )
    membership = _update_lists(state, config, facts, now, changes)
    facts = facts.model_copy(update={"lists": membership.members})
    demand_next = _update_demand_state(state, config, facts, now, changes)
    gate = evaluate_gate(config.scoring, card, facts) if config.scoring and card else None
    if card is not None:
        _update_scores(state, card, gate, changes, cause)
    if gate is not None and card is not None:
        statics = list(state.static_lists)
        _apply_gate(state, config, card, gate, now, changes, behaviour)
        if changes.stage_changed or statics != state.static_lists:  # let lists see it
            facts = facts.model_copy(update={"stage": state.stage.value if state.stage else ""})
            membership = _update_lists(state, config, facts, now, changes)
    state.next_evaluation_at = min(
        (
            m
            for m in (card.next_decay_at if card else None, membership.next_change_at, demand_next)
            if m
        ),
        default=None,
    )


def _update_scores(
    state: ContactState, card: ScoreCard, gate: GateResult | None, changes: Changes, cause: str
) -> None:
    new = Scores(
        fit=round(card.fit, 2),
        engagement=round(card.engagement, 2),
        engagement_recent=round(card.engagement_recent, 2),
        model_version=card.model_version,
        top_behaviours=list(card.top_behaviours),
        segment=gate.segment if gate else None,
        gate=gate.reason if gate else "",
        computed_at=card.computed_at,
    )
    old = state.scores
    moved = old is None or (old.fit, old.engagement, old.engagement_recent, old.model_version) != (
        new.fit,
        new.engagement,
        new.engagement_recent,
        new.model_version,
    )
    state.scores = new
    if moved:
        changes.score = ScoreSnapshot(
            at=card.computed_at,
            fit=new.fit,
            engagement=new.engagement,
            engagement_recent=new.engagement_recent,
            model_version=new.model_version,
            top_behaviours=new.top_behaviours,
            cause=cause,
        )


def _update_lists(
    state: ContactState, config: ContactConfig, facts: ContactFacts, now: datetime, changes: Changes
) -> MembershipResult:
    if config.lists is None:
        return MembershipResult(members=frozenset(state.static_lists), next_change_at=None)
    result = evaluate_memberships(config.lists, facts, frozenset(state.static_lists))
    entered, left = diff_memberships(frozenset(state.lists), result.members)
    for name in entered:
        state.list_since[name] = now
        changes.list_changes.append(ListChange(list_name=name, at=now, entered=True))
    for name in left:
        state.list_since.pop(name, None)
        changes.list_changes.append(ListChange(list_name=name, at=now, entered=False))
    state.lists = sorted(result.members)
    return result


def _update_demand_state(
    state: ContactState, config: ContactConfig, facts: ContactFacts, now: datetime, changes: Changes
) -> datetime | None:
    if config.demand_states is None:
        return None
    result = evaluate_demand_state(config.demand_states, facts)
    if result.state is not None and result.state != state.demand_state:
        entry = DemandStateEntry(state=result.state, at=now, previous=state.demand_state)
        state.demand_history.append(entry)
        changes.demand_states.append(entry)
        state.demand_state = result.state
    return result.next_change_at


def _apply_gate(
    state: ContactState,
    config: ContactConfig,
    card: ScoreCard,
    gate: GateResult,
    now: datetime,
    changes: Changes,
    behaviour: Behaviour,
) -> None:
    """Promote on a passed gate; a contact past MQL whose score falls is recycled."""
    if gate.qualifies is not None:
        target = Stage(gate.qualifies)
        breakdown = (
            f"fit {card.fit:.0f}, engagement {card.engagement:.0f} "
            f"({card.engagement_recent:.0f} recent), model {card.model_version}"
        )
        promote(state, target, now, f"{gate.reason} [{breakdown}]", changes)
        if behaviour.recycle_policy:
            cancel_recycle(state, SCORE_DROP)
        if state.renurture is not None and _score_fell(state.renurture.reason):
            state.renurture = None
            _set_static(state, config.renurture_list, member=False)
        return
    at_risk = state.stage in (Stage.MQL, Stage.SAL)
    if not at_risk or state.renurture is not None:
        return
    reason = f"score fell below the gate after {state.stage}: {gate.reason}"
    if behaviour.recycle_policy and config.recycle is not None:
        if pending_recycle(state, SCORE_DROP) is None:
            schedule_recycle(state, config.recycle, SCORE_DROP, None, reason, now)
        return
    state.renurture = Renurture(since=now, reason=reason)
    _set_static(state, config.renurture_list, member=True)


def _score_fell(reason: str) -> bool:
    """A re-nurture a returning score undoes (1.0.0 wording, and the recycled one)."""
    return reason.startswith(("score fell", "recycled after score fell"))


def _set_static(state: ContactState, list_name: str, *, member: bool) -> None:
    lists = set(state.static_lists)
    if member:
        lists.add(list_name)
    else:
        lists.discard(list_name)
    state.static_lists = sorted(lists)


def set_static_membership(state: ContactState, list_name: str, *, member: bool) -> None:
    """Add to or remove from a static list (CLI, API or a journey's ``set`` step)."""
    _set_static(state, list_name, member=member)


def explain_now(state: ContactState, config: ContactConfig, now: datetime) -> Explanation:
    """The score card and gate decision at ``now`` (read-only: used by the ``explain`` query)."""
    if config.scoring is None:
        return Explanation(at=now)
    facts = facts_of(state, now)
    card = compute_scores(config.scoring, facts)
    return Explanation(at=now, card=card, gate=evaluate_gate(config.scoring, card, facts))


# ---- what the rules module needs --------------------------------------------------------------

COMPETITOR_LIST = "Competitors"
BOUNCE_EVENT = "Email Bounced"
COMPLAINT_EVENT = "Spam Complaint"


def decision_base(state: ContactState, now: datetime) -> DecisionRequest:
    """The facts every decision about this contact starts from (occurrence filled per call)."""
    facts = facts_of(state, now)
    consent = state.consent
    zone = state.traits.get("timezone")
    return DecisionRequest(
        contact=facts,
        time_zone=zone if isinstance(zone, str) and _known_zone(zone) else "UTC",
        consent=ConsentFacts(
            subscribed=consent.subscribed,
            unsubscribed=consent.unsubscribed_at is not None,
            gdpr_consent=consent.gdpr_consent,
            ccpa_opt_out=consent.ccpa_opt_out,
        ),
        hard_bounced=state.event_counts.get(BOUNCE_EVENT, 0) > 0,
        spam_complaint=state.event_counts.get(COMPLAINT_EVENT, 0) > 0,
        is_competitor=COMPETITOR_LIST in state.lists,
        active_enrollments=active_enrollments(state),
        past_enrollments=past_enrollments(state),
        last_sales_activity_at=state.last_sales_activity_at,
        handoff_open=state.handoff is not None and state.handoff.outcome is None,
        occurrence=Review(),
    )


def _known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def needs_review(
    state: ContactState, changes: Changes, asked: bool, behaviour: Behaviour = RELEASED
) -> bool:
    """Whether the rules should look at the contact again when nothing else happened:
    ``asked`` (a timer fired, definitions were reloaded, a journey or the handoff ended while
    journeys are paused), or a list was left while journeys are paused (a hold list, maybe)."""
    if asked or not behaviour.resume_paused:
        return asked
    left = any(not change.entered for change in changes.list_changes)
    return left and any(e.paused for e in state.enrollments)


def occurrences_of(changes: Changes) -> list[Occurrence]:
    """What happened in a step that may enroll, exit or suppress, in order."""
    found: list[Occurrence] = []
    for entry in changes.stage_entries:
        found.append(StageEntered(stage=entry.stage.value))
    for change in changes.list_changes:
        if change.entered:
            found.append(ListEntered(list=change.list_name))
    for event in changes.applied_events:
        found.append(EventOccurred(name=event.name, properties=event.properties))
    return found
