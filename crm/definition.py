"""The CRM definition: which CRM, which objects, which field maps where, and who owns it.

One versioned definition (kind ``crm``, ``config/crm.yaml``) in the one registry, so a mapping
change is validated, deployed, diffed and rolled back like any other. Secrets (tokens, client
secrets, passwords) never live here: they come from settings (docs/crm.md).

``fields`` maps what revops knows about a contact (a fixed vocabulary: ``stage``,
``lead_status``, ``fit``, ``engagement``, ``owner``, ``mql_at``, ``top_behaviours``,
``demand_state``, or ``trait:<name>`` for a profile trait) to a CRM property, and says which
system **owns** it: ``revops`` (revops writes it on every push; the CRM's edits are
overwritten) or ``crm`` (revops writes it only while the CRM's value is empty: a value the CRM
holds is never overwritten). The email is the match key and is always sent.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from audience.conditions import config_error
from revops.strict import StrictModel

__all__ = [
    "REVOPS_FIELDS",
    "CrmDefinition",
    "FieldMap",
    "HubSpotObjects",
    "PullMapping",
    "SalesforceObjects",
    "parse_crm",
]

Provider = Literal["none", "hubspot", "salesforce"]
Owner = Literal["revops", "crm"]
AccountMatch = Literal["name", "domain"]

REVOPS_FIELDS = frozenset(
    {
        "stage",
        "lead_status",
        "fit",
        "engagement",
        "owner",
        "mql_at",
        "top_behaviours",
        "demand_state",
    }
)
"""What revops knows about a contact and can push (besides ``trait:<name>``)."""


class FieldMap(StrictModel):
    """One revops field in the CRM: its property and which system owns it."""

    property: str = Field(min_length=1, max_length=100)
    owner: Owner = "revops"


class HubSpotObjects(StrictModel):
    """HubSpot object types: contacts carry the lead, companies the account, tasks the
    handoff's tasks. ``account_id_property`` and ``task_key_property`` are custom properties
    with unique values (create them once; docs/crm.md) that upserts match on."""

    contact: Literal["contacts"] = "contacts"
    account: Literal["companies"] = "companies"
    task: Literal["tasks"] = "tasks"
    account_id_property: str = "revops_account_id"
    task_key_property: str = "revops_task_key"


class SalesforceObjects(StrictModel):
    """Salesforce objects: a Lead or a Contact per contact (upserted on an external id field),
    its Account (upserted on the account external id field, or found by name or website),
    Tasks, and the Opportunities read back.

    ``accounts: false`` leaves Accounts to Salesforce (lead conversion); a Contact then gets
    no ``AccountId`` from revops."""

    contact: Literal["Lead", "Contact"] = "Lead"
    external_id_field: str = "Revops_Contact_Id__c"
    accounts: bool = True
    account_external_id_field: str = "Revops_Account_Id__c"
    account_match: list[AccountMatch] = Field(
        default_factory=lambda: list[AccountMatch](["domain", "name"]),
        description="how an Account sales created is found when it lacks revops' external id: "
        "by its Website (the account's domain trait) and/or by its Name (the company trait)",
    )
    task_key_field: str = "Revops_Task_Key__c"
    opportunity_contact_field: str = "Revops_Contact_Id__c"
    """The Opportunity field holding the revops contact id (the Lead's, mapped on conversion)."""
    loss_reason_field: str = "Loss_Reason__c"


class PullMapping(StrictModel):
    """How the CRM's deal changes read as sales events."""

    won_stages: list[str] = Field(default_factory=lambda: ["closedwon", "Closed Won"])
    lost_stages: list[str] = Field(default_factory=lambda: ["closedlost", "Closed Lost"])
    amount_property: str = "amount"
    lost_reason_property: str = "closed_lost_reason"
    default_lost_reason: str = "Unspecified"


def _default_fields() -> dict[str, FieldMap]:
    return {
        "stage": FieldMap(property="lifecyclestage"),
        "lead_status": FieldMap(property="hs_lead_status"),
        "fit": FieldMap(property="revops_fit_score"),
        "engagement": FieldMap(property="revops_engagement_score"),
        "owner": FieldMap(property="revops_owner"),
        "mql_at": FieldMap(property="revops_mql_date"),
        "top_behaviours": FieldMap(property="revops_top_behaviours"),
        "demand_state": FieldMap(property="revops_demand_state"),
        "trait:first_name": FieldMap(property="firstname", owner="crm"),
        "trait:last_name": FieldMap(property="lastname", owner="crm"),
        "trait:title": FieldMap(property="jobtitle", owner="crm"),
        "trait:company": FieldMap(property="company", owner="crm"),
    }


class CrmDefinition(StrictModel):
    """The CRM connector's definition (``config/crm.yaml``)."""

    version: str | int = 1
    provider: Provider = "none"
    hubspot: HubSpotObjects = Field(default_factory=HubSpotObjects)
    salesforce: SalesforceObjects = Field(default_factory=SalesforceObjects)
    fields: dict[str, FieldMap] = Field(default_factory=_default_fields)
    stages: dict[str, str] = Field(
        default_factory=dict,
        description="revops stage -> the CRM's value (unlisted: sent as revops names it)",
    )
    lead_status: dict[str, str] = Field(
        default_factory=dict,
        description="handoff SLA state (routing, waiting, met, breached, escalated, "
        "reassigned, accepted, rejected, closed) -> the CRM's lead status",
    )
    owners: dict[str, str] = Field(
        default_factory=dict, description="revops rep id -> the CRM's owner id"
    )
    owner_property: str | None = Field(
        default=None, description="the CRM's owner field, set from ``owners`` (hubspot_owner_id)"
    )
    score_change_threshold: float = Field(default=5, ge=0)
    """A score change smaller than this (fit or engagement, points) is not pushed alone."""
    batch_size: int = Field(default=100, ge=1, le=100)
    pull: PullMapping = Field(default_factory=PullMapping)

    @model_validator(mode="after")
    def _known_fields(self) -> CrmDefinition:
        for name in self.fields:
            if name not in REVOPS_FIELDS and not (name.startswith("trait:") and len(name) > 6):
                known = ", ".join(sorted(REVOPS_FIELDS))
                raise ValueError(f"fields.{name}: not a revops field ({known}, or trait:<name>)")
        properties = [f.property for f in self.fields.values()]
        doubled = sorted({p for p in properties if properties.count(p) > 1})
        if doubled:
            raise ValueError(f"fields: property {doubled[0]} is mapped twice")
        contact = self.salesforce.contact if self.provider == "salesforce" else None
        if contact == "Contact" and "Company" in properties:
            raise ValueError(
                "fields: a Salesforce Contact has no Company field "
                "(the company trait names the contact's Account)"
            )
        return self

    @property
    def enabled(self) -> bool:
        """Whether contacts push to a CRM at all."""
        return self.provider != "none"


def parse_crm(data: Any, source: str) -> CrmDefinition:
    """The CRM definition of ``data`` (an empty file: no CRM); ConfigError naming the field."""
    try:
        return CrmDefinition.model_validate(data or {})
    except ValidationError as exc:
        raise config_error(exc, source) from exc
