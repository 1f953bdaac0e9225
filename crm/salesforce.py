"""The Salesforce connector: Leads or Contacts, Accounts, Tasks and Opportunity changes
through simple-salesforce.

Push (one batch, at most 200 records per sObject Collections call):

1. Accounts of the batch's contacts (``crm.salesforce_accounts``): ``GET /query`` by the
   account external id field, website or name, then ``PATCH /composite/sobjects`` (by ``Id``,
   Accounts sales created) and ``PATCH /composite/sobjects/Account/<account external id>``.
2. ``GET /query`` (SOQL): the batch's Leads (or Contacts: ``salesforce.contact``) by the
   external id field (``salesforce.external_id_field``, the revops contact id), by the
   Salesforce id revops stored (an import's ``crm_id``) or by ``Email``, with every mapped
   field, so a CRM-owned field is written only while empty (as for HubSpot).
3. Records found without revops' external id (sales created them): ``PATCH
   /composite/sobjects`` by ``Id``, setting the external id; the rest ``PATCH
   /composite/sobjects/<object>/<external id field>`` (upsert by external id): a repeat
   updates, never duplicates. A new record gets ``[not provided]`` for the fields Salesforce
   requires (Lead: LastName, Company; Contact: LastName) when revops has no value, as
   Web-to-Lead does. A Contact gets its Account's ``AccountId`` while it has none (sales'
   choice of account is never overwritten).

Tasks: ``PATCH /composite/sobjects/Task/<task key field>`` (upsert), ``WhoId`` the Lead.

Pull: ``opportunities_since(cursor)`` reads changed Opportunities and ``owners_since(cursor)``
the owners of revops' Leads with SOQL on ``SystemModstamp`` (see docs/crm.md for why
polling rather than Change Data Capture).

Every response carries ``Sforce-Limit-Info: api-usage=<used>/<daily limit>``; ``usage()``
returns it for ``revops crm status``. A call past the daily limit (403
``REQUEST_LIMIT_EXCEEDED``) is not retried: the batch waits in the queue.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import requests
from pydantic import BaseModel
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceError
from simple_salesforce.format import format_soql

from crm.connector import CrmError
from crm.definition import CrmDefinition
from crm.ratelimit import RateLimit
from crm.records import ContactRecord, CrmTask, PushOutcome, desired_properties
from crm.records import properties_to_write as to_write
from crm.salesforce_accounts import (
    ACCOUNT_CHUNK,
    account_bodies,
    account_query,
    match_accounts,
    wished_accounts,
)

__all__ = [
    "API_SUBSET",
    "API_VERSION",
    "SOBJECTS",
    "LeadOwner",
    "Opportunity",
    "SalesforceConnector",
]

T = TypeVar("T")

API_VERSION = "59.0"
API_SUBSET = (
    ("GET", "/services/data/v59.0/query"),
    ("PATCH", "/services/data/v59.0/composite/sobjects"),
    ("PATCH", "/services/data/v59.0/composite/sobjects/{sObject}/{externalIdField}"),
)
"""Every Salesforce endpoint the connector calls (the local test server implements these)."""

SOBJECTS = ("Account", "Contact", "Lead", "Opportunity", "Task")
"""Every sObject the connector reads or writes through those endpoints."""

REQUIRED_ON_CREATE = {
    "Lead": {"LastName": "[not provided]", "Company": "[not provided]"},
    "Contact": {"LastName": "[not provided]"},
}
_BATCH = 200
_SALESFORCE_ID = re.compile(r"^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$")
"""A record id (15 or 18 characters): Salesforce refuses a whole query naming another."""


class LeadOwner(BaseModel):
    """A Lead's owner as polled (an owner change made in Salesforce)."""

    id: str
    owner_id: str
    contact_id: str
    modified_at: datetime


class Opportunity(BaseModel):
    """An Opportunity as polled: what the sales events need."""

    id: str
    stage: str
    amount: float | None = None
    is_closed: bool = False
    is_won: bool = False
    lost_reason: str | None = None
    contact_id: str | None = None
    modified_at: datetime


