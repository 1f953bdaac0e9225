"""The codec endpoint: the Temporal UI and CLI decrypt payloads here, for authorised staff.

With payload encryption on (``revops/codec.py``) Temporal's database and its UI hold
ciphertext. Temporal's remote-codec protocol lets the UI (Settings -> Codec Server) and the CLI
(``--codec-endpoint``) send payloads to a server that holds the keys:
``POST /v1/codec/decode`` and ``/v1/codec/encode`` with ``{"payloads": [...]}`` (the JSON form
of ``temporal.api.common.v1.Payloads``: metadata values and data in base64), answered in the
same form. The keys never leave this process.

Who may: a bearer token from ``REVOPS_CODEC_TOKENS`` (the CLI's ``--codec-auth "Bearer …"``),
or a signed-in dashboard session (the UI in the same browser, with "include cross-origin
credentials"); anyone else gets 401. Browsers may call it from the Temporal UI's origin
(``REVOPS_TEMPORAL_UI_URL``) and from ``REVOPS_CODEC_CORS_ORIGINS``: CORS with credentials,
preflight answered, other origins refused.
"""

from __future__ import annotations

import hmac
from typing import Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payloads

from gateway.dashboard_auth import COOKIE, session_user
from gateway.http import GatewayError, read_body
from revops.settings import Settings
from revops.temporal import codec_for

__all__ = ["MAX_BODY", "allowed_origins", "router"]

MAX_BODY = 8 * 1024 * 1024
"""Largest request (a workflow's payloads, base64): Temporal limits a payload to 2 MB."""

router = APIRouter(prefix="/v1/codec", tags=["codec"])


def allowed_origins(settings: Settings) -> set[str]:
    """Browser origins that may call the endpoint (the Temporal UI's, and those configured)."""
    ui = urlsplit(settings.temporal_ui)
    return {f"{ui.scheme}://{ui.netloc}", *(o.rstrip("/") for o in settings.codec_cors_origins)}


def _cors(request: Request, response: Response) -> None:
    origin = request.headers.get("origin")
    if origin and origin in allowed_origins(request.app.state.settings):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers["Vary"] = "Origin"


def _authorised(request: Request) -> bool:
    settings: Settings = request.app.state.settings
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token:
        for allowed in settings.codec_tokens:
            if hmac.compare_digest(allowed.get_secret_value().encode(), token.strip().encode()):
                return True
    return session_user(settings, request.cookies.get(COOKIE)) is not None


@router.options("/{operation}", include_in_schema=False)
async def preflight(operation: str, request: Request) -> Response:
    """CORS preflight of the Temporal UI (POST with Content-Type, X-Namespace, Authorization)."""
    origin = request.headers.get("origin", "")
    if origin not in allowed_origins(request.app.state.settings):
        return Response(status_code=403)
    response = Response(status_code=204)
    _cors(request, response)
    response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
    response.headers["Access-Control-Allow-Headers"] = "Content-Type, X-Namespace, Authorization"
    response.headers["Access-Control-Max-Age"] = "600"
    return response


async def _run(request: Request, operation: Literal["encode", "decode"]) -> Response:
    if not _authorised(request):
        raise GatewayError(401, "unauthorised", "a codec token or a dashboard sign-in is needed")
    body = await read_body(request, MAX_BODY)
    payloads = Payloads()
    try:
        json_format.Parse(body, payloads)
    except (json_format.ParseError, DecodeError, UnicodeDecodeError) as exc:
        raise GatewayError(400, "invalid_payloads", f"not a Payloads JSON document: {exc}") from exc
    codec = codec_for(request.app.state.settings)
    if codec is not None:
        try:
            changed = await getattr(codec, operation)(list(payloads.payloads))
        except ValueError as exc:
            raise GatewayError(400, "undecodable", str(exc)) from exc
        del payloads.payloads[:]
        payloads.payloads.extend(changed)
    response = Response(json_format.MessageToJson(payloads), media_type="application/json")
    _cors(request, response)
    return response


@router.post("/decode", summary="Decrypt payloads (Temporal remote codec)")
async def decode(request: Request) -> Response:
    """Payloads as the UI or CLI read them from history, decrypted."""
    return await _run(request, "decode")


@router.post("/encode", summary="Encrypt payloads (Temporal remote codec)")
async def encode(request: Request) -> Response:
    """Payloads the UI or CLI is about to send (a signal, a query), encrypted."""
    return await _run(request, "encode")
