"""``revops contacts import FILE.csv``: a team's existing contacts, as the gateway takes them.

Each row becomes what a Segment ``identify`` (and ``group``, for an account) would: the same
``IncomingEvent`` shapes, stored by ``Store.accept`` (the gateway's accept path: deduplicated,
identities resolved, consent kept, the relay delivers), so imported contacts and their consent
arrive the way they would from the CRM. Message ids derive from the row's content, so importing
the same file again stores nothing twice.

Columns map to targets with ``--map COLUMN=TARGET``; a column named like a target maps by
itself, any other column becomes the trait of its name:

| target | meaning |
|---|---|
| ``user_id`` | the contact's user id (default: the email, lowercased) |
| ``email`` | the address (checked) |
| ``account`` | the account id (a ``group`` call) |
| ``crm_id`` | the contact's id in the CRM, stored as revops' link to it |
| ``consent:<key>`` | ``subscribed``, ``unsubscribed``, ``gdpr_consent``, ``ccpa_opt_out``: yes/no |
| ``trait:<name>`` | a profile trait (numbers stay numbers) |
| ``ignore`` | not imported |

Every row is checked first; a rejected row is reported with its number and reason, and then
nothing is stored unless ``--skip-invalid`` (the valid rows are then stored, whole).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from models.ingest import IncomingEvent

__all__ = [
    "CONSENT_KEYS",
    "ImportRow",
    "Mapping",
    "Rejected",
    "mapping_of",
    "read_rows",
    "to_events",
]

CONSENT_KEYS = ("subscribed", "unsubscribed", "gdpr_consent", "ccpa_opt_out")
_FIXED = ("user_id", "email", "account", "crm_id", "ignore")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CRM_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_YES = {"yes", "y", "true", "1", "opt-in", "opted in"}
_NO = {"no", "n", "false", "0", "opt-out", "opted out"}
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_ALIASES = {"account_id": "account", "group_id": "account", "userid": "user_id"}

Mapping = dict[str, str]
"""CSV column -> target."""


@dataclass(frozen=True)
class Rejected:
    """A row that is not imported, and why (row numbers count the header as row 1)."""

    row: int
    reason: str


@dataclass
class ImportRow:
    """One valid row, ready to store."""

    row: int
    user_id: str
    email: str | None = None
    account: str | None = None
    crm_id: str | None = None
    traits: dict[str, Any] = field(default_factory=dict)
    consent: dict[str, bool] = field(default_factory=dict)


def _target_ok(target: str) -> bool:
    if target in _FIXED:
        return True
    if target.startswith("consent:"):
        return target.removeprefix("consent:") in CONSENT_KEYS
    return target.startswith("trait:") and len(target) > len("trait:")


def mapping_of(header: Sequence[str], pairs: Iterable[str]) -> Mapping:
    """Each column's target: ``--map`` pairs first, then by name; ValueError when a pair or a
    target is wrong or names a column the file does not have."""
    given: Mapping = {}
    for pair in pairs:
        column, sep, target = pair.partition("=")
        if not sep or not column or not target:
            raise ValueError(f"--map {pair!r}: expected COLUMN=TARGET")
        if column not in header:
            raise ValueError(f"--map {pair!r}: the file has no column {column!r}")
        if not _target_ok(target):
            known = "user_id, email, account, crm_id, consent:<key>, trait:<name>, ignore"
            raise ValueError(f"--map {pair!r}: unknown target {target!r} ({known})")
        given[column] = target
    mapping: Mapping = {}
    for column in header:
        name = column.strip().lower().replace(" ", "_")
        name = _ALIASES.get(name, name)
        mapping[column] = given.get(column) or (name if name in _FIXED else f"trait:{name}")
    return mapping


def _yes_no(value: str) -> bool | None:
    text = value.strip().lower()
    return True if text in _YES else False if text in _NO else None


def _value(text: str) -> Any:
    return json.loads(text) if _NUMBER.match(text) else text


def _row(number: int, cells: dict[str, str], mapping: Mapping) -> ImportRow | Rejected:
    found = ImportRow(row=number, user_id="")
    for column, target in mapping.items():
        value = (cells.get(column) or "").strip()
        if not value or target == "ignore":
            continue
        if target == "email":
            if not _EMAIL.match(value):
                return Rejected(number, f"{column}: {value[:60]!r} is not an email address")
            found.email = value
        elif target == "user_id":
            found.user_id = value[:255]
        elif target == "account":
            found.account = value[:255]
        elif target == "crm_id":
            if not _CRM_ID.match(value):
                return Rejected(number, f"{column}: {value[:60]!r} is not a CRM id")
            found.crm_id = value
        elif target.startswith("consent:"):
            answer = _yes_no(value)
            if answer is None:
                return Rejected(number, f"{column}: {value[:30]!r} is not yes or no")
            found.consent[target.removeprefix("consent:")] = answer
        else:
            found.traits[target.removeprefix("trait:")] = _value(value)
    found.user_id = found.user_id or (found.email or "").lower()
    if not found.user_id:
        return Rejected(number, "no user id and no email: the contact cannot be named")
    return found


def read_rows(path: Path, pairs: Iterable[str]) -> tuple[Mapping, list[ImportRow], list[Rejected]]:
    """Every row of ``path`` checked: the mapping, the valid rows, the rejected ones."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = list(reader.fieldnames or [])
        if not header:
            raise ValueError(f"{path}: no header row")
        mapping = mapping_of(header, pairs)
        valid: list[ImportRow] = []
        rejected: list[Rejected] = []
        seen: dict[str, int] = {}
        for number, cells in enumerate(reader, start=2):
            if None in cells:
                rejected.append(Rejected(number, "more cells than the header has columns"))
                continue
            result = _row(number, cells, mapping)
            if isinstance(result, Rejected):
                rejected.append(result)
            elif result.user_id in seen:
                rejected.append(Rejected(number, f"the same contact as row {seen[result.user_id]}"))
            else:
                seen[result.user_id] = number
                valid.append(result)
    return mapping, valid, rejected


def _digest(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def to_events(row: ImportRow, now: datetime | None = None) -> list[IncomingEvent]:
    """The identify (and group) calls the row stands for, as the gateway would build them."""
    now = now or datetime.now(UTC)
    traits = {**row.traits, **row.consent}
    if row.email:
        traits["email"] = row.email
    events = [
        IncomingEvent(
            message_id=f"import-{_digest(row.user_id, traits)}",
            type="identify",
            name="Identify",
            user_id=row.user_id,
            traits=traits,
            context={"source": "import"},
            timestamp=now,
            received_at=now,
        )
    ]
    if row.account:
        events.append(
            IncomingEvent(
                message_id=f"import-group-{_digest(row.user_id, row.account)}",
                type="group",
                name="Group",
                user_id=row.user_id,
                group_id=row.account,
                context={"source": "import", "group_id": row.account},
                timestamp=now,
                received_at=now,
            )
        )
    return events
