"""Connecting to Temporal with the project's data converter.

Every client (worker, gateway relay, CLI, tests) goes through ``connect`` so pydantic models
round-trip the same way everywhere.
"""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError

from revops.errors import TemporalUnavailable
from revops.settings import Settings

__all__ = ["DATA_CONVERTER", "connect"]

DATA_CONVERTER = pydantic_data_converter


async def connect(settings: Settings) -> Client:
    """A client for the configured frontend; raises TemporalUnavailable when unreachable."""
    try:
        return await Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            data_converter=DATA_CONVERTER,
        )
    except (RuntimeError, RPCError) as exc:
        raise TemporalUnavailable(
            f"cannot reach Temporal at {settings.temporal_address}: {exc}. "
            "Is `make run` (or `revops dev`) running?"
        ) from exc
