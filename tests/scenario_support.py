"""The stage of the scenario tests: the whole product, driven the way its users drive it.

A ``Stack`` runs the real worker (contact workflows with their real journey and handoff
children), the gateway over HTTP with its relay, a real SMTP server and a real HTTP server
standing in for Slack and the CRM; events go in as Segment calls or signed sales webhooks,
and the ``revops`` CLI runs as a subprocess against the same store.

Long waits run in real time on **compressed definitions** (``compressed_config``): a copy of
``config/`` whose journey waits, timeouts, lateness and recycle delays count ``DAY`` seconds
for a day (``2d`` -> 2 s, ``1h`` -> 1 s, never below 1 s), with quiet hours and the weekly cap
off. Conditions keep their windows (``within: 30d``): the events of a scenario happen seconds
apart, so they fall inside them as they would over days. Per-workflow time skipping cannot move
a contact together with its children (a running child is in-flight work for its parent, and a
parent's fast-forward does not move a child's clock): README "Tests".
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import yaml
from temporalio.client import Client
from temporalio.service import RPCError

from contacts.contract import ContactState
from gateway.sales import SIGNATURE_HEADER, sign
from journeys.contract import JourneyProgress
from revops.settings import Settings
from store.decisions import DecisionLog
from store.repo import Store
from tests.conftest import ID_SECRET, REPO
from tests.gateway_support import WRITE_KEY, maybe_state, serve_gateway
from tests.sinks import HttpSink, Received, http_sink, smtp_sink
from tests.support import eventually, handle_for, running_worker, save_history
from workflows.journey import JourneyWorkflow

__all__ = ["DAY", "Stack", "compressed_config", "stack"]

DAY = 2
"""Seconds a compressed day lasts (by default: ``compressed_config(day=...)``)."""

REVOPS = str(Path(sys.executable).parent / "revops")
_TIMED = frozenset({"wait", "for", "before", "after", "timeout", "due_in", "delay"})
_DURATION = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 604800}


def _compressed(value: Any, day: int) -> Any:
    """``2d`` as 2 compressed days in whole seconds (at least 1)."""
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        return value
    seconds = int(match[1]) * _SECONDS[match[2]]
    return max(1, round(seconds / 86400 * day))


def _compress(node: Any, day: int) -> Any:
    if isinstance(node, dict):
        return {
            key: _compressed(value, day) if key in _TIMED else _compress(value, day)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_compress(item, day) for item in node]
    return node


def compressed_config(
    folder: Path, *, day: int = DAY, **edits: Callable[[dict[str, Any]], None]
) -> Path:
    """A copy of ``config/`` in ``folder`` where a day lasts ``day`` seconds; ``edits`` change
    a file's body first (by file stem: ``recycle=lambda body: ...``). Returns the config dir."""
    target = folder / "config"
    shutil.copytree(REPO / "config", target)
    for path in [*target.glob("*.yaml"), *(target / "journeys").glob("*.yaml")]:
        body = yaml.safe_load(path.read_text(encoding="utf-8"))
        if path.stem in edits:
            edits[path.stem](body)
        if path.parent.name == "journeys" or path.stem == "recycle":
            body = _compress(body, day)
        if path.stem == "policies":
            body["quiet_hours"] = {"enabled": False}
            body["frequency_cap"] = {"enabled": False}
        path.write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
    return target


