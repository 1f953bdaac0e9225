"""The product's Prometheus metrics: one registry per process, served at ``/metrics``.

Counters are incremented where the thing happens (the gateway's accept path, the relay, the
send path, the rules activity); gauges of what the store holds (outbox depth, open SLAs,
journey error rates) are read from the store when Prometheus scrapes, by a collector the
gateway registers (``gateway/metrics.py``), so they are right whichever process did the work.
The Temporal SDK's own metrics (task slots, schedule-to-start latency, sticky cache) come from
its runtime's Prometheus exporter on the worker's ``REVOPS_WORKER_METRICS_PORT``
(``temporal_runtime``). docs/operations.md lists every metric, what it means and the alerts.

Names and labels carry no personal data: channels, reasons, outcomes and journey names only.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.registry import Collector
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

__all__ = [
    "CONTENT_TYPE",
    "EVENTS_ACCEPTED",
    "EVENTS_CLAMPED",
    "EVENTS_DUPLICATE",
    "EVENTS_REFUSED",
    "REGISTRY",
    "RELAY_FAILURES",
    "RELAY_LAG",
    "RELAY_SIGNALS",
    "RULES_DECISIONS",
    "SENDS",
    "exposition",
    "register_collector",
    "temporal_runtime",
]

# No `_created` series beside every counter: noise on dashboards.
disable_created_metrics()  # type: ignore[no-untyped-call]
REGISTRY = CollectorRegistry(auto_describe=True)
"""This process's product metrics (not the default registry: no process or GC noise)."""
CONTENT_TYPE = CONTENT_TYPE_LATEST

EVENTS_ACCEPTED = Counter(
    "revops_events_accepted", "Events stored by the gateway (new messageIds)", registry=REGISTRY
)
EVENTS_DUPLICATE = Counter(
    "revops_events_duplicate",
    "Events acknowledged but not stored again (messageId seen before)",
    registry=REGISTRY,
)
EVENTS_REFUSED = Counter(
    "revops_events_refused",
    "Requests refused (4xx/503) and calls of a batch rejected, by reason code",
    ["reason"],
    registry=REGISTRY,
)
EVENTS_CLAMPED = Counter(
    "revops_events_clamped",
    "Events whose time lay beyond the future margin and was clamped to their arrival",
    registry=REGISTRY,
)
RELAY_SIGNALS = Counter(
    "revops_relay_signals",
    "Signal-with-starts the relay sent to contact workflows, by lane (pass or express)",
    ["lane"],
    registry=REGISTRY,
)
RELAY_FAILURES = Counter(
    "revops_relay_failures", "Deliveries that failed and stay in the outbox", registry=REGISTRY
)
RELAY_LAG = Histogram(
    "revops_relay_lag_seconds",
    "Per signal: from the arrival at the gateway of the longest-waiting event it carried to "
    "Temporal acknowledging it",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
    registry=REGISTRY,
)
SENDS = Counter(
    "revops_sends",
    "Effects performed by the send path, by channel and outcome "
    "(sent, skipped, duplicate, failed: one per failed attempt)",
    ["channel", "outcome"],
    registry=REGISTRY,
)
RULES_DECISIONS = Counter(
    "revops_rules_decisions",
    "Journey decisions of the rules engine, by action (enroll, exit, pause, resume, refuse, none)",
    ["action"],
    registry=REGISTRY,
)


def register_collector(collector: Collector) -> None:
    """Add a scrape-time collector (the store's gauges) to this process's registry, once."""
    try:
        REGISTRY.register(collector)
    except ValueError:  # already registered (a second app in the same process)
        return


def exposition() -> bytes:
    """The registry in Prometheus' text format."""
    return generate_latest(REGISTRY)


def temporal_runtime(port: int | None) -> Runtime | None:
    """A Temporal runtime exporting the SDK's metrics for Prometheus on ``port`` (all
    interfaces), or None (the default runtime, no exporter) without a port."""
    if port is None:
        return None
    prometheus = PrometheusConfig(bind_address=f"0.0.0.0:{port}", durations_as_seconds=True)
    return Runtime(telemetry=TelemetryConfig(metrics=prometheus))
