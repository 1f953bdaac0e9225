"""The store on SQLite and on the real PostgreSQL: events once, identities, idempotent history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lifecycle.stages import Stage, StageEntry
from store.repo import Store
from tests.support import track


def test_an_event_is_stored_once_per_message_id(any_store: Store) -> None:
    first = any_store.accept([track("u-1", "Signed Up", message_id="m-1")])
    again = any_store.accept(
        [track("u-1", "Signed Up", message_id="m-1"), track("u-1", "Signed Up", message_id="m-1")]
    )
    assert (first.accepted, first.duplicates) == (1, 0)
    assert (again.accepted, again.duplicates) == (0, 2)
    counts = any_store.row_counts()
    assert counts["events"] == 1
    assert counts["outbox"] == 1


def test_contact_id_is_opaque_and_stable(any_store: Store) -> None:
    any_store.accept([track("jane@example.com", "Signed Up", traits={"email": "jane@example.com"})])
    contact_id = any_store.resolve("jane@example.com")
    assert contact_id is not None
    assert "jane" not in contact_id and "example" not in contact_id
    assert contact_id == any_store.contact_id_for("jane@example.com")
    row = any_store.contact(contact_id)
    assert row is not None and row.email == "jane@example.com"


def test_anonymous_history_joins_the_contact_on_identify(any_store: Store) -> None:
    day = datetime(2026, 1, 5, tzinfo=UTC)
    result = any_store.accept(
        [
            track(None, "Pricing Page Viewed", anonymous_id="anon-1", at=day),
            track(None, "Case Study Viewed", anonymous_id="anon-1", at=day + timedelta(hours=1)),
        ]
    )
    assert result.anonymous == 2 and result.contact_ids == []
    assert any_store.pending() == []
    any_store.accept(
        [
            track(
                "u-anon",
                "Identify",
                type_="identify",
                anonymous_id="anon-1",
                traits={"title": "CTO"},
                at=day + timedelta(days=1),
            )
        ]
    )
    pending = any_store.pending()
    # Delivered in timestamp order: the visitor's history first, then the identify.
    assert [item.event.name for item in pending] == [
        "Pricing Page Viewed",
        "Case Study Viewed",
        "Identify",
    ]
    assert {item.contact_id for item in pending} == {any_store.resolve("u-anon")}
    # Later anonymous events of the same visitor go straight to the contact.
    any_store.accept([track(None, "Pricing Page Viewed", anonymous_id="anon-1")])
    assert len(any_store.pending()) == 4


def test_alias_merges_two_known_contacts(any_store: Store) -> None:
    any_store.accept([track("old-id", "Signed Up"), track("new-id", "Trial Started")])
    old_contact = any_store.resolve("old-id")
    any_store.mark_delivered(i.outbox_id for i in any_store.pending())
    any_store.accept([track("new-id", "Alias", type_="alias", previous_id="old-id")])
    new_contact = any_store.resolve("new-id")
    assert any_store.resolve("old-id") == new_contact
    old_row = any_store.contact(old_contact or "")
    assert old_row is not None and old_row.merged_into == new_contact
    redelivered = {i.event.name for i in any_store.pending() if i.contact_id == new_contact}
    assert redelivered == {"Signed Up", "Alias"}


def test_group_links_the_contact_to_an_account(any_store: Store) -> None:
    any_store.accept([track("u-g", "Group", type_="group", group_id="acct-9")])
    row = any_store.contact(any_store.resolve("u-g") or "")
    assert row is not None and row.account_id == "acct-9"
    assert any_store.pending()[0].event.account_id == "acct-9"


def test_stage_entries_are_recorded_idempotently(any_store: Store) -> None:
    any_store.accept([track("u-s", "Signed Up")])
    contact_id = any_store.resolve("u-s") or ""
    at = datetime(2026, 2, 1, 12, tzinfo=UTC)
    entries = [StageEntry(stage=Stage.LEAD, at=at, reason="Signed Up")]
    assert any_store.record_stage_entries(contact_id, entries) == 1
    assert any_store.record_stage_entries(contact_id, entries) == 0
    history = any_store.stage_history(contact_id)
    assert [(h.stage, h.reason) for h in history] == [("Lead", "Signed Up")]
    row = any_store.contact(contact_id)
    assert row is not None and row.stage == "Lead"


def test_delivered_items_leave_the_outbox_and_failures_are_counted(any_store: Store) -> None:
    any_store.accept([track("u-o", "Signed Up"), track("u-o", "Email Opened")])
    first, second = any_store.pending()
    any_store.mark_failed([first.outbox_id], "temporal down")
    any_store.mark_delivered([second.outbox_id])
    assert [i.outbox_id for i in any_store.pending()] == [first.outbox_id]


def test_personal_traits_never_reach_the_workflow_event(any_store: Store) -> None:
    any_store.accept(
        [
            track(
                "u-p",
                "Identify",
                type_="identify",
                traits={"email": "p@corp.io", "name": "Pat", "title": "VP"},
            )
        ]
    )
    event = any_store.pending()[0].event
    assert event.traits == {"title": "VP", "email_domain": "corp.io"}
