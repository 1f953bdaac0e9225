"""A small fixed history whose report numbers are worked out by hand in the tests.

Six contacts (user ids ``rp-a`` .. ``rp-f``) in January to March 2026:

- a: Lead Jan 5, MQL Jan 6, SQL Jan 10 (no SAL), Opportunity Jan 20, Customer Feb 1; its one
  opportunity (no id: the implicit ``contact:<id>``) was created Jan 20 and won Feb 1 for 5,000;
  a has no touchpoint.
- b: recycled twice: Lead Jan 7, MQL Jan 8, SAL Jan 9; Lead again Feb 1, MQL Feb 3, SAL Feb 4,
  SQL Feb 6, Opportunity Feb 10 (``opp-b``, 8,000, lost Mar 15); Lead again Mar 15, MQL Mar 20.
  Attended a webinar Jan 6.
- c: Subscriber Jan 10, Lead Jan 12.
- d, e, f: one opportunity ``opp-def`` with three contacts, created Feb 9 at noon (10,000, d's
  event first), won Feb 20 at 12,000. d: Lead Feb 2, MQL Feb 5, SAL Feb 6, SQL Feb 8,
  Opportunity Feb 9. e: Lead Feb 3. f: Subscriber Feb 4, Lead Feb 6, MQL Feb 7.
  Touchpoints at noon: t1 e Jan 20 (cpc, "brand"), t2 d Jan 25 (webinar), t3 d Feb 1
  (paid_social, "abm"), t4 f Feb 5 (Email Clicked, whitepaper-nurture), t5 d Feb 8 (cpc,
  "pricing"), t6 e Feb 15 (email, "feb-news").

Segments: a and b are on Enterprise, d, e and f on Mid-Market, c on none. Handoffs: b (team
amer, rejected "Bad timing", touched after 10 minutes), d (amer, accepted, 30 minutes), f
(emea, rejected "No budget", 2 hours). The whitepaper-nurture journey sent its step w1 to c
and f (now: the ledger stamps sends when they go out); both opened it, f clicked (t4).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.sales import SalesWebhook, to_incoming_sales
from handoff.contract import SlaRecord, TurnRecord
from lifecycle.stages import Stage, StageEntry
from models.changes import ContactChanges, ListChange
from models.ingest import IncomingEvent
from store.effects import Ledger, SendOrigin
from store.history import History
from store.repo import Store
from store.sla import SlaBook

__all__ = ["USERS", "at", "build_history", "contact_ids"]

USERS = ("rp-a", "rp-b", "rp-c", "rp-d", "rp-e", "rp-f")


def at(month: int, day: int, hour: int = 12) -> datetime:
    """A moment of 2026 (UTC)."""
    return datetime(2026, month, day, hour, tzinfo=UTC)


_STAGES: dict[str, list[tuple[Stage, datetime, bool]]] = {
    "rp-a": [
        (Stage.LEAD, at(1, 5), False),
        (Stage.MQL, at(1, 6), False),
        (Stage.SQL, at(1, 10), False),
        (Stage.OPPORTUNITY, at(1, 20), False),
        (Stage.CUSTOMER, at(2, 1), False),
    ],
    "rp-b": [
        (Stage.LEAD, at(1, 7), False),
        (Stage.MQL, at(1, 8), False),
        (Stage.SAL, at(1, 9), False),
        (Stage.LEAD, at(2, 1), True),
        (Stage.MQL, at(2, 3), False),
        (Stage.SAL, at(2, 4), False),
        (Stage.SQL, at(2, 6), False),
        (Stage.OPPORTUNITY, at(2, 10), False),
        (Stage.LEAD, at(3, 15), True),
        (Stage.MQL, at(3, 20), False),
    ],
    "rp-c": [(Stage.SUBSCRIBER, at(1, 10), False), (Stage.LEAD, at(1, 12), False)],
    "rp-d": [
        (Stage.LEAD, at(2, 2), False),
        (Stage.MQL, at(2, 5), False),
        (Stage.SAL, at(2, 6), False),
        (Stage.SQL, at(2, 8), False),
        (Stage.OPPORTUNITY, at(2, 9), False),
    ],
    "rp-e": [(Stage.LEAD, at(2, 3), False)],
    "rp-f": [
        (Stage.SUBSCRIBER, at(2, 4), False),
        (Stage.LEAD, at(2, 6), False),
        (Stage.MQL, at(2, 7), False),
    ],
}


def _event(user: str, name: str, when: datetime, **fields: Any) -> IncomingEvent:
    return IncomingEvent(
        message_id=f"{user}-{name}-{when.isoformat()}",
        type=fields.pop("type", "track"),
        name=name,
        user_id=user,
        timestamp=when,
        received_at=when,
        **fields,
    )


def _utm(source: str, medium: str, campaign: str) -> dict[str, Any]:
    return {"campaign": {"source": source, "medium": medium, "name": campaign}}


def _touches() -> list[IncomingEvent]:
    return [
        _event("rp-b", "Webinar Attended", at(1, 6), properties={"webinar": "Q1 Webinar"}),
        _event(
            "rp-e", "Page Viewed", at(1, 20), type="page", context=_utm("google", "cpc", "brand")
        ),
        _event("rp-d", "Webinar Attended", at(1, 25), properties={"webinar": "Q1 Webinar"}),
        _event(
            "rp-d",
            "Page Viewed",
            at(2, 1),
            type="page",
            context=_utm("linkedin", "paid_social", "abm"),
        ),
        _event(
            "rp-f",
            "Email Clicked",
            at(2, 5),
            properties={"journey": "whitepaper-nurture", "step": "w1"},
        ),
        _event(
            "rp-d", "Page Viewed", at(2, 8), type="page", context=_utm("google", "cpc", "pricing")
        ),
        _event(
            "rp-e", "Page Viewed", at(2, 15), type="page", context=_utm("news", "email", "feb-news")
        ),
        # Untagged activity is no touchpoint.
        _event("rp-a", "Page Viewed", at(1, 4), type="page"),
        # Opens of journey emails (journey metrics, not touchpoints).
        _event(
            "rp-f",
            "Email Opened",
            at(2, 5, 11),
            properties={"journey": "whitepaper-nurture", "step": "w1"},
        ),
        _event(
            "rp-c",
            "Email Opened",
            at(2, 5, 9),
            properties={"journey": "whitepaper-nurture", "step": "w1"},
        ),
    ]


def _sale(user: str, hook_id: str, activity: str, when: datetime, **fields: Any) -> IncomingEvent:
    hook = SalesWebhook.model_validate(
        {
            "id": hook_id,
            "type": activity,
            "occurred_at": when.isoformat(),
            "contact": {"user_id": user},
            **fields,
        }
    )
    return to_incoming_sales(hook, user, when)


def _sales() -> list[IncomingEvent]:
    return [
        _sale("rp-a", "a1", "opportunity_created", at(1, 20), amount=5000),
        _sale("rp-a", "a2", "closed_won", at(2, 1), amount=5000),
        _sale("rp-b", "b1", "opportunity_created", at(2, 10), opportunity_id="opp-b", amount=8000),
        _sale("rp-b", "b2", "closed_lost", at(3, 15), opportunity_id="opp-b", reason="No Budget"),
        _sale(
            "rp-d", "d1", "opportunity_created", at(2, 9), opportunity_id="opp-def", amount=10000
        ),
        _sale(
            "rp-e",
            "e1",
            "opportunity_created",
            at(2, 9) + timedelta(minutes=1),
            opportunity_id="opp-def",
        ),
        _sale(
            "rp-f",
            "f1",
            "opportunity_created",
            at(2, 9) + timedelta(minutes=2),
            opportunity_id="opp-def",
        ),
        _sale("rp-d", "d2", "closed_won", at(2, 20), opportunity_id="opp-def", amount=12000),
        _sale("rp-d", "d3", "lead_accepted", at(2, 6)),
    ]


def _handoff(
    contact_id: str, team: str, mql: datetime, touch: timedelta, **outcome: Any
) -> SlaRecord:
    touched = mql + touch
    turn = TurnRecord(
        seq=0,
        owner=f"rep-{team}",
        team=team,
        assigned_at=mql,
        deadline=mql + timedelta(hours=4),
        breached=False,
        responded_at=touched,
    )
    return SlaRecord(
        handoff_id=f"h-{contact_id}",
        contact_id=contact_id,
        trigger="mql",
        policy=None,
        state=outcome.pop("state", "met"),
        mql_date=mql,
        assigned_at=mql,
        owner=f"rep-{team}",
        team=team,
        first_contact_date=touched,
        responded_at=touched,
        deadline=mql + timedelta(hours=4),
        sla_met=True,
        reminders=0,
        breaches=0,
        escalations=0,
        reassignments=0,
        turns=[turn],
        revision=1,
        **{"outcome": None, "outcome_reason": None, **outcome},
    )


def contact_ids(store: Store) -> dict[str, str]:
    """User id -> contact id of the history's contacts."""
    return {user: store.contact_id_for(user) for user in USERS}


