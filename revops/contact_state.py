"""Pure state transitions of one contact: apply events, promote stages, fire wakeups.

The contact workflow calls these and nothing else to change its state, so the same rules can
be tested without Temporal and stay deterministic (no clocks: ``now`` is always passed in).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from models.contact import (
    ContactConfig,
    ContactState,
    Renurture,
    Stage,
    StageEntry,
    Wakeup,
)
from models.events import ContactEvent
from models.facts import EventRecord

__all__ = [
    "SEEN_IDS_KEPT",
    "Changes",
    "apply_events",
    "fire_due_wakeups",
    "next_wakeup",
    "override_stage",
    "promote",
]

SEEN_IDS_KEPT = 5000
"""How many recent messageIds a contact remembers (across continue-as-new) to drop repeats."""

UNSUBSCRIBE_EVENTS = frozenset({"Unsubscribed", "Email Unsubscribed"})
RESUBSCRIBE_EVENTS = frozenset({"Resubscribed", "Subscribed"})


@dataclass
class Changes:
    """What one step changed, for the store and the search attributes."""

    stage_entries: list[StageEntry] = field(default_factory=list)
    applied: int = 0
    duplicates: int = 0

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
    state: ContactState, events: Sequence[ContactEvent], config: ContactConfig, now: datetime
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
        _apply_one(state, event, config, now, changes)
        changes.applied += 1
    del state.seen_message_ids[:-SEEN_IDS_KEPT]
    _prune_events(state, config, now)
    return changes


def _apply_one(
    state: ContactState, event: ContactEvent, config: ContactConfig, now: datetime, changes: Changes
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
        _schedule_recycle(state, event, config, now)


def _apply_consent(state: ContactState, event: ContactEvent, now: datetime) -> None:
    consent = state.consent
    traits = event.traits
    if event.name in UNSUBSCRIBE_EVENTS or traits.get("unsubscribed") is True:
        consent.subscribed = False
        consent.unsubscribed_at = consent.unsubscribed_at or now
    elif event.name in RESUBSCRIBE_EVENTS or traits.get("unsubscribed") is False:
        consent.subscribed = True
        consent.unsubscribed_at = None
    if isinstance(traits.get("gdpr_consent"), bool):
        consent.gdpr_consent = traits["gdpr_consent"]
    if isinstance(traits.get("ccpa_opt_out"), bool):
        consent.ccpa_opt_out = traits["ccpa_opt_out"]


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


def next_wakeup(state: ContactState) -> datetime | None:
    """The earliest pending wakeup, or None."""
    return min((w.at for w in state.wakeups), default=None)


def fire_due_wakeups(state: ContactState, now: datetime) -> list[Wakeup]:
    """Run every wakeup whose time has come; returns those fired."""
    due = [w for w in state.wakeups if w.at <= now]
    state.wakeups = [w for w in state.wakeups if w.at > now]
    for wakeup in due:
        if wakeup.kind == "recycle":
            state.renurture = Renurture(
                since=now, reason=f"recycled to nurture after {wakeup.reason}"
            )
    return due
