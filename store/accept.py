"""One accept transaction: dedupe, identity resolution, profile updates and the outbox.

This is the durable half of ingestion and it must be atomic: an event is stored once (unique
messageId), attributed to the right contact, and queued for that contact's workflow, or
nothing happens. Identity resolution lives here for the same reason: an anonymous visitor's
earlier events join the known contact in the same transaction that links the ids.

It is also the gateway's hot path, so it works in bulk: one query to drop known messageIds,
one to resolve every id in the request, and multi-row inserts for contacts, identities, events
and outbox rows. Only a new link (identify/alias of an anonymous id, a merge) writes early,
because the events it adopts must be in the table to be found.

Rules:
- ``identify``/any call with a userId and an anonymousId links the anonymous id to the
  contact when it is unowned; an anonymous id already owned by another contact stays there (a
  shared browser must not merge two people).
- ``alias`` (previousId -> userId) attaches a new userId to the previous id's contact, or,
  when both are known contacts, merges the previous one into the user's: its ids, its history
  (re-queued for the surviving workflow) and a "Contact Merged" notice for its own workflow.
- Adopted history fills profile gaps only; what the contact said since wins.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Row, delete, insert, select, text, update
from sqlalchemy.orm import Session

from audience.consent import Consent, says_something, update_consent
from audience.purposes import PURPOSES, allows, mentions_purpose, update_purposes
from models.ingest import AcceptResult, IncomingEvent
from revops.ids import contact_bucket, short_hash
from store.privacy import ConsentChangeRow, erased_id_hashes
from store.schema import ContactRow, EventRow, IdentityRow, OutboxRow

__all__ = ["ANONYMOUS", "MERGE_NOTICE", "USER", "Acceptor", "StaleResolution"]

USER = "user_id"
ANONYMOUS = "anonymous_id"
MERGE_NOTICE = "Contact Merged"
"""Name of the event queued for a contact merged into another (its workflow then stops)."""

_CHUNK = 1000
_ADOPTED = (
    EventRow.id,
    EventRow.message_id,
    EventRow.anonymous_id,
    EventRow.type,
    EventRow.name,
    EventRow.traits,
    EventRow.properties,
    EventRow.context,
    EventRow.timestamp,
)
_LOCK_SQL = text(
    "SELECT count(pg_advisory_xact_lock(k)) FROM unnest(CAST(:keys AS bigint[])) AS t(k)"
)
T = TypeVar("T")


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    """SQLite returns naive datetimes; everything stored is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class StaleResolution(Exception):
    """A merge moved an id of this request to another contact while it waited for its locks:
    the caller rolls back and runs the accept again."""