def build_history(store: Store) -> dict[str, str]:
    """Write the history through the store's own paths; returns user id -> contact id."""
    store.accept([*_touches(), *_sales()])
    ids = contact_ids(store)
    history = History(store)
    for user, entries in _STAGES.items():
        stage_entries = [
            StageEntry(stage=stage, at=when, reason="test", override=override)
            for stage, when, override in entries
        ]
        history.record(ContactChanges(contact_id=ids[user], stage_entries=stage_entries))
    segments = {"rp-a": "Enterprise", "rp-b": "Enterprise"}
    segments |= {"rp-d": "Mid-Market", "rp-e": "Mid-Market", "rp-f": "Mid-Market"}
    for user, segment in segments.items():
        change = ListChange(list_name=segment, at=at(1, 1), entered=True)
        history.record(ContactChanges(contact_id=ids[user], list_changes=[change]))
    ledger = Ledger(store)
    for user in ("rp-c", "rp-f"):
        key = f"{ids[user]}/{ids[user]}-1/w1"
        origin = SendOrigin(journey="whitepaper-nurture", step="w1")
        ledger.claim(key, ids[user], "email", True, "w1", origin)
        ledger.finish(key, "sent")
    book = SlaBook(store)
    book.record(
        _handoff(
            ids["rp-b"],
            "amer",
            at(1, 8),
            timedelta(minutes=10),
            outcome="rejected",
            outcome_reason="Bad timing",
            state="rejected",
        )
    )
    book.record(_handoff(ids["rp-d"], "amer", at(2, 5), timedelta(minutes=30), state="accepted"))
    book.record(
        _handoff(
            ids["rp-f"],
            "emea",
            at(2, 7),
            timedelta(hours=2),
            outcome="rejected",
            outcome_reason="No budget",
            state="rejected",
        )
    )
    return ids
