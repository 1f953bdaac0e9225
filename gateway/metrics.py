"""``/metrics`` on the gateway, the store's gauges, and the journey error-rate alert.

The product counters live in ``revops.metrics`` (incremented where things happen). What the
store holds is read at scrape time by ``StoreGauges``: outbox depth and oldest age, open
handoffs by SLA state and breaches, and each journey's send steps, failures and error rate
over the window. ``ErrorRateWatch`` checks the same rates every minute in the process whose
relay is active (one per store, so one alert per breach, not one per gateway replica) and
raises an alert event when a journey's rate exceeds ``REVOPS_JOURNEY_ERROR_RATE_THRESHOLD``
(1%, as seed 000 asks): a log line, Slack, and/or a JSON POST to ``REVOPS_ALERT_WEBHOOK_URL``.
Alerts are posted here, not through the contact send path (``send_effect``): they must get out
when the workers or Temporal are what is failing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from revops.logging import get_logger
from revops.metrics import CONTENT_TYPE, exposition
from revops.settings import Settings
from store.metrics import JourneyErrorRate, journey_error_rates, snapshot
from store.repo import Store

__all__ = ["ErrorRateWatch", "StoreGauges", "metrics_router", "store_registry"]

log = get_logger(__name__)
WATCH_INTERVAL_SECONDS = 60.0


def _window(settings: Settings) -> timedelta:
    return timedelta(minutes=settings.journey_error_rate_window_minutes)


class StoreGauges(Collector):
    """Gauges read from the store when Prometheus scrapes."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self._store = store
        self._settings = settings

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("revops_store_up", "1 when the store answered this scrape")
        now = datetime.now(UTC)
        try:
            facts = snapshot(self._store, now, now - _window(self._settings))
        except Exception as exc:  # a scrape must never fail the endpoint (store down)
            log.warning("metrics_store_unreachable", error=type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily(
            "revops_outbox_pending", "Events waiting in the outbox", value=facts.outbox_pending
        )
        yield GaugeMetricFamily(
            "revops_outbox_oldest_age_seconds",
            "Age of the oldest event waiting in the outbox (0 when empty)",
            value=facts.outbox_oldest_seconds,
        )
        states = GaugeMetricFamily(
            "revops_sla_open", "Open handoffs (no outcome yet) by SLA state", labels=["state"]
        )
        for state, count in sorted(facts.sla_open.items()):
            states.add_metric([state], count)
        yield states
        yield CounterMetricFamily(
            "revops_sla_breaches", "SLA breaches recorded by handoffs", value=facts.sla_breaches
        )
        yield from self._journeys(facts.journeys)

    def _journeys(self, rates: list[JourneyErrorRate]) -> Iterator[Metric]:
        minutes = self._settings.journey_error_rate_window_minutes
        steps = GaugeMetricFamily(
            "revops_journey_steps",
            f"Send steps started in the last {minutes:g} min",
            labels=["journey"],
        )
        failed = GaugeMetricFamily(
            "revops_journey_step_failures",
            f"Send steps of the last {minutes:g} min whose last attempt failed",
            labels=["journey"],
        )
        rate = GaugeMetricFamily(
            "revops_journey_error_rate",
            "Failed over all send steps in the window",
            labels=["journey"],
        )
        for row in rates:
            steps.add_metric([row.journey], row.steps)
            failed.add_metric([row.journey], row.failed)
            rate.add_metric([row.journey], row.rate)
        yield from (steps, failed, rate)
        yield GaugeMetricFamily(
            "revops_journey_error_rate_threshold",
            "The error rate above which a journey raises an alert",
            value=self._settings.journey_error_rate_threshold,
        )


def store_registry(store: Store, settings: Settings) -> CollectorRegistry:
    """A registry holding this app's store gauges (one per app: tests run several)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreGauges(store, settings))
    return registry


metrics_router = APIRouter(tags=["health"])


@metrics_router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus text format: the process's counters, then the store's gauges."""
    registry: CollectorRegistry = request.app.state.metrics_registry

    def render() -> bytes:
        return exposition() + generate_latest(registry)

    return Response(await run_in_threadpool(render), media_type=CONTENT_TYPE)


class ErrorRateWatch:
    """Raises an alert when a journey's error rate passes the threshold (once per window)."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self._store = store
        self._settings = settings
        self._alerted: dict[str, datetime] = {}

    def over(self, now: datetime) -> list[JourneyErrorRate]:
        """Journeys over the threshold with enough steps, not alerted within the window."""
        settings, window = self._settings, _window(self._settings)
        found = []
        for row in journey_error_rates(self._store, now - window):
            if row.steps < settings.journey_error_rate_min_steps:
                continue
            if row.rate <= settings.journey_error_rate_threshold:
                continue
            last = self._alerted.get(row.journey)
            if last is not None and now - last < window:
                continue
            found.append(row)
        return found

    async def check(self, now: datetime) -> list[JourneyErrorRate]:
        """Alert for each journey over the threshold; returns them."""
        found = await run_in_threadpool(self.over, now)
        for row in found:
            self._alerted[row.journey] = now
            await self._alert(row, now)
        return found

    async def _alert(self, row: JourneyErrorRate, now: datetime) -> None:
        settings = self._settings
        payload: dict[str, Any] = {
            "alert": "journey_error_rate",
            "journey": row.journey,
            "steps": row.steps,
            "failed": row.failed,
            "rate": round(row.rate, 4),
            "threshold": settings.journey_error_rate_threshold,
            "window_minutes": settings.journey_error_rate_window_minutes,
            "at": now.isoformat(),
        }
        log.error("journey_error_rate_high", **{k: v for k, v in payload.items() if k != "at"})
        text = (
            f":rotating_light: journey {row.journey}: {row.failed} of {row.steps} send steps "
            f"failed in the last {settings.journey_error_rate_window_minutes:g} min "
            f"({row.rate:.1%}, threshold {settings.journey_error_rate_threshold:.1%})"
        )
        targets = [
            (settings.alert_webhook_url, payload),
            (settings.slack_webhook_url, {"text": text}),
        ]
        async with httpx.AsyncClient(timeout=settings.http_timeout_seconds) as http:
            for url, body in targets:
                if url:
                    await _post(http, url, body)

    async def run(self, active: Any, stop: asyncio.Event) -> None:
        """Check every minute while ``active()`` (this process's relay holds the lease)."""
        while not stop.is_set():
            if active():
                try:
                    await self.check(datetime.now(UTC))
                except Exception as exc:  # the watch must outlive a store outage
                    log.warning("error_rate_watch_failed", error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), WATCH_INTERVAL_SECONDS)


async def _post(http: httpx.AsyncClient, url: str, body: dict[str, Any]) -> None:
    try:
        answer = await http.post(url, json=body)
        answer.raise_for_status()
    except httpx.HTTPError as exc:
        log.warning("alert_post_failed", error=type(exc).__name__)
