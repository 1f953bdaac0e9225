"""Recycling a contact sales is not working: schedule it by the recycle policy, fire it on time.

A cause (score fell after MQL, rejected by sales, closed lost, a journey's ``recycle`` step)
looks up its rule in the pinned ``RecyclePolicy``: after the rule's delay (a ``Wakeup``, which
the contact workflow keeps as a durable timer) the contact goes to a list or is proposed to
the rules for a journey. One recycle per cause is pending at a time; a newer one replaces it.
The stage never changes. Pure: ``now`` is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from contacts.contract import ContactState, Renurture, Wakeup
from lifecycle.recycle import RecyclePolicy
from models.decisions import ENROLL_REQUEST_EVENT, EventOccurred, ListEntered, Occurrence

__all__ = ["Fired", "cancel_recycle", "fire_recycles", "pending_recycle", "schedule_recycle"]


def schedule_recycle(
    state: ContactState,
    policy: RecyclePolicy,
    cause: str,
    reason: str | None,
    words: str,
    now: datetime,
) -> Wakeup | None:
    """Keep the recycle ``cause`` (with ``reason``) asks for; None when the policy has no rule
    for the cause. ``words`` say why, for ``contacts show`` and the decision log."""
    rule = policy.rule(cause, reason)
    if rule is None:
        return None
    wakeup = Wakeup(
        at=now + rule.delay,
        kind="recycle",
        reason=words,
        cause=cause,
        to_list=rule.to.list_,
        to_journey=rule.to.journey,
    )
    state.wakeups = [w for w in state.wakeups if w.cause != cause] + [wakeup]
    return wakeup


def pending_recycle(state: ContactState, cause: str) -> Wakeup | None:
    """The recycle of ``cause`` waiting for its moment, if any."""
    return next((w for w in state.wakeups if w.kind == "recycle" and w.cause == cause), None)


def cancel_recycle(state: ContactState, cause: str) -> None:
    """Drop a pending recycle (the score came back before it was due)."""
    state.wakeups = [w for w in state.wakeups if w.cause != cause]


@dataclass
class Fired:
    """Recycles that came due, and what the rules must decide about them."""

    wakeups: list[Wakeup] = field(default_factory=list)
    occurrences: list[Occurrence] = field(default_factory=list)


def fire_recycles(state: ContactState, now: datetime, renurture_list: str) -> Fired:
    """Every recycle due at ``now``: onto its list (entered again if it was on it already, so
    the list's journey is decided again) or proposed for its journey. A recycle kept by 1.0.0
    (no destination) goes to ``renurture_list``."""
    fired = Fired(wakeups=[w for w in state.wakeups if w.at <= now])
    state.wakeups = [w for w in state.wakeups if w.at > now]
    for wakeup in fired.wakeups:
        state.renurture = Renurture(since=now, reason=f"recycled after {wakeup.reason}")
        if wakeup.to_journey is not None:
            asked = {"journey": wakeup.to_journey, "reason": f"recycled: {wakeup.reason}"}
            fired.occurrences.append(EventOccurred(name=ENROLL_REQUEST_EVENT, properties=asked))
            continue
        target = wakeup.to_list or renurture_list
        if target in state.static_lists:
            fired.occurrences.append(ListEntered(list=target))
        state.static_lists = sorted({*state.static_lists, target})
    return fired
