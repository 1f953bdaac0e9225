"""HTTP plumbing of the gateway: authentication, body reading, limits, and error answers.

Every ingest route runs the same guard before FastAPI sees the body: check the credentials
(401 before anything is read), read at most the route's byte limit (413), un-gzip with the same
limit so a small bomb cannot expand (413), parse strict JSON (400: no NaN/Infinity, no NUL or
unpaired surrogates, which PostgreSQL would refuse later), and only then hand the parsed body to
FastAPI for model validation. Each refusal names the field or limit; nothing refused reaches
the store. Errors use Segment's ``{"code", "message"}`` shape, which its SDKs log.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import math
import zlib
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, ClassVar

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.segment import MAX_BATCH_BYTES, MAX_EVENT_BYTES
from revops.errors import StoreUnavailable
from revops.metrics import EVENTS_REFUSED

__all__ = [
    "MAX_DEPTH",
    "RETRY_AFTER_SECONDS",
    "BatchRoute",
    "ErrorResponse",
    "GatewayError",
    "JsonRoute",
    "TrackingRoute",
    "describe_errors",
    "install_error_handlers",
    "storable",
    "text_fault",
    "write_key_of",
]

RETRY_AFTER_SECONDS = 5
MAX_DEPTH = 32
"""Deepest nesting accepted in a body (an event's properties may nest about 28 levels)."""
_SEGMENT_TYPES = frozenset({"track", "identify", "page", "screen", "group", "alias"})


class ErrorResponse(BaseModel):
    """Why a request was refused; ``field`` and ``index`` locate the problem when known."""

    code: str
    message: str
    field: str | None = None
    index: int | None = None


class GatewayError(Exception):
    """A refusal with its HTTP status; raised anywhere in a request, answered as ErrorResponse."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        index: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = ErrorResponse(code=code, message=message, field=field, index=index)
        self.headers = headers


def _answer(error: GatewayError, request: Request) -> JSONResponse:
    request.state.refusal = error.body.code  # for the access log
    if request.url.path.startswith("/v1/"):
        EVENTS_REFUSED.labels(error.body.code).inc()
    return JSONResponse(
        error.body.model_dump(exclude_none=True),
        status_code=error.status,
        headers=dict(error.headers) if error.headers else None,
    )


# ---- reading the body ------------------------------------------------------------------------


def _too_large(limit: int, what: str) -> GatewayError:
    return GatewayError(413, "too_large", f"{what} is over the {limit // 1024} KB limit")


async def _read_wire(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit, "request body")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit, "request body")
        chunks.append(chunk)
    return b"".join(chunks)


def _gunzip(raw: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        body = inflater.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise GatewayError(400, "invalid_gzip", f"body is not valid gzip: {exc}") from exc
    if len(body) > limit:
        raise _too_large(limit, "uncompressed request body")
    if not inflater.eof or inflater.unused_data:
        raise GatewayError(400, "invalid_gzip", "gzip body is truncated or has trailing data")
    return body


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, un-gzipped, at most ``limit`` bytes (GatewayError otherwise)."""
    raw = await _read_wire(request, limit)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding == "gzip":
        return _gunzip(raw, limit)
    if encoding not in ("identity", ""):
        raise GatewayError(415, "unsupported_encoding", "Content-Encoding must be gzip or none")
    return raw


# ---- parsing JSON ------------------------------------------------------------------------------


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _walk(value: Any, depth: int, check_text: bool) -> None:
    """Refuse nesting deeper than MAX_DEPTH and, if asked, NUL or unpaired surrogates.

    The store cannot hold NUL or unpaired surrogates (PostgreSQL refuses them) and very deep
    nesting would overflow the JSON encoder on the way to the store or to Temporal.
    """
    if depth > MAX_DEPTH:
        raise GatewayError(400, "too_deep", f"body is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if check_text:
                _check_text(key)
            _walk(item, depth + 1, check_text)
    elif isinstance(value, list):
        for item in value:
            _walk(item, depth + 1, check_text)
    elif check_text and isinstance(value, str):
        _check_text(value)


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise GatewayError(400, "invalid_text", "strings must not contain NUL characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        message = "strings must not contain unpaired surrogates"
        raise GatewayError(400, "invalid_text", message) from exc


def text_fault(value: Any) -> str | None:
    """Why ``value`` holds text the store cannot keep (NUL, unpaired surrogates), or None."""
    try:
        _walk(value, 0, check_text=True)
    except GatewayError as error:
        return error.body.message
    return None


def storable(value: Any) -> Any:
    """``value`` with NUL and unpaired surrogates replaced, so a refused call can be kept."""
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [storable(item) for item in value]
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
    return value


def parse_json(body: bytes, *, calls: str | None = None) -> dict[str, Any]:
    """A JSON object from ``body``; GatewayError(400) with the reason otherwise.

    With ``calls`` (a batch's list key) the text of each call is left to the route, which
    refuses only the call that holds NUL or an unpaired surrogate, not the whole batch.
    """
    if not body.strip():
        raise GatewayError(400, "invalid_json", "body is empty: a JSON object is required")
    try:
        text = body.decode("utf-8")  # strict: no encoded surrogates, no UTF-16 guessing
        parsed = json.loads(text, parse_float=_finite, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        message = f"body is not valid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})"
        raise GatewayError(400, "invalid_json", message) from exc
    except UnicodeDecodeError as exc:
        raise GatewayError(400, "invalid_json", "body is not UTF-8 text") from exc
    except RecursionError as exc:
        raise GatewayError(400, "invalid_json", "body is nested too deeply") from exc
    except ValueError as exc:
        raise GatewayError(400, "invalid_json", f"body is not valid JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise GatewayError(400, "invalid_json", "body must be a JSON object")
    check_text = "\\u" in text  # only escapes smuggle NUL or lone surrogates
    items = parsed.get(calls) if calls else None
    if isinstance(items, list):
        _walk({k: v for k, v in parsed.items() if k != calls}, 0, check_text)
        for item in items:
            _walk(item, 2, check_text=False)
    else:
        _walk(parsed, 0, check_text)
    return parsed


class _ParsedRequest(Request):
    """The request as FastAPI sees it: the decoded body, already parsed, typed as JSON."""

    def __init__(self, request: Request, body: bytes, parsed: dict[str, Any]) -> None:
        scope = dict(request.scope)
        scope["headers"] = [
            (k, v)
            for k, v in request.scope["headers"]
            if k not in (b"content-type", b"content-encoding")
        ] + [(b"content-type", b"application/json")]
        super().__init__(scope, request.receive)
        self._decoded = body
        self._parsed = parsed

    async def body(self) -> bytes:
        return self._decoded

    async def json(self) -> Any:
        return self._parsed


# ---- authentication ---------------------------------------------------------------------------


def write_key_of(request: Request) -> str | None:
    """The write key of an ``Authorization: Basic base64(<write key>:)`` header, or None."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not credentials:
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[0] or None


def check_write_key(key: str | None, keys: Sequence[str]) -> None:
    """GatewayError(401) unless ``key`` is one of ``keys``."""
    if key is None or not any(hmac.compare_digest(key.encode(), k.encode()) for k in keys):
        raise GatewayError(
            401,
            "unauthorized",
            "a valid write key is required (HTTP Basic with the write key as user name, "
            "or a writeKey field in the body)",
            headers={"WWW-Authenticate": 'Basic realm="revops"'},
        )


def _keys(request: Request) -> Sequence[str]:
    keys: Sequence[str] = request.app.state.settings.write_keys
    return keys


# ---- route classes ----------------------------------------------------------------------------

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class JsonRoute(APIRoute):
    """A route whose body is read, limited, un-gzipped and parsed by the guard above."""

    max_bytes: ClassVar[int] = MAX_EVENT_BYTES
    calls_key: ClassVar[str | None] = None
    """A batch's list of calls, whose text each call answers for alone."""

    def check_headers(self, request: Request) -> None:
        """Credentials that need no body (none by default)."""

    def check_body(self, request: Request, body: bytes) -> None:
        """Credentials that need the body, e.g. a signature (none by default)."""

    def check_parsed(self, request: Request, body: bytes, parsed: dict[str, Any]) -> None:
        """Credentials or limits that need the parsed body (none by default)."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                self.check_headers(request)
                body = await read_body(request, self.max_bytes)
                self.check_body(request, body)
                parsed = parse_json(body, calls=self.calls_key)
                self.check_parsed(request, body, parsed)
            except GatewayError as error:
                return _answer(error, request)
            return await handler(_ParsedRequest(request, body, parsed))

        return guarded


class TrackingRoute(JsonRoute):
    """A Segment tracking call: write key required, one event of at most 32 KB.

    Server libraries send the key as HTTP Basic (checked before the body is read); the browser
    library cannot set that header without a CORS preflight per call, so it sends the key as
    the body's ``writeKey`` instead, which is checked once the (size-limited) body is parsed.
    """

    def check_headers(self, request: Request) -> None:
        if "authorization" in request.headers:
            check_write_key(write_key_of(request), _keys(request))

    def check_parsed(self, request: Request, body: bytes, parsed: dict[str, Any]) -> None:
        if "authorization" not in request.headers:
            key = parsed.get("writeKey")
            check_write_key(key if isinstance(key, str) else None, _keys(request))


class BatchRoute(TrackingRoute):
    """A Segment batch: at most 500 KB, and no event in it over 32 KB."""

    max_bytes: ClassVar[int] = MAX_BATCH_BYTES
    calls_key: ClassVar[str | None] = "batch"

    def check_parsed(self, request: Request, body: bytes, parsed: dict[str, Any]) -> None:
        super().check_parsed(request, body, parsed)
        batch = parsed.get("batch")
        if len(body) <= MAX_EVENT_BYTES or not isinstance(batch, list):
            return
        for index, item in enumerate(batch):
            size = len(json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode())
            if size > MAX_EVENT_BYTES:
                raise GatewayError(
                    400,
                    "event_too_large",
                    f"batch[{index}] is {size} bytes, over the 32 KB limit of one event",
                    field=f"batch[{index}]",
                    index=index,
                )


# ---- error answers ----------------------------------------------------------------------------


def _field_path(loc: Sequence[int | str]) -> tuple[str, int | None]:
    """``("body", "batch", 3, "track", "event")`` -> ``("batch[3].event", 3)``."""
    parts = list(loc[1:] if loc and loc[0] == "body" else loc)
    path, index = "", None
    for position, part in enumerate(parts):
        if isinstance(part, int):
            path += f"[{part}]"
            index = part if index is None else index
        elif not (position and isinstance(parts[position - 1], int) and part in _SEGMENT_TYPES):
            path += f".{part}" if path else part
    return path or "body", index


def describe_errors(
    errors: Sequence[Any], prefix: Sequence[int | str] = ()
) -> tuple[str, int | None, str]:
    """Pydantic's errors as (field, batch index, "<field>: <first problem> (and N more)")."""
    first = errors[0]
    field, index = _field_path((*prefix, *first.get("loc", ())))
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    more = len(errors) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return field, index, f"{field}: {message}{suffix}"


def _validation_answer(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    field, index, message = describe_errors(exc.errors())
    return _answer(GatewayError(400, "invalid_request", message, field=field, index=index), request)


def _http_answer(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = "not_found" if exc.status_code == 404 else "http_error"
    error = GatewayError(exc.status_code, code, str(exc.detail), headers=exc.headers)
    return _answer(error, request)


def _store_answer(request: Request, exc: Exception) -> Response:
    return _answer(
        GatewayError(
            503,
            "store_unavailable",
            "the event store is unreachable; nothing was stored, retry later",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        ),
        request,
    )


def _gateway_answer(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return _answer(exc, request)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every refusal as an ErrorResponse."""
    app.add_exception_handler(RequestValidationError, _validation_answer)
    app.add_exception_handler(StarletteHTTPException, _http_answer)
    app.add_exception_handler(StoreUnavailable, _store_answer)
    app.add_exception_handler(GatewayError, _gateway_answer)
