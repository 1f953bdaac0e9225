"""The facts a tracked link or open pixel carries, signed, so the gateway needs no lookup.

The send path writes a token into each rewritten link (``/t/c/<token>``) and the open pixel
(``/t/o/<token>``); the gateway verifies it and answers at once (a redirect, a GIF) from
its contents alone. A token names the send by its Message-ID, the contact by its opaque id,
the journey, step and variant, the moment of the send (link scanners click within seconds
of it), and for a link the destination. It is signed with the installation's id secret and a
purpose, so an open token cannot be replayed as a click and a forged URL never redirects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from revops.ids import sign_payload, verify_payload

__all__ = ["CLICK_PATH", "OPEN_PATH", "TrackingToken"]

CLICK_PATH = "/t/c/"
OPEN_PATH = "/t/o/"

Purpose = Literal["click", "open"]


@dataclass(frozen=True)
class TrackingToken:
    """One tracked link (``url`` set) or one email's open pixel (``url`` None)."""

    message_id: str
    contact_id: str
    sent_at: int
    journey: str | None = None
    step: str | None = None
    variant: str | None = None
    url: str | None = None

    @property
    def purpose(self) -> Purpose:
        """A link's token redirects; a pixel's only counts an open."""
        return "open" if self.url is None else "click"

    def encode(self, secret: str) -> str:
        """The signed, URL-safe token."""
        payload: dict[str, Any] = {"m": self.message_id, "c": self.contact_id, "t": self.sent_at}
        for key, value in (("j", self.journey), ("s", self.step), ("v", self.variant)):
            if value is not None:
                payload[key] = value
        if self.url is not None:
            payload["u"] = self.url
        return sign_payload(payload, secret, f"revops-{self.purpose}")

    def link(self, base_url: str, secret: str) -> str:
        """The absolute URL on the gateway that counts this click or open."""
        path = OPEN_PATH if self.url is None else CLICK_PATH
        return f"{base_url.rstrip('/')}{path}{self.encode(secret)}"

    @classmethod
    def decode(cls, token: str, secret: str, purpose: Purpose) -> TrackingToken | None:
        """The token's facts, or None when it was forged, altered or made for another use."""
        if len(token) > 4096:
            return None
        payload = verify_payload(token, secret, f"revops-{purpose}")
        if payload is None:
            return None
        try:
            found = cls(
                message_id=_text(payload["m"]),
                contact_id=_text(payload["c"]),
                sent_at=int(payload["t"]),
                journey=_optional(payload.get("j")),
                step=_optional(payload.get("s")),
                variant=_optional(payload.get("v")),
                url=_optional(payload.get("u")),
            )
        except (KeyError, TypeError, ValueError):
            return None
        return found if found.purpose == purpose else None


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("expected text")
    return value


def _optional(value: Any) -> str | None:
    return None if value is None else _text(value)
