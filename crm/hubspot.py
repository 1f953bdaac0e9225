"""The HubSpot connector: contacts, companies and tasks through hubspot-api-client (CRM v3).

One push of a batch (at most 100 contacts, HubSpot's batch limit) makes these calls:

1. ``POST /crm/v3/objects/contacts/search`` (email ``IN`` the batch's addresses): the CRM's
   current values of every mapped property, so a CRM-owned field is written only while empty.
2. ``POST /crm/v3/objects/contacts/batch/upsert`` (``idProperty: email``): create or update
   in one call; matching on the email makes a repeated push update, never duplicate.
3. ``POST /crm/v3/objects/companies/batch/upsert`` on the account id property and
   ``POST /crm/v4/associations/contacts/companies/batch/associate/default``, when the batch's
   contacts have accounts.

A deal's webhook is read back with ``GET /crm/v3/objects/deals/{dealId}`` (its stage, amount,
lost reason and associated contacts).

Tasks: ``POST /crm/v3/objects/tasks/batch/upsert`` on the task key property (a retried task is
the same task) and ``.../associations/tasks/contacts/batch/associate/default``.

Every call passes the shared ``RateLimit`` first; a 429 pauses all calls for its
``Retry-After`` and the call is retried, as is a 5xx or a dropped connection (with growing
back-off), up to ``max_attempts``; any other refusal raises ``CrmError`` with HubSpot's
message. Calls are synchronous (the client uses urllib3): the pusher runs them in a thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from hubspot import HubSpot
from hubspot.crm.associations.v4.exceptions import ApiException as AssociationsError
from hubspot.crm.companies.exceptions import ApiException as CompaniesError
from hubspot.crm.contacts.exceptions import ApiException as ContactsError
from hubspot.crm.deals.exceptions import ApiException as DealsError
from hubspot.crm.objects.tasks.exceptions import ApiException as TasksError
from urllib3.exceptions import HTTPError

from crm.connector import CrmError
from crm.definition import CrmDefinition
from crm.hubspot_webhooks import Deal
from crm.ratelimit import RateLimit, retry_after_seconds
from crm.records import ContactRecord, CrmTask, PushOutcome, desired_properties
from crm.records import properties_to_write as to_write

__all__ = ["API_SUBSET", "CrmError", "HubSpotConnector"]

T = TypeVar("T")

API_SUBSET = (
    ("POST", "/crm/v3/objects/contacts/search"),
    ("POST", "/crm/v3/objects/contacts/batch/upsert"),
    ("POST", "/crm/v3/objects/companies/batch/upsert"),
    ("POST", "/crm/v3/objects/tasks/batch/upsert"),
    ("POST", "/crm/v4/associations/contacts/companies/batch/associate/default"),
    ("POST", "/crm/v4/associations/tasks/contacts/batch/associate/default"),
    ("GET", "/crm/v3/objects/deals/{dealId}"),
)
"""Every HubSpot endpoint the connector calls (the local test server implements these)."""

_API_ERRORS = (ContactsError, CompaniesError, TasksError, AssociationsError, DealsError)


class HubSpotConnector:
    """Pushes contact records and tasks to one HubSpot account (a private app's token)."""

    def __init__(
        self,
        access_token: str,
        definition: CrmDefinition,
        limit: RateLimit,
        *,
        host: str | None = None,
        max_attempts: int = 8,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        options: dict[str, Any] = {"access_token": access_token}
        if host:
            options["host"] = host.rstrip("/")
        self._client = HubSpot(**options)
        self._definition = definition
        self.limit = limit
        self._attempts = max_attempts
        self._sleep = sleep
        self.calls = 0

    # ---- calls -------------------------------------------------------------------------------

    def _call(self, call: Callable[[], T]) -> T:
        """One API call under the rate limit; 429, 5xx and dropped connections retried."""
        for attempt in range(1, self._attempts + 1):
            self.limit.acquire()
            self.calls += 1
            try:
                return call()
            except _API_ERRORS as exc:
                status = int(getattr(exc, "status", 0) or 0)
                if status == 429:
                    self.limit.pause(retry_after_seconds(getattr(exc, "headers", None)))
                    continue
                if status < 500 or attempt == self._attempts:
                    raise CrmError(f"HubSpot answered {status}: {_message(exc)}") from exc
            except HTTPError as exc:
                if attempt == self._attempts:
                    raise CrmError(f"HubSpot unreachable: {type(exc).__name__}") from exc
            self._sleep(min(0.2 * 2**attempt, 10.0))
        raise CrmError(f"HubSpot still limiting after {self._attempts} attempts")

    # ---- contacts ------------------------------------------------------------------------------

    def current(self, emails: Sequence[str]) -> dict[str, dict[str, str | None]]:
        """The CRM's mapped properties of the contacts with these emails (by lowercase email)."""
        if not emails:
            return {}
        properties = sorted({"email", *self._mapped()})
        body = {
            "filterGroups": [
                {"filters": [{"propertyName": "email", "operator": "IN", "values": list(emails)}]}
            ],
            "properties": properties,
            "limit": 100,
        }
        search = self._client.crm.contacts.search_api
        page = self._call(lambda: search.do_search(public_object_search_request=body))
        found: dict[str, dict[str, str | None]] = {}
        for result in page.results:
            props = dict(result.properties or {})
            email = (props.get("email") or "").lower()
            if email:
                found[email] = {**props, "hs_object_id": result.id}
        return found

    def _mapped(self) -> list[str]:
        props = [f.property for f in self._definition.fields.values()]
        if self._definition.owner_property:
            props.append(self._definition.owner_property)
        return props

    def plan(self, records: Sequence[ContactRecord]) -> PushOutcome:
        """What a push of ``records`` would write (reads the CRM, writes nothing)."""
        outcome, _ = self._inputs(records)
        return outcome

    def _inputs(self, records: Sequence[ContactRecord]) -> tuple[PushOutcome, list[dict[str, Any]]]:
        outcome = PushOutcome()
        emailed = [r for r in records if r.email]
        for record in records:
            if not record.email:
                outcome.skipped[record.snapshot.contact_id] = "no email address to match on"
        current = self.current([str(r.email) for r in emailed])
        inputs: list[dict[str, Any]] = []
        for record in emailed:
            email = str(record.email).lower()
            existing = current.get(email)
            props = to_write(desired_properties(record, self._definition), existing)
            outcome.written[record.snapshot.contact_id] = props
            if existing is None:
                outcome.created.append(record.snapshot.contact_id)
            inputs.append({"idProperty": "email", "id": email, "properties": props})
        return outcome, inputs

    def push(self, records: Sequence[ContactRecord]) -> PushOutcome:
        """Upsert the batch's contacts (and their companies); CRM ids by contact id."""
        outcome, inputs = self._inputs(records)
        if not inputs:
            return outcome
        batch = self._client.crm.contacts.batch_api
        answer = self._call(lambda: _upsert(batch, inputs))
        by_email = {str(r.email).lower(): r.snapshot.contact_id for r in records if r.email}
        for result in answer.results:
            email = str((result.properties or {}).get("email") or "").lower()
            contact_id = by_email.get(email)
            if contact_id is not None:
                outcome.crm_ids[contact_id] = str(result.id)
        self._push_accounts(records, outcome.crm_ids)
        return outcome

    # ---- companies -------------------------------------------------------------------------------

    def _push_accounts(self, records: Sequence[ContactRecord], crm_ids: dict[str, str]) -> None:
        accounts: dict[str, dict[str, str]] = {}
        for record in records:
            if record.account_id and record.snapshot.contact_id in crm_ids:
                name = record.traits.get("company")
                props = {"name": str(name)} if name else {}
                accounts.setdefault(record.account_id, props)
        if not accounts:
            return
        key = self._definition.hubspot.account_id_property
        inputs = [
            {"idProperty": key, "id": account, "properties": {key: account, **props}}
            for account, props in sorted(accounts.items())
        ]
        batch = self._client.crm.companies.batch_api
        answer = self._call(lambda: _upsert(batch, inputs))
        company_of = {str((r.properties or {}).get(key)): str(r.id) for r in answer.results}
        pairs = [
            (crm_ids[r.snapshot.contact_id], company_of[r.account_id])
            for r in records
            if r.account_id in company_of and r.snapshot.contact_id in crm_ids
        ]
        self._associate("contacts", "companies", pairs)

    def _associate(self, source: str, target: str, pairs: Sequence[tuple[str, str]]) -> None:
        if not pairs:
            return
        body = {"inputs": [{"from": {"id": a}, "to": {"id": b}} for a, b in pairs]}
        batch = self._client.crm.associations.v4.batch_api
        self._call(
            lambda: batch.create_default(
                from_object_type=source,
                to_object_type=target,
                batch_input_public_default_association_multi_post=body,
            )
        )

    def usage(self) -> dict[str, int]:
        """HubSpot gives no daily count here: the rate window is the headroom."""
        return {}

    # ---- deals ---------------------------------------------------------------------------------

    def deal(self, deal_id: str) -> Deal:
        """A deal's stage, amount, lost reason and contacts (a webhook names only its id)."""
        pull = self._definition.pull
        properties = ["dealstage", pull.amount_property, pull.lost_reason_property]
        api = self._client.crm.deals.basic_api
        found = self._call(
            lambda: api.get_by_id(deal_id, properties=properties, associations=["contacts"])
        )
        props = dict(found.properties or {})
        associations = found.associations or {}
        linked = associations.get("contacts")
        contacts = [str(a.id) for a in (linked.results if linked else [])]
        return Deal(
            id=str(found.id),
            stage=props.get("dealstage"),
            amount=_amount(props.get(pull.amount_property)),
            lost_reason=props.get(pull.lost_reason_property) or None,
            contact_ids=contacts,
        )

    # ---- tasks ---------------------------------------------------------------------------------

    def push_tasks(self, tasks: Sequence[CrmTask], crm_ids: dict[str, str]) -> list[str]:
        """Upsert the tasks of contacts with CRM ids, on the contact; the keys pushed."""
        ready = [t for t in tasks if t.contact_id in crm_ids]
        if not ready:
            return []
        key = self._definition.hubspot.task_key_property
        inputs = [{"idProperty": key, "id": t.key, "properties": self._task(t, key)} for t in ready]
        batch = self._client.crm.objects.tasks.batch_api
        answer = self._call(lambda: _upsert(batch, inputs))
        task_of = {str((r.properties or {}).get(key)): str(r.id) for r in answer.results}
        pairs = [(task_of[t.key], crm_ids[t.contact_id]) for t in ready if t.key in task_of]
        self._associate("tasks", "contacts", pairs)
        return [t.key for t in ready if t.key in task_of]

    def _task(self, task: CrmTask, key: str) -> dict[str, str]:
        due = task.due_at or datetime.now(UTC)
        props = {
            key: task.key,
            "hs_task_subject": task.title,
            "hs_task_body": task.body,
            "hs_task_status": "NOT_STARTED",
            "hs_timestamp": due.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        }
        owners = self._definition.owners
        if task.owner and task.owner in owners:
            props["hubspot_owner_id"] = owners[task.owner]
        return props


def _amount(value: str | None) -> float | None:
    try:
        return round(float(value), 2) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _upsert(batch: Any, inputs: list[dict[str, Any]]) -> Any:
    return batch.upsert(batch_input_simple_public_object_batch_input_upsert={"inputs": inputs})


def _message(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    text = body.decode(errors="replace") if isinstance(body, bytes) else str(body or "")
    return text[:300] or str(getattr(exc, "reason", "") or "no message")