@dataclass
class Stack:
    """The running product, what it sent, and ways in."""

    client: Client
    store: Store
    settings: Settings
    http: httpx.AsyncClient
    inbox: list[Message]
    web: HttpSink
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    """Makes user ids unique: contact workflow ids derive from them, and one Temporal
    server serves every test (a contact of an earlier test would answer instead)."""

    def user(self, name: str) -> str:
        """A user id for this stack only (``u-ent`` -> ``u-ent-3fa2c1``)."""
        return f"{name}-{self.tag}"

    # ---- ways in ----------------------------------------------------------------------------

    async def segment(self, call: str, **fields: Any) -> None:
        """One Segment call (``track``, ``identify``, ``page``) to the gateway, accepted."""
        body = {"messageId": f"m-{uuid.uuid4()}", **fields}
        token = base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
        answer = await self.http.post(
            f"/v1/{call}", json=body, headers={"Authorization": f"Basic {token}"}
        )
        assert answer.status_code == 200, answer.text

    async def track(self, user_id: str, event: str, **properties: Any) -> None:
        """A ``track`` call for ``user_id``."""
        await self.segment("track", userId=user_id, event=event, properties=properties)

    async def sales(self, user_id: str, activity: str, **fields: Any) -> None:
        """A sales tool's activity on the signed webhook."""
        body = json.dumps(
            {
                "id": f"wh-{uuid.uuid4()}",
                "type": activity,
                "occurred_at": datetime.now(UTC).isoformat(),
                "contact": {"user_id": user_id},
                **fields,
            }
        ).encode()
        secret = self.settings.webhook_secrets[0].get_secret_value()
        headers = {
            SIGNATURE_HEADER: sign(body, secret, int(time.time())),
            "Content-Type": "application/json",
        }
        answer = await self.http.post("/v1/webhooks/sales", content=body, headers=headers)
        assert answer.status_code == 200, answer.text

    async def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``revops ARGS`` as a user runs it, against this stack's store and server."""
        environ = {
            **os.environ,
            "REVOPS_TEMPORAL_ADDRESS": self.client.service_client.config.target_host,
            "REVOPS_TASK_QUEUE": self.settings.task_queue,
            "REVOPS_PRIORITY_TASK_QUEUE": self.settings.priority_task_queue,
            "REVOPS_DATA_DIR": str(self.settings.data_dir),
            "REVOPS_DATABASE_URL": self.store.engine.url.render_as_string(hide_password=False),
            "REVOPS_ID_SECRET": ID_SECRET,
            "REVOPS_CONFIG_DIR": str(self.settings.config_dir),
            "REVOPS_JOURNEYS_DIR": str(self.settings.journeys_dir),
            "REVOPS_LOG_LEVEL": "WARNING",
            "COLUMNS": "250",
        }
        return await asyncio.to_thread(
            subprocess.run,
            [REVOPS, *args],
            env=environ,
            capture_output=True,
            text=True,
            timeout=60,
        )

    async def show(self, user_id: str) -> dict[str, Any]:
        """``revops contacts show USER --json``: what an operator sees."""
        shown = await self.cli("contacts", "show", user_id, "--json")
        assert shown.returncode == 0, shown.stderr
        view: dict[str, Any] = json.loads(shown.stdout)
        return view

    # ---- what came out -------------------------------------------------------------------------

    def subjects(self) -> list[str]:
        """Subjects of every email the SMTP server received, in order."""
        return [str(m["Subject"]) for m in self.inbox]

    async def email(self, subject: str, *, within: float = 45.0) -> Message:
        """The first email with ``subject``, once the SMTP server has it."""

        async def look() -> Message | None:
            return next((m for m in self.inbox if m["Subject"] == subject), None)

        found = await eventually(look, lambda m: m is not None, within=within)
        assert found is not None
        return found

    def posted(self, path: str) -> list[Received]:
        """What was POSTed to the HTTP sink under ``path`` (``/slack``, ``/crm``)."""
        return [r for r in self.web.received if r.path == path]

    async def crm_task(self, title: str, *, within: float = 45.0) -> dict[str, Any]:
        """The CRM task titled ``title`` once the CRM (the HTTP sink) has it."""

        async def look() -> dict[str, Any] | None:
            tasks = [r.json()["task"] for r in self.posted("/crm")]
            return next((t for t in tasks if t["title"] == title), None)

        found = await eventually(look, lambda t: t is not None, within=within)
        assert found is not None
        return found

    async def contact(self, user_id: str, check: Callable[[ContactState], bool]) -> ContactState:
        """The contact's live state (its workflow's query) once ``check`` holds."""

        async def look() -> ContactState | None:
            if self.store.resolve(user_id) is None:
                return None
            return await maybe_state(handle_for(self.client, self.store, user_id))

        found = await eventually(look, lambda v: v is not None and check(v), within=60)
        assert found is not None
        return found

    async def progress(
        self, user_id: str, journey: str, check: Callable[[JourneyProgress], bool]
    ) -> JourneyProgress:
        """The progress of ``user_id``'s latest enrollment in ``journey`` once ``check`` holds."""
        contact_id = self.store.resolve(user_id)
        query = f"ContactId = '{contact_id}' AND Journey = '{journey}'"

        async def look() -> JourneyProgress | None:
            ids = sorted([w.id async for w in self.client.list_workflows(query)])
            if not ids:
                return None
            handle = self.client.get_workflow_handle(ids[-1])
            try:
                found: JourneyProgress = await handle.query(JourneyWorkflow.progress)
            except RPCError:
                return None
            return found

        found = await eventually(look, lambda p: p is not None and check(p), within=60)
        assert found is not None
        return found

    async def keep_history(self, user_id: str, name: str, journey: str | None = None) -> None:
        """Keep the contact's (or its ``journey``'s) history for the replay test (SQLite runs
        only: one file per name)."""
        if self.store.engine.url.get_backend_name() != "sqlite":
            return
        if journey is None:
            await save_history(handle_for(self.client, self.store, user_id), name)
            return
        contact_id = self.store.resolve(user_id)
        query = f"ContactId = '{contact_id}' AND Journey = '{journey}'"
        ids = sorted([w.id async for w in self.client.list_workflows(query)])
        await save_history(self.client.get_workflow_handle(ids[-1]), name)

    def decisions(self, contact_id: str) -> list[str]:
        """Every decision explanation line for the contact, oldest first."""
        rows = DecisionLog(self.store).recent(contact_id, limit=200)
        return [line for row in reversed(rows) for line in row.explanation]


@asynccontextmanager
async def stack(
    client: Client, store: Store, settings: Settings, config_dir: Path
) -> AsyncIterator[Stack]:
    """The product on ``config_dir`` (compressed definitions), with its sinks."""
    with smtp_sink() as (smtp_port, inbox), http_sink() as web:
        settings = settings.model_copy(
            update={
                "config_dir": config_dir,
                "journeys_dir": config_dir / "journeys",
                "smtp_port": smtp_port,
                "slack_webhook_url": f"{web.url}/slack",
                "crm_webhook_url": f"{web.url}/crm",
            }
        )
        async with (
            running_worker(client, store, settings) as relay,
            serve_gateway(settings, store, relay) as url,
            httpx.AsyncClient(base_url=url, timeout=30) as http,
        ):
            yield Stack(client, store, settings, http, inbox, web)
