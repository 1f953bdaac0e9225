"""Round-robin state and SLA records in the store, on SQLite and PostgreSQL: fair under
concurrency, exactly once under retries, never moving backwards."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from handoff.contract import SlaRecord, TurnRecord
from handoff.routing import RoutingInput
from store.repo import Store
from store.routing_state import RoutingBook
from store.sla import SlaBook
from tests.handoff_support import add_rep, handoff_config, routing_body

NOW = datetime(2026, 6, 9, 14, 0, tzinfo=UTC)


def _lead(n: int) -> RoutingInput:
    return RoutingInput(contact_id=f"c{n:019d}", trigger="hand_raiser", country="US")


def test_concurrent_assignments_take_fair_turns(any_store: Store) -> None:
    config = handoff_config(_with_a04()).routing
    book = RoutingBook(any_store)

    def assign(n: int) -> str:
        decision = RoutingBook(any_store).assign(config, _lead(n), NOW, handoff_id=f"h-{n}", step=0)
        return decision.rep_id

    with ThreadPoolExecutor(max_workers=8) as pool:
        owners = list(pool.map(assign, range(30)))
    assert Counter(owners) == {"rep-a02": 10, "rep-a03": 10, "rep-a04": 10}
    assert book.state().open_leads == {"rep-a02": 10, "rep-a03": 10, "rep-a04": 10}
    assert len(book.decisions()) == 30


def test_a_retried_assignment_returns_the_same_owner_and_counts_once(any_store: Store) -> None:
    config = handoff_config().routing
    book = RoutingBook(any_store)
    first = book.assign(config, _lead(1), NOW, handoff_id="h-1", step=0)
    again = book.assign(config, _lead(1), NOW, handoff_id="h-1", step=0)
    other = book.assign(config, _lead(2), NOW, handoff_id="h-2", step=0)
    assert first == again
    assert (first.rep_id, other.rep_id) == ("rep-a02", "rep-a03")
    assert book.state().open_leads == {"rep-a02": 1, "rep-a03": 1}


def test_reassignment_moves_the_open_lead_and_release_happens_once(any_store: Store) -> None:
    config = handoff_config().routing
    book = RoutingBook(any_store)
    book.assign(config, _lead(1), NOW, handoff_id="h-1", step=0)
    moved = book.assign(config, _lead(1), NOW, handoff_id="h-1", step=1, tried=["rep-a02"])
    assert (moved.rep_id, moved.reassigned_from) == ("rep-a03", "rep-a02")
    assert book.state().open_leads == {"rep-a02": 0, "rep-a03": 1}
    assert book.release("h-1", "rep-a03", "accepted", NOW) is True
    assert book.release("h-1", "rep-a03", "accepted", NOW) is False
    assert book.state().open_leads == {"rep-a02": 0, "rep-a03": 0}
    steps = [(row.step, row.rep_id, row.contact_id) for row in book.decisions(handoff_id="h-1")]
    assert steps == [
        ("0", "rep-a02", _lead(1).contact_id),
        ("1", "rep-a03", _lead(1).contact_id),
        ("release", "rep-a03", _lead(1).contact_id),
    ]


def _record(revision: int, state: str = "waiting", **fields: object) -> SlaRecord:
    turn = TurnRecord(
        seq=0,
        owner="rep-a02",
        team="amer-general",
        assigned_at=NOW,
        deadline=NOW + timedelta(minutes=15),
        breached=False,
        responded_at=None,
    )
    base: dict[str, object] = {
        "handoff_id": "h-1",
        "contact_id": "c1",
        "trigger": "hand_raiser",
        "policy": "hand-raisers-and-tier-1",
        "state": state,
        "mql_date": NOW,
        "assigned_at": NOW,
        "owner": "rep-a02",
        "team": "amer-general",
        "first_contact_date": None,
        "responded_at": None,
        "deadline": NOW + timedelta(minutes=15),
        "sla_met": None,
        "reminders": 0,
        "breaches": 0,
        "escalations": 0,
        "reassignments": 0,
        "outcome": None,
        "outcome_reason": None,
        "turns": [turn],
        "revision": revision,
    }
    return SlaRecord.model_validate({**base, **fields})


def test_an_sla_record_only_moves_forward(any_store: Store) -> None:
    book = SlaBook(any_store)
    touched = NOW + timedelta(minutes=5)
    assert book.record(_record(1)) is True
    assert book.record(_record(3, "met", first_contact_date=touched, sla_met=True)) is True
    assert book.record(_record(2, "breached", breaches=1)) is False, "a late, older write"
    stored = book.get("h-1")
    assert stored is not None and stored.state == "met" and stored.first_contact_date == touched
    assert stored.turns[0].deadline == NOW + timedelta(minutes=15)
    assert [r.handoff_id for r in book.records(since=NOW)] == ["h-1"]
    assert book.records(since=NOW + timedelta(days=1)) == []


def _with_a04() -> dict[str, Any]:
    body = routing_body()
    add_rep(body, "rep-a04", "amer-general")
    return body