def _lock_key(kind: str, value: str) -> int:
    """A signed 64-bit advisory lock key for one identity value or contact id."""
    digest = hashlib.blake2b(f"{kind}\x1f{value}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _chunks(values: Sequence[T]) -> Iterable[Sequence[T]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


@dataclass
class _Fact:
    """What one event says about its contact's profile."""

    name: str
    at: datetime
    traits: dict[str, Any]
    properties: dict[str, Any]
    account_id: str | None
    message_id: str = ""
    source: str = ""


def _consent_news(name: str, properties: Mapping[str, Any], traits: Mapping[str, Any]) -> bool:
    return says_something(name, properties, traits) or mentions_purpose(name, properties, traits)


def event_source(message_id: str, properties: Mapping[str, Any], context: Mapping[str, Any]) -> str:
    """Where an event (a consent change) came from: its ``source`` property, the sending
    library (a Segment SDK), else the way in its messageId names (``cli``, ``unsubscribe``)."""
    source = properties.get("source")
    if isinstance(source, str) and source:
        return source[:200]
    library = context.get("library")
    if isinstance(library, dict) and isinstance(library.get("name"), str):
        return str(library["name"])[:200]
    return message_id.split("-", 1)[0] if "-" in message_id else "api"


@dataclass
class _Profile:
    """Profile changes collected for one contact during the transaction."""

    traits: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    account_id: str | None = None
    default_account_id: str | None = None
    consent_facts: list[_Fact] = field(default_factory=list)

    def absorb(self, fact: _Fact, *, adopted: bool) -> None:
        (self.defaults if adopted else self.traits).update(fact.traits)
        if fact.account_id and adopted:
            self.default_account_id = fact.account_id
        elif fact.account_id:
            self.account_id = fact.account_id
        if _consent_news(fact.name, fact.properties, fact.traits):
            self.consent_facts.append(fact)

    def apply(self, row: ContactRow, now: datetime) -> list[dict[str, Any]]:
        """Update the row; the consent changes per purpose, for ``consent_changes``."""
        traits = {**self.defaults, **row.traits, **self.traits}
        row.traits = traits
        email = traits.get("email")
        row.email = email if isinstance(email, str) else row.email
        row.account_id = self.account_id or row.account_id or self.default_account_id
        changes: list[dict[str, Any]] = []
        if self.consent_facts:
            consent = Consent.model_validate(row.consent or {})
            for fact in sorted(self.consent_facts, key=lambda f: f.at):
                changes += _apply_consent(consent, fact, row.contact_id)
            row.consent = consent.model_dump(mode="json")
        row.updated_at = now
        return changes


def _apply_consent(consent: Consent, fact: _Fact, contact_id: str) -> list[dict[str, Any]]:
    """Apply one fact; a change row for each purpose it named or whose answer it changed."""
    before = {p: allows(consent, p) for p in PURPOSES}
    update_consent(consent, fact.name, fact.properties, fact.traits, fact.at)
    named = update_purposes(consent, fact.name, fact.properties, fact.traits, fact.at, fact.source)
    return [
        {
            "contact_id": contact_id,
            "purpose": purpose,
            "granted": allows(consent, purpose),
            "at": fact.at,
            "source": fact.source,
            "message_id": fact.message_id,
        }
        for purpose in PURPOSES
        if purpose in named or allows(consent, purpose) != before[purpose]
    ]


def _fact_of_row(row: Mapping[Any, Any]) -> _Fact | None:
    """What a stored (or buffered) event row says about the profile."""
    account = row["context"].get("group_id") if row["type"] == "group" else None
    if not (row["traits"] or account) and not _consent_news(
        row["name"], row["properties"], row["traits"]
    ):
        return None
    at = _aware(row["timestamp"])
    message_id = str(row["message_id"])
    source = event_source(message_id, row["properties"], row["context"])
    return _Fact(row["name"], at, row["traits"], row["properties"], account, message_id, source)


def _identity_values(events: Sequence[IncomingEvent]) -> set[str]:
    return {
        value
        for e in events
        for value in (e.user_id, e.anonymous_id, e.previous_id)
        if value is not None
    }


def _fact_of(event: IncomingEvent) -> _Fact | None:
    if not (event.traits or event.group_id) and not _consent_news(
        event.name, event.properties, event.traits
    ):
        return None
    source = event_source(event.message_id, event.properties, event.context)
    return _Fact(
        event.name,
        event.timestamp,
        event.traits,
        event.properties,
        event.group_id,
        event.message_id,
        source,
    )


class Acceptor:
    """Runs one accept inside ``session``'s transaction; ``contact_id_for`` names new contacts."""

    def __init__(
        self,
        session: Session,
        contact_id_for: Callable[[str], str],
        urgent: frozenset[str] = frozenset(),
        id_hash: Callable[[str], str] | None = None,
    ) -> None:
        self.session = session
        self.contact_id_for = contact_id_for
        self.id_hash = id_hash
        self.urgent = urgent
        self.urgent_touched: dict[str, None] = {}
        self.now = _now()
        self.result = AcceptResult()
        self.identities: dict[str, str] = {}
        self.new_contacts: list[dict[str, Any]] = []
        self.new_identities: list[dict[str, Any]] = []
        self.rows: list[tuple[dict[str, Any], str | None]] = []
        self.profiles: dict[str, _Profile] = {}
        self.touched: dict[str, None] = {}
        self.adoptions: dict[str, str] = {}

    def run(self, events: Sequence[IncomingEvent]) -> AcceptResult:
        """Accept ``events`` (in order); the caller commits. Raises ``StaleResolution`` when
        the caller must run it again (a concurrent merge moved one of its ids)."""
        postgres = self.session.get_bind().dialect.name == "postgresql"
        if postgres:
            self._lock("id", _identity_values(events))
        else:
            self.session.execute(text("BEGIN IMMEDIATE"))  # SQLite: one writer at a time
        fresh = self._refuse_erased(self._fresh(events))
        self._prefetch(fresh)
        if postgres:
            self._lock_contacts(fresh)
        for event in fresh:
            self._accept_one(event)
        self._flush()
        self._save_profiles()
        self.result.contact_ids = list(self.touched)
        self.result.urgent_contact_ids = list(self.urgent_touched)
        return self.result

    def _lock(self, kind: str, values: Iterable[str]) -> None:
        """Take the transaction's advisory locks on ``values``, in key order (no deadlock).

        Identity resolution reads, then writes: without locks an anonymous page view and the
        identify linking its visitor could commit in either order and the view would stay
        orphaned. A lock per identity value (PostgreSQL) keeps every rule above while accepts
        about different people run in parallel; SQLite has one writer anyway.
        """
        keys = sorted({_lock_key(kind, v) for v in values})
        if keys:
            self.session.execute(_LOCK_SQL, {"keys": keys})

    def _lock_contacts(self, events: Sequence[IncomingEvent]) -> None:
        """Lock the contacts the ids resolve to, then check no merge moved an id meanwhile.

        A merge takes its contacts' locks too, so an event never lands on a contact that an
        alias is merging away in a concurrent transaction (its history would miss it).
        """
        before = dict(self.identities)
        self._lock("contact", before.values())
        self.identities = {}
        self._prefetch(events)
        if self.identities != before:
            raise StaleResolution("a concurrent merge moved an id of this request")

    # ---- dedupe and lookups ----------------------------------------------------------------

    def _fresh(self, events: Sequence[IncomingEvent]) -> list[IncomingEvent]:
        ids = list(dict.fromkeys(e.message_id for e in events))
        seen: set[str] = set()
        for chunk in _chunks(ids):
            query = select(EventRow.message_id).where(EventRow.message_id.in_(chunk))
            seen.update(self.session.scalars(query))
        fresh = []
        for event in events:
            if event.message_id in seen:
                self.result.duplicates += 1
                continue
            seen.add(event.message_id)
            fresh.append(event)
        return fresh

    def _refuse_erased(self, events: list[IncomingEvent]) -> list[IncomingEvent]:
        """Drop events of erased people (their user or anonymous id was erased): the
        documented policy is to refuse them, so an erased person never reappears by a late
        delivery or a retry. They are counted in ``refused`` and stored nowhere."""
        if self.id_hash is None or not events:
            return events
        hashes = {
            value: self.id_hash(value)
            for e in events
            for value in (e.user_id, e.anonymous_id, e.previous_id)
            if value
        }
        erased = erased_id_hashes(self.session, hashes.values())
        if not erased:
            return events
        kept = []
        for event in events:
            ids = (event.user_id, event.anonymous_id, event.previous_id)
            if any(v and hashes[v] in erased for v in ids):
                self.result.refused += 1
            else:
                kept.append(event)
        return kept

    def _prefetch(self, events: Sequence[IncomingEvent]) -> None:
        values = _identity_values(events)
        for chunk in _chunks(sorted(values)):
            query = select(IdentityRow.value, IdentityRow.contact_id).where(
                IdentityRow.kind.in_((USER, ANONYMOUS)), IdentityRow.value.in_(chunk)
            )
            self.identities.update(
                {value: contact for value, contact in self.session.execute(query)}
            )

    # ---- one event ---------------------------------------------------------------------------

    def _accept_one(self, event: IncomingEvent) -> None:
        contact_id = self._resolve(event)
        self.rows.append((self._event_row(event, contact_id), contact_id))
        self.result.accepted += 1
        if contact_id is None:
            self.result.anonymous += 1
            return
        self.touched[contact_id] = None
        if event.type == "track" and event.name in self.urgent:
            self.urgent_touched[contact_id] = None
        fact = _fact_of(event)
        if fact is not None:
            self._absorb(contact_id, fact, adopted=False)

    def _absorb(self, contact_id: str, fact: _Fact | None, *, adopted: bool) -> None:
        if fact is not None:
            self.profiles.setdefault(contact_id, _Profile()).absorb(fact, adopted=adopted)

    def _event_row(self, event: IncomingEvent, contact_id: str | None) -> dict[str, Any]:
        context = {**event.context, "group_id": event.group_id} if event.group_id else event.context
        return {
            "message_id": event.message_id,
            "type": event.type,
            "name": event.name,
            "user_id": event.user_id,
            "anonymous_id": event.anonymous_id,
            "contact_id": contact_id,
            "properties": event.properties,
            "traits": event.traits,
            "context": context,
            "timestamp": event.timestamp,
            "received_at": event.received_at,
        }

    def _resolve(self, event: IncomingEvent) -> str | None:
        if event.user_id is None:
            return self.identities.get(event.anonymous_id or "")
        contact_id = self.identities.get(event.user_id)
        previous = event.previous_id if event.type == "alias" else None
        if contact_id is None and previous and previous in self.identities:
            contact_id = self.identities[previous]
            self._add_identity(USER, event.user_id, contact_id)
        if contact_id is None:
            contact_id = self._create_contact(event.user_id)
        if event.anonymous_id and event.anonymous_id != event.user_id:
            self._link(event.anonymous_id, contact_id, merge=False, cause=event)
        if previous and previous != event.user_id:
            self._link(previous, contact_id, merge=True, cause=event)
        return contact_id

    # ---- identities ------------------------------------------------------------------------

    def _add_identity(self, kind: str, value: str, contact_id: str) -> None:
        self.new_identities.append(
            {"kind": kind, "value": value, "contact_id": contact_id, "created_at": self.now}
        )
        self.identities[value] = contact_id

    def _create_contact(self, user_id: str) -> str:
        contact_id = self.contact_id_for(user_id)
        self.new_contacts.append(
            {
                "contact_id": contact_id,
                "user_id": user_id,
                "email": None,
                "traits": {},
                "account_id": None,
                "consent": {},
                "stage": None,
                "merged_into": None,
                "created_at": self.now,
                "updated_at": self.now,
            }
        )
        self._add_identity(USER, user_id, contact_id)
        return contact_id

    def _link(self, other_id: str, contact_id: str, *, merge: bool, cause: IncomingEvent) -> None:
        """Attach ``other_id`` and its history to the contact (or merge its owner, for alias)."""
        owner = self.identities.get(other_id)
        if owner == contact_id or (owner is not None and not merge):
            return
        if owner is None:
            self._add_identity(ANONYMOUS, other_id, contact_id)
            self._adopt_buffered(other_id, contact_id)
            self.adoptions[other_id] = contact_id  # its stored events: at the next flush
            return
        self._flush()
        self._merge(owner, contact_id, cause)

    def _adopt_buffered(self, anonymous_id: str, contact_id: str) -> None:
        """This request's earlier events of the visitor join the contact (not written yet)."""
        for index, (row, owner) in enumerate(self.rows):
            if owner is None and row["anonymous_id"] == anonymous_id:
                row["contact_id"] = contact_id
                self.rows[index] = (row, contact_id)
                self.result.anonymous -= 1
                self._absorb(contact_id, _fact_of_row(row), adopted=True)

    def _adopt_stored(self) -> None:
        """Stored events of the anonymous ids linked since the last flush join their contacts."""
        adoptions, self.adoptions = self.adoptions, {}
        found: list[Row[Any]] = []
        for chunk in _chunks(sorted(adoptions)):
            query = select(*_ADOPTED).where(
                EventRow.contact_id.is_(None), EventRow.anonymous_id.in_(chunk)
            )
            found += self.session.execute(query).all()
        found.sort(key=lambda r: (_aware(r.timestamp), r.id))
        self._adopt([(row, adoptions[row.anonymous_id]) for row in found])

    def _merge(self, old: str, new: str, cause: IncomingEvent) -> None:
        """Alias of two known contacts: everything of ``old`` now belongs to ``new``."""
        session = self.session
        session.execute(
            update(IdentityRow).where(IdentityRow.contact_id == old).values(contact_id=new)
        )
        session.execute(
            update(ContactRow)
            .where((ContactRow.contact_id == old) | (ContactRow.merged_into == old))
            .values(merged_into=new, updated_at=self.now)
        )
        self.identities = {k: new if v == old else v for k, v in self.identities.items()}
        history = select(*_ADOPTED).where(EventRow.contact_id == old)
        found = session.execute(history.order_by(EventRow.timestamp, EventRow.id)).all()
        self._adopt([(row, new) for row in found])
        notice = IncomingEvent(
            message_id=f"merge-{short_hash(cause.message_id, old)}",
            type="alias",
            name=MERGE_NOTICE,
            properties={"merged_into": new},
            timestamp=cause.timestamp,
            received_at=cause.received_at,
        )
        self.rows.append((self._event_row(notice, old), old))
        self.touched[old] = None

    def _adopt(self, adopted: list[tuple[Row[Any], str]]) -> None:
        """Give stored events to contacts and queue them again, in the order given."""
        if not adopted:
            return
        self.session.execute(
            update(EventRow), [{"id": row.id, "contact_id": c} for row, c in adopted]
        )
        for chunk in _chunks([row.id for row, _ in adopted]):
            self.session.execute(delete(OutboxRow).where(OutboxRow.event_id.in_(chunk)))
        self._queue([(row.id, contact_id) for row, contact_id in adopted])
        for row, contact_id in adopted:
            self._absorb(contact_id, _fact_of_row(row._mapping), adopted=True)
            self.touched[contact_id] = None

    # ---- writing ------------------------------------------------------------------------------

    def _queue(self, pairs: list[tuple[int, str]]) -> None:
        rows = [
            {
                "event_id": event_id,
                "contact_id": contact_id,
                "bucket": contact_bucket(contact_id),
                "created_at": self.now,
                "attempts": 0,
            }
            for event_id, contact_id in pairs
        ]
        if rows:
            self.session.execute(insert(OutboxRow), rows)

    def _flush(self) -> None:
        """Write what is buffered: contacts, identities, events, then their outbox rows."""
        if self.new_contacts:
            self.session.execute(insert(ContactRow), self.new_contacts)
            self.new_contacts = []
        if self.new_identities:
            self.session.execute(insert(IdentityRow), self.new_identities)
            self.new_identities = []
        if self.adoptions:
            self._adopt_stored()  # before this request's rows: history first, oldest first
        if not self.rows:
            return
        statement = insert(EventRow).returning(EventRow.id, sort_by_parameter_order=True)
        ids = self.session.scalars(statement, [row for row, _ in self.rows]).all()
        self._queue(
            [
                (event_id, c)
                for event_id, (_, c) in zip(ids, self.rows, strict=True)
                if c is not None
            ]
        )
        self.rows = []

    def _save_profiles(self) -> None:
        if not self.profiles:
            return
        query = select(ContactRow).where(ContactRow.contact_id.in_(list(self.profiles)))
        changes: list[dict[str, Any]] = []
        for row in self.session.scalars(query):
            changes += self.profiles[row.contact_id].apply(row, self.now)
        if changes:
            self.session.execute(insert(ConsentChangeRow), changes)
