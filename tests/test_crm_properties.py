"""Invariants of the CRM loop's pure parts, over generated input (Hypothesis).

- Ownership: a CRM-owned field the CRM holds a value in is never written; a revops-owned field
  that differs always is; nothing is written that revops does not hold.
- The import: any cell text is either a valid row or a rejected one with a reason, never an
  exception; a valid row's email is an address.
- Slack: a lead's block id round-trips; any other block id is refused as a ValueError.
- HubSpot: every sales delivery an event becomes is a valid sales webhook.
"""

from __future__ import annotations

import contextlib
import csv
import string
from pathlib import Path
from tempfile import TemporaryDirectory

from hypothesis import given, settings
from hypothesis import strategies as st

from crm.definition import CrmDefinition
from crm.hubspot_webhooks import Deal, HubSpotEvent, sales_events
from crm.records import properties_to_write
from gateway.sales import SalesWebhook
from handoff.slack import LeadRef
from starter.contacts_import import ImportRow, read_rows

names = st.text(string.ascii_lowercase + "_", min_size=1, max_size=12)
values = st.text(min_size=1, max_size=20)
current_values = st.one_of(st.none(), st.just(""), values)


@given(
    desired=st.dictionaries(names, st.tuples(values, st.booleans()), max_size=8),
    current=st.one_of(st.none(), st.dictionaries(names, current_values, max_size=8)),
)
def test_a_value_the_crm_owns_and_holds_is_never_overwritten(
    desired: dict[str, tuple[str, bool]], current: dict[str, str | None] | None
) -> None:
    written = properties_to_write(desired, current)
    now = current or {}
    for prop, (value, crm_owned) in desired.items():
        if crm_owned and now.get(prop):
            assert prop not in written
        if not crm_owned and now.get(prop) != value:
            assert written[prop] == value
    assert all(written[p] == desired[p][0] for p in written)


text_chars = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
cells = st.text(text_chars, max_size=30)


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(cells, cells, cells), min_size=1, max_size=6))
def test_any_csv_row_is_imported_or_rejected_with_a_reason(
    rows: list[tuple[str, str, str]],
) -> None:
    with TemporaryDirectory() as folder:
        path = Path(folder) / "in.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["email", "Newsletter", "crm_id"])
            writer.writerows(rows)
        _, valid, rejected = read_rows(path, ["Newsletter=consent:subscribed"])
    assert all(isinstance(r, ImportRow) and r.user_id for r in valid)
    assert all(r.reason for r in rejected)
    assert all("@" in (r.email or "@") for r in valid)
    assert len({r.user_id for r in valid}) == len(valid), "one row per contact"


ids = st.text(string.ascii_letters + string.digits + "-_", min_size=1, max_size=40)


@given(contact=ids, handoff=ids, owner=ids, junk=st.text(max_size=60))
def test_a_lead_block_round_trips_and_anything_else_is_refused(
    contact: str, handoff: str, owner: str, junk: str
) -> None:
    ref = LeadRef(contact, handoff, owner)
    assert LeadRef.of_block(ref.block_id()) == ref
    with contextlib.suppress(ValueError):  # refused as ValueError, or a lead: nothing else
        LeadRef.of_block(junk)


@given(
    kind=st.sampled_from(["deal.creation", "deal.propertyChange", "contact.propertyChange", "x"]),
    prop=st.sampled_from(["dealstage", "hubspot_owner_id", "amount", None]),
    value=st.one_of(st.none(), st.sampled_from(["closedwon", "closedlost", "qualified", "7"])),
    amount=st.one_of(st.none(), st.floats(min_value=0, max_value=1e12, allow_nan=False)),
    reason=st.one_of(st.none(), st.text(min_size=1, max_size=50).filter(str.strip)),
)
def test_every_delivery_an_event_becomes_is_a_valid_sales_webhook(
    kind: str, prop: str | None, value: str | None, amount: float | None, reason: str | None
) -> None:
    event = HubSpotEvent.model_validate(
        {
            "eventId": 1,
            "subscriptionType": kind,
            "objectId": 10,
            "occurredAt": 1_800_000_000_000,
            "propertyName": prop,
            "propertyValue": value,
        }
    )
    amount = None if amount is not None and 0 < amount < 0.01 else amount
    deal = Deal(id="5", stage="qualified", amount=amount, lost_reason=reason, contact_ids=["10"])
    for body in sales_events(event, {"10": "c1"}, CrmDefinition(), deal):
        assert SalesWebhook.model_validate(body).contact.contact_id == "c1"
