"""A journey's record of an email keeps the subject template, never the rendered subject:
the rendered one may name the person, and Temporal keeps progress and activity results in
its history (docs/privacy.md; ``workflow.patched("privacy-subject-template")``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from audience.consent import Consent
from revops.settings import Settings
from starter.simulate import simulation_environment
from store.repo import Store
from tests.journey_support import contact, journey, journey_worker, progress_when, start, took
from tests.sinks import smtp_sink
from tests.support import save_history

GREETING = """
steps:
  - id: hello
    send: {channel: email, name: Hello, subject: "Hello {{ contact.first_name }}", body: "Hi"}
"""


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def journey_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping dev server whose timers fire at once (see tests/journey_support.py)."""
    async with simulation_environment() as environment:
        yield environment


async def test_progress_and_history_keep_the_subject_template_not_the_name(
    journey_env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    who = contact(store, "u-subject", first_name="Dorotea")
    with smtp_sink() as (port, inbox):
        configured = settings.model_copy(update={"smtp_port": port})
        async with journey_worker(journey_env, store, configured):
            handle = await start(journey_env, configured, journey(GREETING), who, consent=Consent())
            progress = await progress_when(handle, took("hello"))
            await handle.result()
            history = await handle.fetch_history()
            await save_history(handle, "journey_privacy_subject_template")
    (message,) = inbox
    assert message["Subject"] == "Hello Dorotea"
    record = next(r for r in progress.steps if r.step == "hello")
    assert (record.outcome, record.subject) == ("sent", "Hello {{ contact.first_name }}")
    stored = b"".join(e.SerializeToString() for e in history.events)
    assert b"Dorotea" not in stored
