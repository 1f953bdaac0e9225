"""Metrics an operator runs on: traffic driven through the gateway and the workflows, then
read back from ``/metrics``; the journey error-rate view and its alert; the Temporal SDK's
metrics from a worker's runtime.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from gateway.metrics import ErrorRateWatch, store_registry
from revops.metrics import exposition, temporal_runtime
from revops.settings import Settings
from revops.temporal import DATA_CONVERTER
from store.effects import Ledger, SendOrigin
from store.repo import Store
from tests.conftest import ID_SECRET, REPO
from tests.gateway_support import basic_auth, free_port, serve_gateway
from tests.handoff_support import notification_sinks
from tests.sinks import http_sink
from tests.support import eventually, running_worker, send, track
from tests.test_cli import _cli_env, _revops

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
BUYER = {
    "email": "dana@northwind-robotics.com",
    "company": "Northwind Robotics",
    "company_size": 2500,
    "industry": "Software",
    "title": "VP Engineering",
    "country": "US",
}


def _samples(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _total(samples: Samples, name: str, **labels: str) -> float:
    """Sum over every label set that includes ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


def _call(user_id: str, event: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": user_id,
        "event": event,
        "messageId": str(uuid.uuid4()),
        **fields,
    }


async def _scrape(http: httpx.AsyncClient) -> Samples:
    answer = await http.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    return _samples(answer.text)


