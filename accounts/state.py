"""Pure transitions of one account: merge member updates, derive what members see, decide the
account play.

The account workflow changes its state only through these functions, so they are tested
without Temporal and stay deterministic (``now`` is always passed in). Merging is order-free:
a member's facts come from its highest ``seq``, its latest engagement is the latest behaviour
any update carried, so the account's counts equal those computed from the members' histories
whatever order the updates arrive in.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta

from accounts.contract import AccountAlert, AccountState, MemberRecord, MemberUpdate
from audience.accounts import AccountsConfig
from audience.conditions import default_demand_state_order
from audience.facts import COMMITTEE_ROLES, AccountFacts, EngagedMember
from lifecycle.stages import STAGES

__all__ = [
    "ENGAGED_SENT",
    "RECENT_KEPT",
    "PlayStart",
    "account_facts",
    "apply_updates",
    "broadcast_step",
    "condition_key",
    "engaged_members",
    "next_wakeup",
    "play_step",
    "refresh_due",
    "visible_key",
]

RECENT_KEPT = 5
"""Engaging behaviours kept per member (who engaged and how, for alerts)."""
ENGAGED_SENT = 50
"""At most this many engaged members travel to the members (the most recent ones)."""

_OWNER_KEYS = ("owner", "account_owner", "owner_id")
_NAME_KEYS = ("name", "company")


def apply_updates(state: AccountState, updates: Sequence[MemberUpdate]) -> set[str]:
    """Merge member updates (any order; repeats are harmless); returns the members whose
    record changed or who left (what the store needs to hear, without copying every member)."""
    changed: set[str] = set()
    for update in updates:
        if _apply(state, update):
            changed.add(update.member)
    state.updates_applied += len(updates)
    return changed


def _apply(state: AccountState, update: MemberUpdate) -> bool:
    if update.account_traits:
        state.traits.update(update.account_traits)
    member = update.member
    gone = state.departed.get(member)
    record = state.members.get(member)
    if gone is not None and update.seq <= gone:
        return bool(update.account_traits)
    if update.left:
        if record is not None and update.seq < record.seq:
            return bool(update.account_traits)
        state.members.pop(member, None)
        state.departed[member] = update.seq
        return True
    state.departed.pop(member, None)
    if record is None:
        record = MemberRecord(seq=update.seq, joined_at=update.at, via=update.via)
        state.members[member] = record
    if update.seq >= record.seq:
        record.seq = update.seq
        record.via = update.via
        record.stage = update.stage
        record.fit = update.fit
        record.engagement = update.engagement
        record.demand_state = update.demand_state
        record.role = update.role
        record.executive = update.executive
    for behaviour in update.behaviours:
        if record.last_engaged_at is None or behaviour.at > record.last_engaged_at:
            record.last_engaged_at = behaviour.at
        if behaviour not in record.recent:
            record.recent.append(behaviour)
    record.recent.sort(key=lambda b: (b.at, b.name))
    del record.recent[:-RECENT_KEPT]
    return True


def engaged_members(
    state: AccountState, config: AccountsConfig, now: datetime
) -> list[tuple[str, MemberRecord]]:
    """Members whose latest engagement is inside the window at ``now``, oldest first."""
    window = timedelta(days=config.engagement.window_days)
    found = [
        (member, record)
        for member, record in state.members.items()
        if record.last_engaged_at is not None
        and record.last_engaged_at <= now < record.last_engaged_at + window
    ]
    return sorted(found, key=lambda pair: (pair[1].last_engaged_at or now, pair[0]))


def _furthest(values: Sequence[str | None], order: Sequence[str]) -> str | None:
    rank = {name: i for i, name in enumerate(order)}
    known = [v for v in values if v is not None and v in rank]
    return max(known, key=lambda v: rank[v], default=None)


def _trait(state: AccountState, keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = state.traits.get(key)
        if isinstance(value, str | int) and str(value).strip():
            return str(value)
    return None


def account_facts(state: AccountState, config: AccountsConfig, now: datetime) -> AccountFacts:
    """What members' conditions see of the account at ``now``."""
    engaged = engaged_members(state, config, now)
    records = list(state.members.values())
    roles = {r.role for r in records if r.role is not None}
    domain = state.key.removeprefix("domain:") if state.key.startswith("domain:") else None
    return AccountFacts(
        account_id=state.account_id,
        name=_trait(state, _NAME_KEYS),
        domain=domain or _trait(state, ("account_domain",)),
        traits=dict(state.traits),
        owner=_trait(state, _OWNER_KEYS),
        engaged=[
            EngagedMember(member=m, at=r.last_engaged_at, role=r.role, executive=r.executive)
            for m, r in engaged[-ENGAGED_SENT:]
            if r.last_engaged_at is not None
        ],
        committee=[role for role in COMMITTEE_ROLES if role in roles],
        scores={
            "fit": round(max((r.fit for r in records), default=0.0), 2),
            "engagement": round(min(100.0, sum(r.engagement for r in records)), 2),
            "engaged_contacts": float(len(engaged)),
        },
        demand_state=_furthest([r.demand_state for r in records], default_demand_state_order()),
        stage=_furthest([r.stage for r in records], STAGES),
        priority="high" if any(r.executive for _, r in engaged) else "normal",
        members=len(records),
    )


