"""A local Salesforce: the REST subset the connector calls, over real HTTPS.

simple-salesforce always speaks https to the instance, so the server has a self-signed
certificate made at start (``cryptography``) and the test trusts it (``REVOPS_SALESFORCE_CA_FILE``).
Implemented as Salesforce documents it: bearer session auth (401 ``INVALID_SESSION_ID``), the
``Sforce-Limit-Info: api-usage=<used>/<limit>`` header on every answer and 403
``REQUEST_LIMIT_EXCEEDED`` past the daily limit, SOQL ``GET /query`` (``SELECT fields FROM
object WHERE field IN (...) [OR field IN (...)]`` or ``WHERE SystemModstamp >= <datetime>
ORDER BY ... LIMIT n``), and sObject Collections ``PATCH /composite/sobjects`` (update by Id)
and ``PATCH /composite/sobjects/<object>/<external id field>`` (upsert), with per-record
results and ``REQUIRED_FIELD_MISSING`` for a new Lead without LastName or Company, a Contact
without LastName or an Account without Name, on the sObjects in ``SOBJECTS`` (Account,
Contact, Lead, Opportunity, Task). Anything else (another path, another sObject) answers 404
and is recorded in ``unexpected``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.sinks import free_port

SESSION = "00Dtest!session"
BASE = "/services/data/v59.0"
ROUTES = {
    ("GET", f"{BASE}/query"),
    ("PATCH", f"{BASE}/composite/sobjects"),
    ("PATCH", f"{BASE}/composite/sobjects/{{sObject}}/{{externalIdField}}"),
}
SOBJECTS = {"Account", "Contact", "Lead", "Opportunity", "Task"}
_PREFIX = {"Account": "001", "Contact": "003", "Lead": "00Q", "Task": "00T", "Opportunity": "006"}
_REQUIRED = {"Lead": ("LastName", "Company"), "Contact": ("LastName",), "Account": ("Name",)}
_SOQL = re.compile(
    r"^SELECT (?P<fields>.+?) FROM (?P<object>\w+)(?: WHERE (?P<where>.+?))?"
    r"(?: ORDER BY (?P<order>.+?))?(?: LIMIT (?P<limit>\d+))?$",
    re.IGNORECASE,
)
_IN = re.compile(r"^(\w+) IN \((.*)\)$", re.IGNORECASE)
_SINCE = re.compile(r"^(\w+) >= (\S+)$")
_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'")


class UnknownObjectError(Exception):
    """A SOQL ``FROM`` naming an sObject the local org does not implement."""


def stamp(moment: dt.datetime | None = None) -> str:
    """A datetime as Salesforce writes it."""
    moment = moment or dt.datetime.now(dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def _parse_stamp(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("+0000", "+00:00"))


@dataclass
class SalesforceOrg:
    """The org's records and counters, for assertions."""

    url: str = ""
    daily_limit: int = 15000
    used: int = 0
    objects: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    unexpected: list[tuple[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _next: int = 1

    def _new_id(self, kind: str) -> str:
        self._next += 1
        return f"{_PREFIX.get(kind, '001')}{self._next:015d}"

    def add(self, kind: str, **fields: Any) -> str:
        """A record sales created (a Lead, an Opportunity)."""
        with self._lock:
            record_id = self._new_id(kind)
            self.objects.setdefault(kind, {})[record_id] = {
                "Id": record_id,
                "SystemModstamp": stamp(),
                **fields,
            }
        return record_id

    def update(self, kind: str, record_id: str, **fields: Any) -> None:
        """Sales edits a record (its SystemModstamp moves)."""
        with self._lock:
            self.objects[kind][record_id].update(fields, SystemModstamp=stamp())

    def leads(self, email: str) -> list[dict[str, Any]]:
        return [r for r in self.objects.get("Lead", {}).values() if r.get("Email") == email]

    # ---- SOQL ----------------------------------------------------------------------------------

    def query(self, soql: str) -> dict[str, Any]:
        match = _SOQL.match(soql.strip())
        if match is None:
            raise ValueError(f"unsupported SOQL: {soql[:80]}")
        fields = [f.strip() for f in match["fields"].split(",")]
        kind = match["object"]
        if kind not in SOBJECTS:
            raise UnknownObjectError(kind)
        with self._lock:
            rows = list(self.objects.get(kind, {}).values())
        if match["where"]:
            rows = [r for r in rows if self._where(match["where"], r)]
        if match["order"]:
            rows.sort(key=lambda r: (_parse_stamp(r["SystemModstamp"]), r["Id"]))
        if match["limit"]:
            rows = rows[: int(match["limit"])]
        records = [
            {
                "attributes": {"type": kind, "url": f"{BASE}/sobjects/{kind}/{r['Id']}"},
                **{f: r.get(f) for f in fields},
            }
            for r in rows
        ]
        return {"totalSize": len(records), "done": True, "records": records}

    @staticmethod
    def _where(where: str, row: dict[str, Any]) -> bool:
        for part in re.split(r" OR ", where, flags=re.IGNORECASE):
            part = part.strip()
            if found := _IN.match(part):
                values = [v.replace("\\'", "'") for v in _QUOTED.findall(found[2])]
                if str(row.get(found[1])) in values:
                    return True
            elif found := _SINCE.match(part):
                if _parse_stamp(row[found[1]]) >= _parse_stamp(found[2]):
                    return True
            else:
                raise ValueError(f"unsupported condition: {part}")
        return False

    # ---- collections ---------------------------------------------------------------------------

    def _missing(self, kind: str, record: dict[str, Any]) -> list[str]:
        return [f for f in _REQUIRED.get(kind, ()) if not record.get(f)]

    def upsert(self, kind: str, key: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        results = []
        with self._lock:
            table = self.objects.setdefault(kind, {})
            for body in records:
                fields = {k: v for k, v in body.items() if k != "attributes"}
                existing = next((r for r in table.values() if r.get(key) == fields[key]), None)
                if existing is None:
                    missing = self._missing(kind, fields)
                    if missing:
                        results.append(_refused(missing))
                        continue
                    record_id = self._new_id(kind)
                    table[record_id] = {"Id": record_id, **fields, "SystemModstamp": stamp()}
                    results.append(
                        {"id": record_id, "success": True, "errors": [], "created": True}
                    )
                else:
                    existing.update(fields, SystemModstamp=stamp())
                    results.append(
                        {"id": existing["Id"], "success": True, "errors": [], "created": False}
                    )
        return results

    def update_by_id(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        results = []
        with self._lock:
            for body in records:
                kind = body["attributes"]["type"]
                fields = {k: v for k, v in body.items() if k not in ("attributes", "Id")}
                record = self.objects.get(kind, {}).get(body["Id"])
                if record is None:
                    error = {"statusCode": "ENTITY_IS_DELETED", "message": "entity is deleted"}
                    results.append({"success": False, "errors": [error]})
                    continue
                record.update(fields, SystemModstamp=stamp())
                results.append({"id": body["Id"], "success": True, "errors": []})
        return results


def _refused(missing: list[str]) -> dict[str, Any]:
    message = f"Required fields are missing: [{', '.join(missing)}]"
    error = {"statusCode": "REQUIRED_FIELD_MISSING", "message": message, "fields": missing}
    return {"success": False, "errors": [error]}


def _handler(org: SalesforceOrg) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json;charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Sforce-Limit-Info", f"api-usage={org.used}/{org.daily_limit}")
            self.end_headers()
            self.wfile.write(data)

        def _guard(self, method: str, route: str) -> bool:
            if self.headers.get("Authorization") != f"Bearer {SESSION}":
                error = {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
                self._answer(401, [error])
                return False
            with org._lock:
                if org.used >= org.daily_limit:
                    message = "TotalRequests Limit exceeded."
                    self._answer(403, [{"message": message, "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
                    return False
                org.used += 1
            org.calls.append((method, route))
            return True

        def do_GET(self) -> None:
            parsed = urlsplit(self.path)
            parsed = parsed._replace(path=parsed.path.rstrip("/"))
            if parsed.path != f"{BASE}/query":
                org.unexpected.append(("GET", parsed.path))
                self._answer(404, [{"message": "not found", "errorCode": "NOT_FOUND"}])
                return
            if not self._guard("GET", parsed.path):
                return
            try:
                self._answer(200, org.query(parse_qs(parsed.query)["q"][0]))
            except UnknownObjectError as exc:
                org.unexpected.append(("GET", f"query {exc}"))
                message = f"sObject type '{exc}' is not supported."
                self._answer(400, [{"message": message, "errorCode": "INVALID_TYPE"}])
            except (KeyError, ValueError) as exc:
                self._answer(400, [{"message": str(exc), "errorCode": "MALFORMED_QUERY"}])

        def do_PATCH(self) -> None:
            path = urlsplit(self.path).path.rstrip("/")
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            rest = path.removeprefix(f"{BASE}/composite/sobjects").strip("/")
            parts = rest.split("/") if rest else []
            if not path.startswith(f"{BASE}/composite/sobjects") or len(parts) not in (0, 2):
                org.unexpected.append(("PATCH", path))
                self._answer(404, [{"message": "not found", "errorCode": "NOT_FOUND"}])
                return
            route = f"{BASE}/composite/sobjects" + ("/{sObject}/{externalIdField}" if parts else "")
            if not self._guard("PATCH", route):
                return
            records = body["records"]
            kinds = {parts[0]} if parts else {r["attributes"]["type"] for r in records}
            if not kinds <= SOBJECTS:
                org.unexpected.append(("PATCH", f"{route} {sorted(kinds - SOBJECTS)}"))
                message = "The requested resource does not exist"
                self._answer(404, [{"message": message, "errorCode": "NOT_FOUND"}])
                return
            if parts:
                self._answer(200, org.upsert(parts[0], parts[1], records))
            else:
                self._answer(200, org.update_by_id(records))

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def _certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "sf-cert.pem", folder / "sf-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@contextmanager
def salesforce_server(
    folder: Path, daily_limit: int = 15000
) -> Iterator[tuple[SalesforceOrg, Path]]:
    """Serve a local Salesforce over https; yields the org (``url`` set) and its CA file."""
    org = SalesforceOrg(daily_limit=daily_limit)
    cert_file, key_file = _certificate(folder)
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _handler(org))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    org.url = f"https://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield org, cert_file
    finally:
        server.shutdown()
        server.server_close()
