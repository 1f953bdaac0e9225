"""Connecting to Temporal with the project's data converter.

Every client (worker, gateway relay, CLI, tests) goes through ``connect`` so pydantic models
round-trip the same way everywhere.
"""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RetryConfig, RPCError

from revops.errors import TemporalUnavailable
from revops.settings import Settings

__all__ = ["DATA_CONVERTER", "FAIL_FAST", "connect"]

DATA_CONVERTER = pydantic_data_converter
FAIL_FAST = RetryConfig(max_interval_millis=1000, max_elapsed_time_millis=2000, max_retries=4)
"""Client retries for callers that retry themselves (the relay backs off and tries again)."""


async def connect(settings: Settings, *, lazy: bool = False) -> Client:
    """A client for the configured frontend; raises TemporalUnavailable when unreachable.

    ``lazy`` is for processes that must run while Temporal is down (the gateway: it accepts
    into the store and its relay retries on its own): connect on first use, and let a call
    fail within a couple of seconds instead of retrying for ten.
    """
    try:
        return await Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            data_converter=DATA_CONVERTER,
            lazy=lazy,
            retry_config=FAIL_FAST if lazy else None,
        )
    except (RuntimeError, RPCError) as exc:
        raise TemporalUnavailable(
            f"cannot reach Temporal at {settings.temporal_address}: {exc}. "
            "Is `make run` (or `revops dev`) running?"
        ) from exc
