"""The one definitions service: every kind of versioned definition, parsed and validated,
deployed version first, shipped file otherwise, cached until it changes.

- ``kinds``: the kinds (typed keys such as ``ROUTING``), their files and parsers, ``read_file``;
- ``journeys``: the journey library and the catalog of active journeys;
- ``cache``: the one cache key (registry revision and file stamps) and memoized values;
- ``service``: ``Definitions``, what activities, the gateway and the CLI ask.
"""

from definitions.journeys import (
    deployable_body,
    from_registry,
    journey_catalog,
    load_journey_library,
)
from definitions.kinds import (
    ACCOUNTS,
    ATTRIBUTION,
    BUNDLE,
    CRM,
    DEMAND_STATES,
    HANDOFF,
    JOURNEY,
    KINDS,
    LIFECYCLE,
    LISTS,
    POLICIES,
    RECYCLE,
    ROUTING,
    SCORING,
    TRAITS,
    Active,
    Kind,
    kind_named,
    read_active,
    read_file,
)
from definitions.service import DEFAULT_NAME, Definitions

__all__ = [
    "ACCOUNTS",
    "ATTRIBUTION",
    "BUNDLE",
    "CRM",
    "DEFAULT_NAME",
    "DEMAND_STATES",
    "HANDOFF",
    "JOURNEY",
    "KINDS",
    "LIFECYCLE",
    "LISTS",
    "POLICIES",
    "RECYCLE",
    "ROUTING",
    "SCORING",
    "TRAITS",
    "Active",
    "Definitions",
    "Kind",
    "deployable_body",
    "from_registry",
    "journey_catalog",
    "kind_named",
    "load_journey_library",
    "read_active",
    "read_file",
]
