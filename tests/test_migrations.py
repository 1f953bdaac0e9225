"""Migrations run once, under a lock; workers and the gateway wait for them and never migrate.

Real processes (`revops migrate`, `revops worker`, `revops gateway`) start at once against the
real PostgreSQL (a fresh schema per test) or a fresh SQLite file, as a deploy starts them.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import inspect, text
from temporalio.testing import WorkflowEnvironment

from store.db import SchemaNotReady, create_store_engine, migrate, schema_state, wait_for_schema
from tests.conftest import ID_SECRET, _postgres_schema_url
from tests.gateway_support import free_port

REVOPS = str(Path(sys.executable).parent / "revops")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL schema (never migrated)."""
    yield from _postgres_schema_url()


def _environ(database_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "REVOPS_DATABASE_URL": database_url,
        "REVOPS_ID_SECRET": ID_SECRET,
        "REVOPS_LOG_FORMAT": "json",
        **extra,
    }


def _start(environ: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [REVOPS, *args], env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _finish(process: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def _read_until(process: subprocess.Popen[str], mark: str, within: float = 60) -> str:
    """What ``process`` wrote to stderr up to the line holding ``mark`` (AssertionError when
    it exits or ``within`` seconds pass first)."""
    assert process.stderr is not None
    deadline, seen = time.monotonic() + within, ""
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        seen += line
        if mark in line:
            return seen
        if not line and process.poll() is not None:
            break
    raise AssertionError(f"{mark} not written; stderr so far: {seen[-2000:]}")


def _table_count(url: str) -> int:
    engine = create_store_engine(url)
    try:
        return len(inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_four_migrate_processes_at_once_migrate_the_schema_exactly_once(pg_url: str) -> None:
    environ = _environ(pg_url)
    processes = [_start(environ, "migrate") for _ in range(4)]
    results = [_finish(p) for p in processes]

    assert [code for code, _, _ in results] == [0, 0, 0, 0], results
    outputs = [out for _, out, _ in results]
    assert sum("migrated from empty" in out for out in outputs) == 1, outputs
    assert sum("store schema current" in out for out in outputs) == 3, outputs
    engine = create_store_engine(pg_url)
    try:
        state = schema_state(engine)
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    finally:
        engine.dispose()
    assert state.at_head
    assert sorted(v for (v,) in versions) == sorted(state.head)  # one row per head, no dupes


def test_concurrent_migrations_of_a_fresh_sqlite_file_all_succeed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    processes = [_start(_environ(url), "migrate") for _ in range(3)]
    results = [_finish(p) for p in processes]

    assert [code for code, _, _ in results] == [0, 0, 0], results
    assert sum("migrated from empty" in out for _, out, _ in results) == 1
    engine = create_store_engine(url)
    assert schema_state(engine).at_head
    engine.dispose()


@pytest.mark.postgres
def test_migrate_check_changes_nothing_and_says_what_to_run(pg_url: str) -> None:
    before = _finish(_start(_environ(pg_url), "migrate", "--check"))
    assert before[0] == 3
    assert "run `revops migrate`" in before[2]
    assert _table_count(pg_url) == 0

    assert _finish(_start(_environ(pg_url), "migrate"))[0] == 0
    after = _finish(_start(_environ(pg_url), "migrate", "--check", "--json"))
    assert after[0] == 0, after
    view = json.loads(after[1])
    assert view["current"] is True and view["migrated"] is False
    assert view["before"] == view["head"] and view["head"]


@pytest.mark.postgres
@pytest.mark.parametrize("role", ["worker", "gateway"])
def test_a_process_on_an_unmigrated_database_waits_then_fails_clearly(
    pg_url: str, role: str
) -> None:
    environ = _environ(
        pg_url,
        REVOPS_SCHEMA_WAIT_SECONDS="3",
        REVOPS_GATEWAY_PORT=str(free_port()),
        REVOPS_TEMPORAL_ADDRESS="127.0.0.1:1",  # never reached: the schema check comes first
    )
    started = time.monotonic()
    code, _, err = _finish(_start(environ, role))
    elapsed = time.monotonic() - started

    assert code == 3, err
    assert '"event": "schema_not_ready"' in err  # the clear log line while it waits
    assert "run `revops migrate`" in err
    assert 3 <= elapsed < 30
    assert _table_count(pg_url) == 0  # it never migrated


@pytest.mark.postgres
async def test_a_worker_started_before_the_migration_waits_for_it_then_serves(
    env: WorkflowEnvironment, pg_url: str
) -> None:
    port = free_port()
    environ = _environ(
        pg_url,
        REVOPS_SCHEMA_WAIT_SECONDS="60",
        REVOPS_TEMPORAL_ADDRESS=env.client.service_client.config.target_host,
        REVOPS_TASK_QUEUE=f"tq-migrate-{port}",
        REVOPS_WORKER_HEALTH_PORT=str(port),
    )
    worker = _start(environ, "worker")
    try:
        # Migrate only once the worker says it waits: a fast migrate could otherwise finish
        # before the worker first looked, and the wait would not be tested.
        waited = await asyncio.to_thread(_read_until, worker, '"event": "schema_not_ready"')
        assert worker.poll() is None  # still waiting, not crashed
        assert _table_count(pg_url) == 0
        migrated = await asyncio.to_thread(_finish, _start(environ, "migrate"))
        assert migrated[0] == 0, migrated
        ready = await _answer(f"http://127.0.0.1:{port}/readyz", within=60)
        probed = await asyncio.to_thread(
            _finish, _start(environ, "health"), 20
        )  # the compose healthcheck's command, default URL from the port
    finally:
        worker.terminate()
        code, _, err = await asyncio.to_thread(_finish, worker)
    assert ready == {"ready": True, "store": "ok", "temporal": "ok"}
    assert probed[0] == 0, probed
    assert code == 0, waited + err
    assert "revops migrate" in waited


def test_health_exits_1_when_nothing_answers() -> None:
    url = _dead_url()
    code, out, _ = _finish(_start(_environ("sqlite://"), "health", "--url", url, "--json"))
    assert code == 1
    view = json.loads(out)
    assert view["url"] == url and view["healthy"] is False and view["status"] is None
    assert "ConnectError" in view["answer"]


def test_a_schema_newer_than_the_code_is_left_alone_and_accepted(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = create_store_engine(url)
    migrate(engine)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO alembic_version (version_num) VALUES ('9999')"))

    assert wait_for_schema(engine, 0).ahead  # a rolling deploy: older workers keep running
    code, out, _ = _finish(_start(_environ(url), "migrate"))
    assert code == 0
    assert "newer than this release" in out
    engine.dispose()


def test_waiting_on_an_empty_store_times_out_naming_the_command(tmp_path: Path) -> None:
    engine = create_store_engine(f"sqlite:///{tmp_path / 'store.db'}")
    with pytest.raises(SchemaNotReady, match=r"run `revops migrate`"):
        wait_for_schema(engine, 0.2, poll=0.05)
    engine.dispose()


def _dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}/healthz"


async def _answer(url: str, *, within: float) -> object:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient() as http:
        while True:
            try:
                answer = await http.get(url, timeout=2)
                if answer.status_code == 200:
                    return answer.json()
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} never answered 200")
            await asyncio.sleep(0.3)
