"""Search attributes support filters on in the Temporal UI. Opaque ids and stage names only."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

__all__ = [
    "ACCOUNT_ID",
    "ALL_SEARCH_ATTRIBUTES",
    "CONTACT_ID",
    "DEMAND_STATE",
    "JOURNEY",
    "JOURNEY_VERSION",
    "LIFECYCLE_STAGE",
    "OWNER",
    "SLA_STATE",
]

CONTACT_ID = SearchAttributeKey.for_keyword("ContactId")
LIFECYCLE_STAGE = SearchAttributeKey.for_keyword("LifecycleStage")
DEMAND_STATE = SearchAttributeKey.for_keyword("DemandState")
JOURNEY = SearchAttributeKey.for_keyword("Journey")
JOURNEY_VERSION = SearchAttributeKey.for_keyword("JourneyVersion")
OWNER = SearchAttributeKey.for_keyword("Owner")
SLA_STATE = SearchAttributeKey.for_keyword("SlaState")
"""A handoff's SLA state (``waiting``, ``breached``, ``escalated``, ...), on handoff workflows."""
ACCOUNT_ID = SearchAttributeKey.for_keyword("AccountId")

ALL_SEARCH_ATTRIBUTES = (
    CONTACT_ID,
    LIFECYCLE_STAGE,
    DEMAND_STATE,
    JOURNEY,
    JOURNEY_VERSION,
    OWNER,
    SLA_STATE,
    ACCOUNT_ID,
)
