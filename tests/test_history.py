"""Decided history in the store: scores, list stays, demand states; idempotent, both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from models.changes import ContactChanges, DemandStateEntry, ListChange, ScoreSnapshot
from store.history import History
from store.repo import Store
from tests.support import track

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)


def _contact(store: Store, user_id: str) -> str:
    store.accept([track(user_id, "Signed Up")])
    contact_id = store.resolve(user_id)
    assert contact_id is not None
    return contact_id


def test_list_entries_and_exits_are_recorded_once(any_store: Store) -> None:
    history = History(any_store)
    contact = _contact(any_store, "u-h1")
    enter = ContactChanges(
        contact_id=contact, list_changes=[ListChange(list_name="ICP", at=T0, entered=True)]
    )
    leave = ContactChanges(
        contact_id=contact,
        list_changes=[ListChange(list_name="ICP", at=T0 + timedelta(days=7), entered=False)],
    )
    for changes in (enter, enter, leave, leave):
        history.record(changes)
    (stay,) = history.list_activity("ICP")
    assert stay.left_at is not None
    assert history.list_counts() == {}
    history.record(
        enter.model_copy(
            update={
                "list_changes": [
                    ListChange(list_name="ICP", at=T0 + timedelta(days=9), entered=True)
                ]
            }
        )
    )
    assert history.list_counts() == {"ICP": 1}
    assert history.members("ICP") == [contact]


def test_scores_and_demand_states_are_kept_with_their_causes(any_store: Store) -> None:
    history = History(any_store)
    contact = _contact(any_store, "u-h2")
    snapshot = ScoreSnapshot(
        at=T0,
        fit=70,
        engagement=45,
        engagement_recent=45,
        model_version="v3",
        top_behaviours=["Viewed pricing 3 times"],
        cause="Pricing Page Viewed",
    )
    state = DemandStateEntry(state="commercial-negotiating", at=T0, previous="solution-aware")
    changes = ContactChanges(contact_id=contact, score=snapshot, demand_states=[state])
    history.record(changes)
    history.record(changes)
    (score,) = history.scores(contact)
    assert (score.fit, score.model_version, score.top_behaviours) == (
        70,
        "v3",
        ["Viewed pricing 3 times"],
    )
    (entered,) = history.demand_states(contact)
    assert (entered.state, entered.previous) == ("commercial-negotiating", "solution-aware")


def test_freshness_counts_members_updated_in_the_last_90_days(any_store: Store) -> None:
    history = History(any_store)
    fresh = _contact(any_store, "u-fresh")
    history.record(
        ContactChanges(
            contact_id=fresh, list_changes=[ListChange(list_name="L", at=T0, entered=True)]
        )
    )
    far_future = datetime.now(UTC) + timedelta(days=200)
    (now_report,) = history.freshness(datetime.now(UTC))
    (later_report,) = history.freshness(far_future)
    assert (now_report.members, now_report.fresh) == (1, 1)
    assert later_report.fresh == 0 and later_report.share == 0.0
