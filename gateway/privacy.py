"""The signed erasure endpoint: a privacy tool or a support desk asks to erase a person.

``POST /v1/privacy/erasures`` is signed exactly as the sales webhook is (``X-Revops-Signature``:
HMAC-SHA256 of ``"{t}.{body}"`` with one of ``REVOPS_WEBHOOK_SECRETS``, five minutes'
tolerance), so an integration that can post sales activity can file erasure requests and
nothing else can. It runs the same erasure as ``revops contacts erase`` (``privacy.erasure``)
and answers when it is done; asking again answers the first record with ``already: true``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Request, Security
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, Field, StringConstraints
from temporalio.service import RPCError

from gateway.http import ErrorResponse, GatewayError
from gateway.relay import Relay
from gateway.sales import SIGNATURE_HEADER, WebhookRoute
from gateway.segment import Id
from privacy.erasure import MAX_REASON, erase_person
from revops.errors import NotFound, TemporalUnavailable
from store.privacy import ErasureTicket

__all__ = ["ErasureRequest", "ErasureResponse", "router"]

_signature = APIKeyHeader(
    name=SIGNATURE_HEADER,
    auto_error=False,
    description="t=<unix seconds>,v1=<hex HMAC-SHA256 of '{t}.{body}' with a webhook secret>",
)

router = APIRouter(
    prefix="/v1/privacy",
    tags=["privacy"],
    route_class=WebhookRoute,
    dependencies=[Security(_signature)],
    responses={s: {"model": ErrorResponse} for s in (400, 401, 404, 413, 415, 503)},
)

Reason = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_REASON, strip_whitespace=True)
]


class ErasureRequest(BaseModel):
    """Whom to erase, why, and who asked (kept in the erasure record; name no person)."""

    user_id: Id
    reason: Reason = Field(description="why, e.g. 'GDPR Art. 17 request #4411'")
    requested_by: Annotated[str, StringConstraints(min_length=1, max_length=200)] = Field(
        description="the operator or system filing the request"
    )


class ErasureResponse(BaseModel):
    """The erasure record: hashes and counts only."""

    erased: bool = True
    already: bool = Field(description="erased by an earlier request (this one changed nothing)")
    subject_hash: str
    erased_by: str
    reason: str
    requested_at: datetime
    completed_at: datetime | None
    rows_removed: dict[str, int]
    workflows_deleted: int


def response_of(ticket: ErasureTicket) -> ErasureResponse:
    """The answer for a ticket (also what ``revops contacts erase --json`` prints)."""
    return ErasureResponse(
        already=ticket.already,
        subject_hash=ticket.subject_hash,
        erased_by=ticket.erased_by,
        reason=ticket.reason,
        requested_at=ticket.requested_at,
        completed_at=ticket.completed_at,
        rows_removed=ticket.rows_removed,
        workflows_deleted=ticket.workflows_deleted,
    )


@router.post("/erasures", summary="Erase a person everywhere (signed)")
async def erase(body: ErasureRequest, request: Request) -> ErasureResponse:
    """Delete the person's rows and Temporal executions; keep hashes (docs/privacy.md)."""
    relay: Relay | None = request.app.state.relay
    if relay is None:
        raise GatewayError(503, "temporal_unavailable", "this gateway has no Temporal client")
    try:
        ticket = await erase_person(
            request.app.state.store,
            relay.client,
            body.user_id,
            reason=body.reason,
            erased_by=f"api:{body.requested_by}",
        )
    except NotFound as exc:
        raise GatewayError(404, "unknown_contact", str(exc), field="user_id") from exc
    except (RPCError, TemporalUnavailable) as exc:
        raise GatewayError(
            503, "temporal_unavailable", f"Temporal did not answer; retry (idempotent): {exc}"
        ) from exc
    return response_of(ticket)
