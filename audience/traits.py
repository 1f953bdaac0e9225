"""The contact trait schema: which trait names exist, so definitions can be checked against it.

Traits come from ``identify`` calls (Segment's reserved traits, flattened by the gateway into
the profile keys scoring, lists and routing read), from revops itself (``email_domain``,
``unsubscribed``, ``opportunity_open``), from journey ``set`` steps, and from the
organisation's own schema, ``config/traits.yaml`` (kind ``traits``): a trait a condition or a
template names that none of these provides is most likely misspelt, and ``revops definitions
validate`` warns about it. Nothing at run time depends on this file.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

from pydantic import Field, model_validator

from revops.strict import StrictModel

__all__ = ["BUILT_IN_TRAITS", "TraitDefinition", "TraitSchema"]

BUILT_IN_TRAITS: Mapping[str, str] = MappingProxyType(
    {
        # Segment's reserved identify traits (both spellings SDKs use).
        **dict.fromkeys(
            (
                "address",
                "age",
                "avatar",
                "birthday",
                "company",
                "createdAt",
                "created_at",
                "description",
                "email",
                "firstName",
                "first_name",
                "gender",
                "id",
                "lastName",
                "last_name",
                "name",
                "phone",
                "title",
                "username",
                "website",
            ),
            "a reserved identify trait",
        ),
        # The flat profile keys the gateway fills from identify and group calls.
        **dict.fromkeys(
            ("company_size", "industry", "country", "timezone", "account_domain", "plan"),
            "the gateway's profile keys",
        ),
        # Routing inputs (handoff.routing.RoutingInput.from_facts).
        **dict.fromkeys(("company_domain", "region", "segment", "icp_tier"), "a routing input"),
        # Kept by revops itself.
        "email_domain": "revops (the email's domain; the address stays in the store)",
        "unsubscribed": "revops (consent)",
        **dict.fromkeys(
            ("email_opt_in", "sms_opt_in", "sales_contact"),
            "consent per purpose (audience.purposes)",
        ),
        "opportunity_open": "revops (an opportunity is open)",
    }
)
"""Traits that exist without any declaration, with where each comes from."""

TraitType = Literal["text", "number", "boolean", "list", "time"]


class TraitDefinition(StrictModel):
    """One trait of the organisation's schema (sent on identify, set by an integration)."""

    name: str = Field(min_length=1)
    type: TraitType | None = None
    description: str = ""


class TraitSchema(StrictModel):
    """The organisation's own traits, beside the built-in ones (``BUILT_IN_TRAITS``)."""

    version: int = Field(default=1, ge=1)
    traits: tuple[TraitDefinition, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> TraitSchema:
        names = [t.name for t in self.traits]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"trait {twice[0]!r} is declared twice")
        return self

    def names(self) -> frozenset[str]:
        """Every trait that exists: built in or declared here."""
        return frozenset(BUILT_IN_TRAITS) | {t.name for t in self.traits}