def _soql_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _moment(value: Any) -> datetime:
    """A Salesforce datetime (``2026-12-05T10:00:00.000+0000``)."""
    return datetime.fromisoformat(str(value).replace("Z", "+00:00").replace("+0000", "+00:00"))


def _records(answer: Any) -> list[dict[str, Any]]:
    return [dict(r) for r in (answer or {}).get("records", [])]


class SalesforceConnector:
    """Pushes Leads or Contacts, their Accounts and Tasks to one Salesforce org and reads its
    Opportunity changes."""

    def __init__(
        self,
        definition: CrmDefinition,
        limit: RateLimit,
        *,
        instance_url: str,
        session_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
        security_token: str | None = None,
        session: requests.Session | None = None,
        max_attempts: int = 5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        options: dict[str, Any] = {"version": API_VERSION, "session": session}
        if session_id:
            options.update(instance_url=instance_url, session_id=session_id)
        else:
            options.update(username=username, password=password, security_token=security_token)
        self._sf = Salesforce(**options)
        self._definition = definition
        self._objects = definition.salesforce
        self.limit = limit
        self._attempts = max_attempts
        self._sleep = sleep
        self.calls = 0

    # ---- calls -------------------------------------------------------------------------------

    def _call(self, call: Callable[[], T]) -> T:
        for attempt in range(1, self._attempts + 1):
            self.limit.acquire()
            self.calls += 1
            try:
                return call()
            except SalesforceError as exc:
                status = int(exc.status or 0)
                if "REQUEST_LIMIT_EXCEEDED" in str(exc.content):
                    raise CrmError("Salesforce daily API limit reached") from exc
                if status < 500 or attempt == self._attempts:
                    raise CrmError(
                        f"Salesforce answered {status}: {str(exc.content)[:300]}"
                    ) from exc
            except requests.RequestException as exc:
                if attempt == self._attempts:
                    raise CrmError(f"Salesforce unreachable: {type(exc).__name__}") from exc
            self._sleep(min(0.2 * 2**attempt, 10.0))
        raise CrmError("Salesforce unreachable")

    def _query(self, soql: str) -> list[dict[str, Any]]:
        return _records(self._call(lambda: self._sf.query(soql)))

    def _collection(self, path: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        body = {"allOrNone": False, "records": records}
        answer = self._call(lambda: self._sf.restful(path, method="PATCH", json=body))
        return [dict(r) for r in (answer or [])]

    def usage(self) -> dict[str, int]:
        """The org's daily API use, from the last response's ``Sforce-Limit-Info``."""
        found = self._sf.api_usage.get("api-usage")
        return {"api_used": found.used, "api_limit": found.total} if found else {}

    # ---- leads -------------------------------------------------------------------------------

    def _fields(self) -> list[str]:
        mapped = [f.property for f in self._definition.fields.values()]
        owner = [self._definition.owner_property] if self._definition.owner_property else []
        account = ["AccountId"] if self._links_accounts else []
        return sorted({"Id", "Email", self._objects.external_id_field, *mapped, *owner, *account})

    @property
    def _links_accounts(self) -> bool:
        """Whether pushed records carry an ``AccountId`` (Contacts do; Leads have none)."""
        return self._objects.accounts and self._objects.contact == "Contact"

    def current(self, records: Sequence[ContactRecord]) -> dict[str, dict[str, Any]]:
        """The batch's Leads (or Contacts) as Salesforce holds them, by revops contact id:
        found by the external id, else by the Salesforce id revops stored, else by email."""
        key = self._objects.external_id_field
        ids = [r.snapshot.contact_id for r in records]
        emails = [str(r.email).lower() for r in records if r.email]
        soql = format_soql(
            "SELECT {:literal} FROM {:literal} WHERE {:literal} IN {} OR Email IN {}",
            ", ".join(self._fields()),
            self._objects.contact,
            key,
            ids,
            emails or [""],
        )
        linked = [r.crm_id for r in records if r.crm_id and _SALESFORCE_ID.match(r.crm_id)]
        if linked:
            soql += format_soql(" OR Id IN {}", linked)
        rows = self._query(soql)
        by_key = {str(r[key]): r for r in rows if r.get(key)}
        by_sf_id = {str(r["Id"]): r for r in rows}
        by_email = {str(r["Email"]).lower(): r for r in rows if r.get("Email")}
        found: dict[str, dict[str, Any]] = {}
        for record in records:
            row = (
                by_key.get(record.snapshot.contact_id)
                or by_sf_id.get(record.crm_id or "")
                or by_email.get(str(record.email or "").lower())
            )
            if row is not None:
                found[record.snapshot.contact_id] = row
        return found

    def plan(self, records: Sequence[ContactRecord]) -> PushOutcome:
        """What a push of ``records`` would write (reads Salesforce, writes nothing)."""
        accounts = self.push_accounts(records, write=False) if self._objects.accounts else {}
        outcome, _, _ = self._inputs(records, accounts)
        return outcome

    def _inputs(
        self, records: Sequence[ContactRecord], accounts: dict[str, str]
    ) -> tuple[PushOutcome, list[dict[str, Any]], list[dict[str, Any]]]:
        outcome = PushOutcome()
        found = self.current(records)
        key, kind = self._objects.external_id_field, self._objects.contact
        required = REQUIRED_ON_CREATE[kind]
        updates, upserts = [], []
        for record in records:
            contact_id = record.snapshot.contact_id
            existing = found.get(contact_id)
            current = {k: (None if v is None else str(v)) for k, v in (existing or {}).items()}
            props: dict[str, Any] = to_write(desired_properties(record, self._definition), current)
            if record.email and not (existing or {}).get("Email"):
                props["Email"] = str(record.email)
            account = accounts.get(record.account_id or "")
            if self._links_accounts and account and not (existing or {}).get("AccountId"):
                props["AccountId"] = account
            if existing is None:
                outcome.created.append(contact_id)
                props = {**{k: v for k, v in required.items() if k not in props}, **props}
            outcome.written[contact_id] = {k: str(v) for k, v in props.items()}
            body = {"attributes": {"type": kind}, key: contact_id, **props}
            if existing is not None and not existing.get(key):
                updates.append({**body, "Id": existing["Id"]})
            else:
                upserts.append(body)
        return outcome, updates, upserts

    def push(self, records: Sequence[ContactRecord]) -> PushOutcome:
        """Upsert the batch's Accounts, then its Leads or Contacts; Salesforce ids by contact."""
        accounts = self.push_accounts(records) if self._objects.accounts else {}
        outcome, updates, upserts = self._inputs(records, accounts)
        key, kind = self._objects.external_id_field, self._objects.contact
        for start in range(0, len(updates), _BATCH):
            chunk = updates[start : start + _BATCH]
            self._collect(outcome, chunk, self._collection("composite/sobjects", chunk), key)
        for start in range(0, len(upserts), _BATCH):
            chunk = upserts[start : start + _BATCH]
            path = f"composite/sobjects/{kind}/{key}"
            self._collect(outcome, chunk, self._collection(path, chunk), key)
        return outcome

    @staticmethod
    def _collect(
        outcome: PushOutcome, sent: list[dict[str, Any]], results: list[dict[str, Any]], key: str
    ) -> None:
        for body, result in zip(sent, results, strict=False):
            contact_id = str(body[key])
            if result.get("success"):
                outcome.crm_ids[contact_id] = str(result.get("id"))
            else:
                errors = result.get("errors") or [{}]
                outcome.skipped[contact_id] = str(errors[0].get("message", "refused"))

    # ---- accounts ----------------------------------------------------------------------------

    def push_accounts(
        self, records: Sequence[ContactRecord], *, write: bool = True
    ) -> dict[str, str]:
        """Find or upsert the Accounts of the batch's contacts; Salesforce ids by account id.
        An Account Salesforce refuses is left out (its contacts push without one). With
        ``write=False`` (a dry run) only the Accounts Salesforce holds already are found."""
        wishes = list(wished_accounts(records).values())
        ids: dict[str, str] = {}
        for start in range(0, len(wishes), ACCOUNT_CHUNK):
            chunk = wishes[start : start + ACCOUNT_CHUNK]
            rows = self._query(account_query(chunk, self._objects))
            matched = match_accounts(chunk, rows, self._objects)
            if not write:
                ids.update({account: str(row["Id"]) for account, row in matched.items()})
                continue
            ids.update(self._write_accounts(*account_bodies(chunk, matched, self._objects)))
        return ids

    def _write_accounts(
        self, updates: list[dict[str, Any]], upserts: list[dict[str, Any]]
    ) -> dict[str, str]:
        key = self._objects.account_external_id_field
        ids: dict[str, str] = {}
        for bodies, path in (
            (updates, "composite/sobjects"),
            (upserts, f"composite/sobjects/Account/{key}"),
        ):
            if not bodies:
                continue
            for body, result in zip(bodies, self._collection(path, bodies), strict=False):
                if result.get("success"):
                    ids[str(body[key])] = str(result.get("id"))
        return ids

    # ---- tasks -------------------------------------------------------------------------------

    def push_tasks(self, tasks: Sequence[CrmTask], crm_ids: dict[str, str]) -> list[str]:
        """Upsert the tasks of Leads revops knows, on the task key field; the keys pushed."""
        ready = [t for t in tasks if t.contact_id in crm_ids]
        if not ready:
            return []
        key = self._objects.task_key_field
        records = [
            {
                "attributes": {"type": "Task"},
                key: t.key,
                "WhoId": crm_ids[t.contact_id],
                "Subject": t.title[:255],
                "Description": t.body,
                "Status": "Not Started",
                "ActivityDate": (t.due_at or datetime.now(UTC)).date().isoformat(),
                **self._task_owner(t),
            }
            for t in ready
        ]
        results = self._collection(f"composite/sobjects/Task/{key}", records)
        return [t.key for t, r in zip(ready, results, strict=False) if r.get("success")]

    def _task_owner(self, task: CrmTask) -> dict[str, str]:
        owners = self._definition.owners
        return {"OwnerId": owners[task.owner]} if task.owner and task.owner in owners else {}

    # ---- opportunities -----------------------------------------------------------------------

    def owners_since(self, cursor: datetime, limit: int = 200) -> list[LeadOwner]:
        """Owners of revops' Leads modified at or after ``cursor``, oldest first."""
        key = self._objects.external_id_field
        soql = format_soql(
            "SELECT Id, OwnerId, {:literal}, SystemModstamp FROM {:literal} "
            "WHERE SystemModstamp >= {:literal} ORDER BY SystemModstamp ASC, Id ASC "
            "LIMIT {:literal}",
            key,
            self._objects.contact,
            _soql_time(cursor),
            str(limit),
        )
        return [
            LeadOwner(
                id=str(row["Id"]),
                owner_id=str(row["OwnerId"]),
                contact_id=str(row[key]),
                modified_at=_moment(row["SystemModstamp"]),
            )
            for row in self._query(soql)
            if row.get(key) and row.get("OwnerId")
        ]

    def opportunities_since(self, cursor: datetime, limit: int = 200) -> list[Opportunity]:
        """Opportunities modified at or after ``cursor``, oldest first (SystemModstamp)."""
        objects, pull = self._objects, self._definition.pull
        fields = ["Id", "StageName", "Amount", "IsClosed", "IsWon", "SystemModstamp"]
        fields += [objects.opportunity_contact_field, objects.loss_reason_field]
        soql = format_soql(
            "SELECT {:literal} FROM Opportunity WHERE SystemModstamp >= {:literal} "
            "ORDER BY SystemModstamp ASC, Id ASC LIMIT {:literal}",
            ", ".join(fields),
            _soql_time(cursor),
            str(limit),
        )
        found = []
        for row in self._query(soql):
            amount = row.get("Amount")
            found.append(
                Opportunity(
                    id=str(row["Id"]),
                    stage=str(row.get("StageName") or ""),
                    amount=float(amount) if amount is not None else None,
                    is_closed=bool(row.get("IsClosed")),
                    is_won=bool(row.get("IsWon")),
                    lost_reason=row.get(objects.loss_reason_field) or pull.default_lost_reason,
                    contact_id=row.get(objects.opportunity_contact_field),
                    modified_at=_moment(row["SystemModstamp"]),
                )
            )
        return found
