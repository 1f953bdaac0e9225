"""The relay's read of the outbox: whole backlogs of the oldest contacts, in delivery order."""

from __future__ import annotations

from store.repo import Store
from tests.support import track


def test_backlog_takes_every_pending_event_of_the_oldest_contacts_in_order(
    any_store: Store,
) -> None:
    any_store.accept(
        [
            track("o-a", "A1"),
            track("o-b", "B1"),
            track("o-a", "A2"),
            track("o-c", "C1"),
            track("o-a", "A3"),
        ]
    )
    items = any_store.backlog(scan=2)
    assert [i.event.name for i in items] == ["A1", "B1", "A2", "A3"]
    assert [i.outbox_id for i in items] == sorted(i.outbox_id for i in items)
    first_two = any_store.backlog(scan=2, limit=2)
    assert [i.event.name for i in first_two] == ["A1", "B1"]
    any_store.mark_delivered(i.outbox_id for i in items)
    assert [i.event.name for i in any_store.backlog()] == ["C1"]
