"""Optional OpenTelemetry tracing through Temporal's interceptor (``REVOPS_OTEL_TRACING``).

Off by default: a client gets no interceptor. On: the relay's signal-with-start and the
contact workflow's run and activities become spans of the process's tracer provider (here an
in-memory exporter), linked in one trace.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.testing import WorkflowEnvironment

from revops.settings import Settings
from revops.temporal import connect, tracing_interceptors
from store.repo import Store
from tests.support import eventually, running_worker, send, track


async def test_tracing_is_off_by_default_and_traces_an_event_end_to_end_when_on(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    assert tracing_interceptors(settings) == []
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    address = env.client.service_client.config.target_host
    traced = settings.model_copy(update={"otel_tracing": True, "temporal_address": address})
    client = await connect(traced)
    async with running_worker(client, store, traced) as relay:
        await send(store, relay, track("otel-1", "Signed Up"))

        async def names() -> set[str]:
            return {span.name for span in exporter.get_finished_spans()}

        seen = await eventually(names, lambda n: "RunWorkflow:ContactWorkflow" in n)
    assert "SignalWithStartWorkflow:ContactWorkflow" in seen
    spans = exporter.get_finished_spans()
    started = next(s for s in spans if s.name == "SignalWithStartWorkflow:ContactWorkflow")
    run = next(s for s in spans if s.name == "RunWorkflow:ContactWorkflow")
    assert run.context is not None and started.context is not None
    assert run.context.trace_id == started.context.trace_id  # one trace