async def test_traffic_is_counted_on_metrics(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    with notification_sinks(settings) as sinks:
        async with (
            running_worker(env.client, store, sinks.settings) as relay,
            serve_gateway(sinks.settings, store, relay) as url,
            httpx.AsyncClient(base_url=url, headers=basic_auth()) as http,
        ):
            before = await _scrape(http)
            identify = {"type": "identify", "userId": "m-1", "traits": BUYER, "messageId": "m-id"}
            batch = [
                identify,
                _call("m-1", "Content Downloaded", properties={"type": "whitepaper"}),
            ]
            batch += [_call("m-1", ""), _call("m-1", "Demo Requested")]
            await http.post("/v1/batch", json={"batch": batch})
            await http.post("/v1/batch", json={"batch": [identify]})  # a duplicate
            await http.post(
                "/v1/t", json=_call("m-2", "Signed Up", timestamp="2150-01-01T00:00:00Z")
            )
            await http.post(
                "/v1/track", json=_call("m-2", "x"), headers={"Authorization": "Basic eA=="}
            )

            def progressed(now: Samples) -> bool:
                sent = {"channel": "email", "outcome": "sent"}
                return (
                    _total(now, "revops_sends_total", **sent)
                    > _total(before, "revops_sends_total", **sent)
                    and _value(now, "revops_outbox_pending") == 0
                    and _total(now, "revops_sla_open") >= 1
                )

            after = await eventually(lambda: _scrape(http), progressed, within=60)

    def delta(name: str, **labels: str) -> float:
        return _total(after, name, **labels) - _total(before, name, **labels)

    assert delta("revops_events_accepted_total") == 4
    assert delta("revops_events_duplicate_total") == 1
    assert delta("revops_events_refused_total", reason="invalid_call") == 1
    assert delta("revops_events_refused_total", reason="unauthorized") == 1
    assert delta("revops_events_clamped_total") == 1
    assert delta("revops_relay_signals_total") >= 2
    assert delta("revops_relay_lag_seconds_count") == delta("revops_relay_signals_total")
    assert delta("revops_rules_decisions_total") >= 1
    assert delta("revops_sends_total", channel="email", outcome="sent") >= 1
    assert _total(after, "revops_sla_open", state="waiting") >= 1
    assert _value(after, "revops_outbox_oldest_age_seconds") == 0
    assert _value(after, "revops_store_up") == 1
    assert _value(after, "revops_journey_error_rate_threshold") == 0.01


def _journey_sends(store: Store, journey: str, sent: int, failed: int) -> None:
    """Send steps as the send path records them: claimed, then sent or failed."""
    ledger = Ledger(store)
    for n in range(sent + failed):
        key = f"{journey}-{n}-{uuid.uuid4().hex[:6]}"
        origin = SendOrigin(journey=journey, step="d0")
        ledger.claim(key, store.contact_id_for(f"u{n}"), "email", True, "mail", origin)
        ledger.finish(key, "failed" if n < failed else "sent", "smtp 451" if n < failed else "")


async def test_a_journey_over_one_percent_failures_raises_one_alert(
    env: WorkflowEnvironment, settings: Settings
) -> None:
    store = Store.open(settings.sqlalchemy_url, id_secret=ID_SECRET)
    _journey_sends(store, "webinar", sent=48, failed=2)  # 4%: over 1%
    _journey_sends(store, "renurture", sent=199, failed=1)  # 0.5%: under
    _journey_sends(store, "tiny", sent=3, failed=1)  # 25%, but too few steps to judge
    with http_sink() as sink:
        current = settings.model_copy(
            update={
                "alert_webhook_url": f"{sink.url}/alert",
                "slack_webhook_url": f"{sink.url}/slack",
            }
        )
        watch = ErrorRateWatch(store, current)
        now = datetime.now(UTC)
        first = await watch.check(now)
        again = await watch.check(now + timedelta(minutes=5))  # within the window: no repeat
        later = await watch.check(now + timedelta(minutes=61))
    assert [row.journey for row in first] == ["webinar"] and again == []
    alerts = [r.json() for r in sink.received if r.path == "/alert"]
    assert alerts[0] | {"at": None} == {
        "alert": "journey_error_rate",
        "journey": "webinar",
        "steps": 50,
        "failed": 2,
        "rate": 0.04,
        "threshold": 0.01,
        "window_minutes": 60.0,
        "at": None,
    }
    slack = [r.json()["text"] for r in sink.received if r.path == "/slack"]
    assert "journey webinar: 2 of 50 send steps failed" in slack[0]
    assert later == []  # an hour later the failures are out of the window
    listed = await _revops(_cli_env(env, settings), "journeys", "errors", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {row["journey"]: row for row in json.loads(listed.stdout)["journeys"]}
    assert rows["webinar"]["over_threshold"] and rows["webinar"]["rate"] == 0.04
    assert not rows["renurture"]["over_threshold"] and not rows["tiny"]["over_threshold"]
    gauges = _samples(generate_latest(store_registry(store, current)).decode())
    assert _value(gauges, "revops_journey_error_rate", journey="webinar") == 0.04
    assert _value(gauges, "revops_journey_step_failures", journey="webinar") == 2
    assert _value(gauges, "revops_journey_steps", journey="renurture") == 200


async def test_a_worker_runtime_exports_task_slots_and_schedule_to_start(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    port = free_port()
    runtime = temporal_runtime(port)
    client = await Client.connect(
        env.client.service_client.config.target_host,
        data_converter=DATA_CONVERTER,
        runtime=runtime,
    )
    async with running_worker(client, store, settings) as relay, httpx.AsyncClient() as http:
        await send(store, relay, track("rt-1", "Signed Up"))

        async def scrape() -> str:
            return (await http.get(f"http://127.0.0.1:{port}/metrics")).text

        text = await eventually(scrape, lambda t: "schedule_to_start" in t, within=60)
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {"temporal_worker_task_slots_available", "temporal_worker_task_slots_used"} <= names
    assert any("schedule_to_start" in name for name in names), sorted(names)


def test_every_metric_is_documented_and_the_dashboard_queries_real_ones(
    store: Store, settings: Settings
) -> None:
    """docs/operations.md lists every product metric; the Grafana dashboard asks for no other."""
    exported = {
        family.name
        for text in (exposition(), generate_latest(store_registry(store, settings)))
        for family in text_string_to_metric_families(text.decode())
    }
    documented = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    missing = [name for name in exported if f"`{name}" not in documented]
    assert len(exported) >= 15 and missing == []
    dashboard = json.loads((REPO / "deploy" / "grafana" / "revops-dashboard.json").read_text())
    queried = {
        re.sub(r"_(total|bucket|count|sum)$", "", name)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b(revops_[a-z_]+|temporal_[a-z_]+)", target["expr"])
    }
    temporal = {n for n in queried if n.startswith("temporal_")}
    assert queried - temporal <= exported, (queried - temporal) - exported
    assert all(name.split("_")[1] in documented for name in temporal)
