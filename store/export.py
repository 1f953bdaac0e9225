"""Everything the store holds about one person, as one JSON-ready document (access requests).

Like the erasure (``store.erase``), the export visits every table with a ``contact_id``
column, so a table added later is exported without a change here: the well-known ones under
the names a person understands (``events``, ``sends``, ``stages``, ``scores``, ...), any other
under its table name. The profile, identities and the consent changes (the events that said
something about consent, with their time and source) lead the document.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from audience.consent import says_something
from store.erase import Privacy, Subject, load_every_table
from store.repo import Store
from store.schema import Base, ContactRow, EventRow

__all__ = ["SECTIONS", "export_person"]

SECTIONS = {
    "identities": "identities",
    "events": "events",
    "sends": "sends",
    "email_engagement": "email_engagement",
    "stage_history": "stages",
    "score_history": "scores",
    "decisions": "decisions",
    "list_memberships": "lists",
    "demand_states": "demand_states",
    "crm_tasks": "crm_tasks",
    "sla_records": "sla",
    "routing_decisions": "routing",
}
"""Table -> its section in the export; other tables keep their own name."""

_SKIPPED = frozenset({"contacts", "outbox"})
"""The profile is its own section; the outbox is delivery bookkeeping of the events."""


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    return value


def _rows(session: Session, table: Table, contact_ids: list[str]) -> list[dict[str, Any]]:
    query = select(table).where(table.c.contact_id.in_(contact_ids))
    if "id" in table.c:
        query = query.order_by(table.c.id)
    return [{k: _plain(v) for k, v in row.items()} for row in session.execute(query).mappings()]


def _profile(session: Session, subject: Subject) -> list[dict[str, Any]]:
    query = select(ContactRow).where(ContactRow.contact_id.in_(subject.contact_ids))
    return [
        {
            "contact_id": row.contact_id,
            "user_id": row.user_id,
            "email": row.email,
            "traits": row.traits,
            "account_id": row.account_id,
            "consent": row.consent,
            "stage": row.stage,
            "merged_into": row.merged_into,
            "created_at": _plain(row.created_at),
            "updated_at": _plain(row.updated_at),
        }
        for row in session.scalars(query)
    ]


def _source(row: EventRow) -> str:
    """Where a consent change came from: the event's ``source``, the sending library (a
    Segment SDK), else the way in its messageId names (``cli-``, ``unsubscribe-``)."""
    source = (row.properties or {}).get("source")
    if isinstance(source, str) and source:
        return source
    library = (row.context or {}).get("library")
    if isinstance(library, dict) and isinstance(library.get("name"), str):
        return str(library["name"])
    return row.message_id.split("-", 1)[0] if "-" in row.message_id else row.type


def _consent_changes(session: Session, contact_ids: list[str]) -> list[dict[str, Any]]:
    """Each event that said something about consent: when, what, from where."""
    query = (
        select(EventRow)
        .where(EventRow.contact_id.in_(contact_ids))
        .order_by(EventRow.timestamp, EventRow.id)
    )
    return [
        {
            "at": _plain(row.timestamp),
            "event": row.name,
            "type": row.type,
            "properties": row.properties,
            "traits": row.traits,
            "source": _source(row),
            "message_id": row.message_id,
        }
        for row in session.scalars(query)
        if says_something(row.name, row.properties or {}, row.traits or {})
    ]


def export_person(store: Store, user_id: str) -> dict[str, Any] | None:
    """The person's document, or None when the user id is unknown."""
    subject = Privacy(store).find(user_id)
    if subject is None:
        return None
    document: dict[str, Any] = {
        "exported_at": datetime.now(UTC).isoformat(),
        "user_id": user_id,
        "contact_ids": subject.contact_ids,
    }
    load_every_table()
    with store._sessions() as session:
        document["profile"] = _profile(session, subject)
        document["consent_history"] = _consent_changes(session, subject.contact_ids)
        for table in Base.metadata.sorted_tables:
            if "contact_id" not in table.c or table.name in _SKIPPED:
                continue
            section = SECTIONS.get(table.name, table.name)
            document[section] = _rows(session, table, subject.contact_ids)
    owners = [r["owner"] for r in document.get("sla", []) if r.get("owner")]
    document["owner"] = owners[-1] if owners else None
    return document
