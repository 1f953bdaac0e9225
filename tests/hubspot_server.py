"""A local HubSpot: the subset of the CRM v3 / v4 APIs the connector calls, over real HTTP.

Implemented as HubSpot documents them (request and response shapes, error bodies): bearer
token auth (401 ``INVALID_AUTHENTICATION``), the burst rate limit (429 with ``Retry-After``
and ``errorType: RATE_LIMIT`` past ``limit`` requests per ``window`` seconds), contacts search
(``email IN``), batch upsert of contacts (``idProperty: email``), companies and tasks (on a
unique custom property), default associations (v4), and reading a deal with its properties and
associated contacts. Anything else answers 404 and is
recorded in ``unexpected``, so a test can hold the connector to this subset.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.sinks import free_port

TOKEN = "pat-test-hubspot"

ROUTES = {
    ("POST", "/crm/v3/objects/contacts/search"),
    ("POST", "/crm/v3/objects/contacts/batch/upsert"),
    ("POST", "/crm/v3/objects/companies/batch/upsert"),
    ("POST", "/crm/v3/objects/tasks/batch/upsert"),
    ("POST", "/crm/v4/associations/contacts/companies/batch/associate/default"),
    ("POST", "/crm/v4/associations/tasks/contacts/batch/associate/default"),
    ("GET", "/crm/v3/objects/deals/{dealId}"),
}
_ASSOCIATION_TYPES = {("contacts", "companies"): 279, ("tasks", "contacts"): 204}


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class HubSpotRecord:
    """One CRM object: its id, properties and whether it was ever created twice."""

    id: str
    properties: dict[str, str]
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)

    def body(self, *, new: bool | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "properties": {**self.properties, "hs_object_id": self.id},
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "archived": False,
        }
        if new is not None:
            out["new"] = new
        return out


@dataclass
class HubSpot:
    """The server's state, for assertions."""

    url: str = ""
    limit: int = 100
    window: float = 10.0
    objects: dict[str, dict[str, HubSpotRecord]] = field(default_factory=dict)
    associations: set[tuple[str, str, str, str]] = field(default_factory=set)
    calls: list[tuple[str, str]] = field(default_factory=list)
    throttled: int = 0
    unexpected: list[tuple[str, str]] = field(default_factory=list)
    creations: dict[str, int] = field(default_factory=dict)
    """How often each (object, key) was created: more than once is a duplicate."""
    _recent: deque[float] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _next_id: int = 1000

    def contact(self, email: str) -> dict[str, str] | None:
        """A contact's properties by email."""
        for record in self.objects.get("contacts", {}).values():
            if record.properties.get("email") == email.lower():
                return {**record.properties, "hs_object_id": record.id}
        return None

    def records(self, kind: str) -> list[HubSpotRecord]:
        return list(self.objects.get(kind, {}).values())

    def add_contact(self, email: str, **properties: str) -> str:
        """A contact created in HubSpot by sales (not by revops)."""
        with self._lock:
            record = self._create("contacts", "email", {"email": email.lower(), **properties})
        return record.id

    def add_deal(self, contact_ids: list[str], **properties: str) -> str:
        """A deal sales created in HubSpot, associated with these contacts."""
        with self._lock:
            record = self._create("deals", "hs_object_id", dict(properties))
            for contact_id in contact_ids:
                self.associations.add(("deals", record.id, "contacts", contact_id))
        return record.id

    def update_deal(self, deal_id: str, **properties: str) -> None:
        """Sales moves the deal (a stage, an amount)."""
        with self._lock:
            self.objects["deals"][deal_id].properties.update(properties)

    def read_deal(self, deal_id: str, query: dict[str, list[str]]) -> dict[str, Any] | None:
        with self._lock:
            record = self.objects.get("deals", {}).get(deal_id)
            if record is None:
                return None
            wanted = {p for v in query.get("properties", []) for p in v.split(",")}
            answer = record.body()
            answer["properties"] = {
                k: v for k, v in answer["properties"].items() if k in wanted | {"hs_object_id"}
            }
            kinds = {a for v in query.get("associations", []) for a in v.split(",")}
            if "contacts" in kinds:
                linked = [
                    {"id": c, "type": "deal_to_contact"}
                    for (src, d, dst, c) in sorted(self.associations)
                    if src == "deals" and d == deal_id and dst == "contacts"
                ]
                answer["associations"] = {"contacts": {"results": linked}}
            return answer

    # ---- behaviour -----------------------------------------------------------------------------

    def allow(self) -> bool:
        with self._lock:
            now = time.monotonic()
            while self._recent and now - self._recent[0] >= self.window:
                self._recent.popleft()
            if len(self._recent) >= self.limit:
                self.throttled += 1
                return False
            self._recent.append(now)
            return True

    def spend(self) -> None:
        """Another app of the account uses up the current window's requests (its next calls
        are throttled until the window rolls over)."""
        with self._lock:
            now = time.monotonic()
            self._recent.extend([now] * (self.limit - len(self._recent)))

    def retry_after(self) -> float:
        with self._lock:
            if not self._recent:
                return 0
            return max(self.window - (time.monotonic() - self._recent[0]), 0.05)

    def _create(self, kind: str, key_property: str, props: dict[str, str]) -> HubSpotRecord:
        self._next_id += 1
        record = HubSpotRecord(id=str(self._next_id), properties=props)
        self.objects.setdefault(kind, {})[record.id] = record
        key = f"{kind}:{props.get(key_property)}"
        self.creations[key] = self.creations.get(key, 0) + 1
        return record

    def _find(self, kind: str, prop: str, value: str) -> HubSpotRecord | None:
        for record in self.objects.get(kind, {}).values():
            if record.properties.get(prop) == value:
                return record
        return None

    def search(self, body: dict[str, Any]) -> dict[str, Any]:
        filters = [f for g in body.get("filterGroups", []) for f in g.get("filters", [])]
        wanted = {p for p in body.get("properties") or []} | {"email"}
        emails: set[str] = set()
        for f in filters:
            if f.get("propertyName") != "email" or f.get("operator") not in ("IN", "EQ"):
                raise ValueError("only email IN / EQ filters are implemented")
            emails |= {str(v).lower() for v in f.get("values") or [f.get("value")]}
        with self._lock:
            found = [
                r
                for r in self.objects.get("contacts", {}).values()
                if r.properties.get("email") in emails
            ]
            results = []
            for record in found[: int(body.get("limit", 10))]:
                answer = record.body()
                answer["properties"] = {
                    k: v for k, v in answer["properties"].items() if k in wanted
                }
                results.append(answer)
        return {"total": len(found), "results": results}

    def upsert(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        started = _now()
        results = []
        with self._lock:
            for item in body["inputs"]:
                prop, value = item["idProperty"], str(item["id"])
                value = value.lower() if prop == "email" else value
                props = {k: str(v) for k, v in (item.get("properties") or {}).items()}
                record = self._find(kind, prop, value)
                new = record is None
                if record is None:
                    record = self._create(kind, prop, {prop: value, **props})
                else:
                    record.properties.update(props)
                    record.updated_at = _now()
                results.append(record.body(new=new))
        return _batch(results, started)

    def associate(self, source: str, target: str, body: dict[str, Any]) -> dict[str, Any]:
        started = _now()
        type_id = _ASSOCIATION_TYPES[(source, target)]
        results = []
        with self._lock:
            for item in body["inputs"]:
                a, b = str(item["from"]["id"]), str(item["to"]["id"])
                self.associations.add((source, a, target, b))
                results.append(
                    {
                        "from": {"id": a},
                        "to": {"id": b},
                        "associationSpec": {
                            "associationCategory": "HUBSPOT_DEFINED",
                            "associationTypeId": type_id,
                        },
                    }
                )
        return _batch(results, started)


def _batch(results: list[dict[str, Any]], started: str) -> dict[str, Any]:
    return {"status": "COMPLETE", "results": results, "startedAt": started, "completedAt": _now()}


def _error(category: str, message: str, **extra: Any) -> dict[str, Any]:
    return {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": category,
        **extra,
    }


def _handler(state: HubSpot) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: dict[str, Any], **headers: str) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json;charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _guard(self) -> bool:
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                message = "Authentication credentials not found."
                self._answer(401, _error("INVALID_AUTHENTICATION", message))
                return False
            if not state.allow():
                wait = state.retry_after()
                body = _error(
                    "RATE_LIMITS",
                    "You have reached your ten_secondly_rolling limit.",
                    errorType="RATE_LIMIT",
                    policyName="TEN_SECONDLY_ROLLING",
                )
                self._answer(429, body, **{"Retry-After": f"{wait:.2f}"})
                return False
            return True

        def do_GET(self) -> None:
            parsed = urlsplit(self.path)
            prefix = "/crm/v3/objects/deals/"
            if not parsed.path.startswith(prefix) or "/" in parsed.path[len(prefix) :]:
                state.unexpected.append(("GET", parsed.path))
                self._answer(404, _error("OBJECT_NOT_FOUND", f"no route {parsed.path}"))
                return
            if not self._guard():
                return
            state.calls.append(("GET", "/crm/v3/objects/deals/{dealId}"))
            found = state.read_deal(parsed.path[len(prefix) :], parse_qs(parsed.query))
            if found is None:
                self._answer(404, _error("OBJECT_NOT_FOUND", "Object not found."))
                return
            self._answer(200, found)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            raw = self.rfile.read(length)
            path = self.path.split("?")[0]
            if ("POST", path) not in ROUTES:
                state.unexpected.append(("POST", path))
                self._answer(404, _error("OBJECT_NOT_FOUND", f"no route {path}"))
                return
            if not self._guard():
                return
            state.calls.append(("POST", path))
            try:
                self._answer(200, self._route(path, json.loads(raw)))
            except (KeyError, ValueError) as exc:
                self._answer(400, _error("VALIDATION_ERROR", f"invalid input: {exc}"))

        def _route(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
            parts = path.strip("/").split("/")
            if parts[:2] == ["crm", "v4"]:
                return state.associate(parts[3], parts[4], body)
            if parts[-1] == "search":
                return state.search(body)
            return state.upsert(parts[3], body)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def hubspot_server(limit: int = 100, window: float = 10.0) -> Iterator[HubSpot]:
    """Serve a local HubSpot on a free port in a thread; yields its state (``url`` set)."""
    state = HubSpot(limit=limit, window=window)
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
