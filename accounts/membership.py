"""A contact's side of its account: which account it belongs to, and what it tells it.

Called by the contact workflow after a step's derived facts (scores, lists, demand state) are
known. A Segment ``group`` call links the contact to that group's account (by the company
domain of its ``website``/``domain`` trait when given, else by ``groupId``); a contact never
grouped belongs to the account of its email's company domain (free mail never does; the
subsidiary mapping resolves a subsidiary to its parent). A group link is kept until another
group call moves the contact. When the account changes, the old one hears that the member
left and the new one that it joined. Pure and deterministic.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from accounts.contract import BehaviourSeen, MemberUpdate
from audience.accounts import AccountsConfig, account_id_for
from audience.facts import AccountFacts
from contacts.contract import PERSONAL_TRAITS, AccountLink, ContactState
from models.events import ContactEvent

__all__ = ["GROUP_TRAITS_PROPERTY", "leave_account", "member_updates", "receive_account"]

GROUP_TRAITS_PROPERTY = "group_traits"
"""The property of a ``group`` event holding the call's raw traits (gateway/segment.py)."""

_DOMAIN_KEYS = ("account_domain", "website", "domain")


def _group_link(event: ContactEvent, config: AccountsConfig, now: datetime) -> AccountLink:
    raw = event.properties.get(GROUP_TRAITS_PROPERTY)
    raw = raw if isinstance(raw, dict) else {}
    domain = next(
        (
            found
            for source in (event.traits, raw)
            for k in _DOMAIN_KEYS
            if (found := config.canonical_domain(source.get(k))) is not None
        ),
        None,
    )
    key = f"domain:{domain}" if domain else f"group:{event.account_id}"
    return AccountLink(account_id=account_id_for(key), key=key, via="group", since=now)


def _account_traits(event: ContactEvent) -> dict[str, Any]:
    """A group call's company facts for the account: its raw traits and the flat keys."""
    raw = event.properties.get(GROUP_TRAITS_PROPERTY)
    traits = {**(raw if isinstance(raw, dict) else {}), **event.traits}
    return {k: v for k, v in traits.items() if k not in PERSONAL_TRAITS and k != "email_domain"}


def _wanted(
    state: ContactState, events: Sequence[ContactEvent], config: AccountsConfig, now: datetime
) -> tuple[AccountLink | None, dict[str, Any]]:
    """The account the contact belongs to after ``events``, and group traits they carried."""
    link, traits = state.account_link, dict[str, Any]()
    for event in events:
        if event.kind == "group" and event.account_id:
            found = _group_link(event, config, now)
            if link is None or found.key != link.key:
                link, traits = found, {}
            elif link.via != "group":
                link = link.model_copy(update={"via": "group"})  # the same account, now by group
            traits.update(_account_traits(event))
    if link is not None and link.via == "group":
        return link, traits
    domain = config.canonical_domain(state.traits.get("email_domain"))
    if domain is None:
        return None, traits
    key = f"domain:{domain}"
    if link is not None and link.key == key:
        return link, traits
    return AccountLink(account_id=account_id_for(key), key=key, via="domain", since=now), traits


SCORE_STEP = 5
"""Scores travel to the account in steps of 5 (of 100): a point up or down is not news."""
TOLD_KEPT = 20
"""How many told behaviours (day and name) a contact remembers."""


def _step(score: float) -> int:
    return int(round(score / SCORE_STEP) * SCORE_STEP)


def _facts(state: ContactState, config: AccountsConfig) -> dict[str, Any]:
    scores = state.scores
    title = state.traits.get("title")
    return {
        "stage": state.stage.value if state.stage else None,
        "fit": _step(scores.fit) if scores else 0,
        "engagement": _step(scores.engagement) if scores else 0,
        "demand_state": state.demand_state,
        "role": config.role_of(title),
        "executive": config.is_executive(title),
    }


def _digest(link: AccountLink, facts: dict[str, Any]) -> str:
    body = json.dumps({"account": link.account_id, **facts}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def _leaving(state: ContactState, link: AccountLink, now: datetime) -> MemberUpdate:
    state.account_seq += 1
    return MemberUpdate(
        account_id=link.account_id,
        key=link.key,
        member=state.contact_id,
        seq=state.account_seq,
        at=now,
        left=True,
        via=link.via,
    )


def leave_account(state: ContactState, now: datetime) -> MemberUpdate | None:
    """The contact stops (an alias merged it into another, which joins in its place): its
    account hears that it left."""
    link, state.account_link, state.account = state.account_link, None, None
    return None if link is None else _leaving(state, link, now)


def _news(
    link: AccountLink, events: Sequence[ContactEvent], config: AccountsConfig
) -> list[BehaviourSeen]:
    """Engaging behaviours the account has not heard of: the first of each name per day (a
    later day moves the member's latest engagement; a repeat the same day changes nothing the
    account keeps but its time, and windows are days long)."""
    news: list[BehaviourSeen] = []
    for event in events:
        if not config.engaging(event.kind, event.name):
            continue
        mark = f"{event.timestamp.date().isoformat()} {event.name}"
        if mark in link.told:
            continue
        link.told.append(mark)
        news.append(BehaviourSeen(name=event.name, at=event.timestamp))
    del link.told[:-TOLD_KEPT]
    return news


def _new_day(
    link: AccountLink, events: Sequence[ContactEvent], config: AccountsConfig
) -> list[BehaviourSeen]:
    """The step's engaging behaviours, when one is on a later day than the latest the account
    heard of (else none): the account keeps a member's latest engagement to the day, which
    says whether and until when it is engaged in the window. The first behaviour of each name
    that day goes along (how the member engaged, for the alert); a later page of the same day
    is not news, whatever its name."""
    latest = max((mark[:10] for mark in link.told), default="")
    engaging = [e for e in events if config.engaging(e.kind, e.name)]
    if not any(e.timestamp.date().isoformat() > latest for e in engaging):
        return []
    return _news(link, engaging, config)


def member_updates(
    state: ContactState,
    events: Sequence[ContactEvent],
    config: AccountsConfig,
    now: datetime,
    daily: bool = False,
) -> list[MemberUpdate]:
    """What to tell which account after a step (nothing when nothing it keeps changed).

    ``daily`` (the ``accounts-fanin-member`` patch): engagement is news once a day, not once
    per behaviour name and day (``_new_day``)."""
    link, traits = _wanted(state, events, config, now)
    old = state.account_link
    updates: list[MemberUpdate] = []
    if old is not None and (link is None or link.account_id != old.account_id):
        updates.append(_leaving(state, old, now))
        state.account = None
    state.account_link = link
    if link is None:
        return updates
    facts = _facts(state, config)
    digest = _digest(link, facts)
    behaviours = _new_day(link, events, config) if daily else _news(link, events, config)
    if digest == link.sent and not behaviours and not traits:
        return updates
    if daily and not behaviours:  # going anyway: the day's new names ride along
        behaviours = _news(link, events, config)
    link.sent = digest
    state.account_seq += 1
    updates.append(
        MemberUpdate(
            account_id=link.account_id,
            key=link.key,
            member=state.contact_id,
            seq=state.account_seq,
            at=now,
            via=link.via,
            behaviours=behaviours,
            account_traits=traits,
            **facts,
        )
    )
    return updates


def receive_account(state: ContactState, facts: AccountFacts) -> bool:
    """Keep what the account told this member; facts of an account it left are dropped."""
    link = state.account_link
    if link is None or facts.account_id != link.account_id:
        return False
    state.account = facts
    return True