def visible_key(facts: AccountFacts) -> str:
    """What members are told, with engagement times to the day: a member engaging again the
    same day changes nothing they see (windows are days long), so it is not broadcast."""
    body = facts.model_dump(mode="json", exclude={"engaged"})
    body["engaged"] = [
        [m.member, m.at.date().isoformat(), m.role, m.executive] for m in facts.engaged
    ]
    return json.dumps(body, sort_keys=True, default=str)


def condition_key(facts: AccountFacts) -> str:
    """What members' conditions and routing read of the account, without engagement times
    and the member count (the ``accounts-fanin-broadcast`` patch): traits, owner, committee,
    scores, demand state, stage, priority and who is engaged with their roles (in no order:
    the engaged are listed by time). A member engaging again changes none of it;
    ``refresh_due`` says when its time must travel."""
    body = facts.model_dump(mode="json", exclude={"engaged", "members"})
    body["engaged"] = sorted([m.member, m.role, m.executive] for m in facts.engaged)
    return json.dumps(body, sort_keys=True, default=str)


def refresh_due(state: AccountState, config: AccountsConfig) -> datetime | None:
    """When members must next hear engagement times: the earliest moment an engaged member's
    heard engagement is ``config.refresh`` old while it has engaged since (else members would
    see it leave the window while it is still engaged)."""
    moments = [
        heard + config.refresh
        for member, heard in state.told.items()
        if (record := state.members.get(member)) is not None
        and record.last_engaged_at is not None
        and record.last_engaged_at > heard
    ]
    return min(moments, default=None)


class PlayStart:
    """An account play starting now, with its alert."""

    def __init__(self, alert: AccountAlert) -> None:
        self.alert = alert


def play_step(
    state: AccountState, facts: AccountFacts, config: AccountsConfig, now: datetime
) -> PlayStart | None:
    """Start the account play when enough members engage in the window (once per episode:
    the episode ends when the count falls below the threshold again)."""
    threshold = config.play.engaged_contacts
    state.priority = facts.priority
    if len(facts.engaged) < threshold:
        state.play_active = False
        return None
    if state.play_active:
        return None
    state.play_active = True
    state.play_started_at = now
    state.plays += 1
    return PlayStart(_alert(state, facts, config))


def _alert(state: AccountState, facts: AccountFacts, config: AccountsConfig) -> AccountAlert:
    """Who engaged and how (opaque member ids, roles, behaviour names), for owner and marketing."""
    name = facts.name or facts.domain or state.account_id
    window = f"{config.engagement.window_days} days"
    lines = [
        f"Account {name} ({state.account_id}): {len(facts.engaged)} contacts engaged in"
        f" {window}; priority {facts.priority}."
    ]
    for engaged in reversed(facts.engaged):
        record = state.members[engaged.member]
        how = ", ".join(dict.fromkeys(b.name for b in reversed(record.recent))) or "engaged"
        role = (record.role or "no committee role").replace("_", " ")
        executive = ", executive" if record.executive else ""
        lines.append(f"- {engaged.member} ({role}{executive}): {how}")
    return AccountAlert(
        play=state.plays,
        owner=facts.owner or config.play.default_owner,
        marketing=config.play.marketing_owner,
        title=f"Account play: {name} ({len(facts.engaged)} engaged)",
        text="\n".join(lines),
    )


def broadcast_step(
    state: AccountState,
    facts: AccountFacts,
    config: AccountsConfig,
    now: datetime,
    lean: bool = False,
) -> bool:
    """Whether to tell the members now: what they see changed and the last broadcast is at
    least ``broadcast_seconds`` old. A change inside that interval waits for its end
    (``broadcast_due``), when the then current facts go out, once.

    ``lean`` (the ``accounts-fanin-broadcast`` patch): only what their conditions read counts
    (``condition_key``), plus engagement times when ``refresh_due``."""
    key = condition_key(facts) if lean else visible_key(facts)
    refresh = refresh_due(state, config) if lean else None
    if key == state.broadcast_key and (refresh is None or now < refresh):
        state.broadcast_due = None
        return False
    interval = timedelta(seconds=config.broadcast_seconds)
    if state.broadcast_at is not None and now < state.broadcast_at + interval:
        state.broadcast_due = state.broadcast_at + interval
        return False
    state.broadcast_key, state.broadcast_at, state.broadcast_due = key, now, None
    if lean:
        state.told = {m.member: m.at for m in facts.engaged}
    return True


def next_wakeup(state: AccountState, config: AccountsConfig, now: datetime) -> datetime | None:
    """The next moment an engaged member leaves the window (the counts change then), or a
    waiting broadcast is due."""
    window = timedelta(days=config.engagement.window_days)
    moments = [
        r.last_engaged_at + window
        for r in state.members.values()
        if r.last_engaged_at is not None and r.last_engaged_at + window > now
    ]
    if state.broadcast_due is not None:
        moments.append(state.broadcast_due)
    refresh = refresh_due(state, config)
    if refresh is not None:
        moments.append(refresh)
    return min(moments, default=None)
