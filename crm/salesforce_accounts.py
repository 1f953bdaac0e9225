"""Salesforce Accounts for a batch of contacts: what to look for, what was found, what to write.

A contact's account is the revops account id (its ``group`` call) with the name of its
``company`` trait and the domain of its ``domain`` (or ``website``) trait. Salesforce may hold
that Account already: written by an earlier push (found by the account external id field), or
created by sales (found, per the definition's ``account_match``, by its ``Website`` or its
``Name``). One SOQL query per chunk of accounts finds them; those sales created get revops'
external id by ``Id``, the rest are upserted on the external id, so a repeat never duplicates.

The Account's name and website belong to the CRM: revops writes them only on a new Account or
while Salesforce holds none, never over a value sales typed. Pure functions: the connector
(``crm.salesforce``) makes the calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from simple_salesforce.format import format_soql

from crm.definition import SalesforceObjects
from crm.records import ContactRecord

__all__ = [
    "ACCOUNT_CHUNK",
    "AccountWish",
    "account_bodies",
    "account_query",
    "match_accounts",
    "wished_accounts",
]

ACCOUNT_CHUNK = 40
"""Accounts per SOQL query (the names and website variants keep the query URL short)."""


@dataclass(frozen=True)
class AccountWish:
    """An account as revops knows it: its id, and the name and domain from the traits."""

    account_id: str
    name: str | None = None
    domain: str | None = None


def _domain(value: Any) -> str | None:
    """``https://www.Acme.io/about`` -> ``acme.io`` (None when there is nothing to match on)."""
    text = str(value or "").strip().lower()
    for prefix in ("https://", "http://"):
        text = text.removeprefix(prefix)
    text = text.removeprefix("www.").split("/")[0].split("?")[0]
    return text if "." in text else None


def _websites(domain: str) -> list[str]:
    """The ways a Website field may spell a domain (SOQL ``IN`` compares exactly)."""
    hosts = (domain, f"www.{domain}")
    return [f"{scheme}{host}" for host in hosts for scheme in ("", "http://", "https://")]


def wished_accounts(records: Sequence[ContactRecord]) -> dict[str, AccountWish]:
    """The batch's accounts by account id (the first contact naming a value gives it)."""
    found: dict[str, AccountWish] = {}
    for record in records:
        if not record.account_id:
            continue
        traits = record.traits
        name = str(traits["company"]).strip() if traits.get("company") else None
        domain = _domain(traits.get("domain") or traits.get("website"))
        known = found.get(record.account_id)
        if known is None:
            found[record.account_id] = AccountWish(record.account_id, name or None, domain)
        else:
            found[record.account_id] = AccountWish(
                record.account_id, known.name or name or None, known.domain or domain
            )
    return found


def account_query(wishes: Sequence[AccountWish], objects: SalesforceObjects) -> str:
    """SOQL for the Accounts of ``wishes``: by external id, and by website or name."""
    key = objects.account_external_id_field
    clauses = [format_soql("{:literal} IN {}", key, [w.account_id for w in wishes])]
    domains = [site for w in wishes if w.domain for site in _websites(w.domain)]
    names = [w.name for w in wishes if w.name]
    if "domain" in objects.account_match and domains:
        clauses.append(format_soql("Website IN {}", domains))
    if "name" in objects.account_match and names:
        clauses.append(format_soql("Name IN {}", names))
    return f"SELECT Id, Name, Website, {key} FROM Account WHERE " + " OR ".join(clauses)


def match_accounts(
    wishes: Sequence[AccountWish], rows: Sequence[dict[str, Any]], objects: SalesforceObjects
) -> dict[str, dict[str, Any]]:
    """The Salesforce Account of each wished account id: its own (external id), else the one
    at its domain, else the one of its name (an Account already revops' is never taken)."""
    key = objects.account_external_id_field
    by_key = {str(r[key]): r for r in rows if r.get(key)}
    free = [r for r in rows if not r.get(key)]
    by_domain = {_domain(r.get("Website")): r for r in free if _domain(r.get("Website"))}
    by_name = {str(r.get("Name") or "").strip().lower(): r for r in free if r.get("Name")}
    matched: dict[str, dict[str, Any]] = {}
    taken: set[str] = set()
    for wish in wishes:
        row = by_key.get(wish.account_id)
        if row is None and "domain" in objects.account_match and wish.domain:
            row = by_domain.get(wish.domain)
        if row is None and "name" in objects.account_match and wish.name:
            row = by_name.get(wish.name.lower())
        if row is not None and (row.get(key) or str(row["Id"]) not in taken):
            matched[wish.account_id] = row
            taken.add(str(row["Id"]))
    return matched


def account_bodies(
    wishes: Sequence[AccountWish],
    matched: dict[str, dict[str, Any]],
    objects: SalesforceObjects,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """sObject records to send: updates by ``Id`` (Accounts sales created, given revops'
    external id) and upserts on the external id (the rest). Name and Website are written only
    where Salesforce holds none; a new Account without a company trait is named by its id."""
    key = objects.account_external_id_field
    updates: list[dict[str, Any]] = []
    upserts: list[dict[str, Any]] = []
    for wish in wishes:
        row = matched.get(wish.account_id) or {}
        body: dict[str, Any] = {"attributes": {"type": "Account"}, key: wish.account_id}
        if not row.get("Name"):
            body["Name"] = wish.name or wish.account_id
        if wish.domain and not row.get("Website"):
            body["Website"] = wish.domain
        if row and not row.get(key):
            updates.append({**body, "Id": row["Id"]})
        else:
            upserts.append(body)
    return updates, upserts
