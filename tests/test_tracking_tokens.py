"""Tracking tokens under bad input: whatever arrives in a link, nothing but the untouched
token of the right kind decodes, and the gateway answers a 4xx, never a 500."""

from __future__ import annotations

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.tracking import machine_reason
from models.tracking import TrackingToken
from revops.settings import Settings
from store.repo import Store
from tests.gateway_support import threaded_gateway

SECRET = "test-secret"
TOKEN = TrackingToken(
    message_id="abc@example.com",
    contact_id="c0123456789abcdef012",
    sent_at=1_800_000_000,
    journey="guide",
    step="one",
    variant="B",
    url="https://example.com/x?y=1",
)


def test_a_token_round_trips_only_for_its_purpose_and_secret() -> None:
    encoded = TOKEN.encode(SECRET)
    assert TrackingToken.decode(encoded, SECRET, "click") == TOKEN
    assert TrackingToken.decode(encoded, SECRET, "open") is None
    assert TrackingToken.decode(encoded, "another-secret", "click") is None


@given(st.text(max_size=300))
@settings(max_examples=300)
def test_arbitrary_text_never_decodes_and_never_raises(text: str) -> None:
    assert TrackingToken.decode(text, SECRET, "click") is None
    assert TrackingToken.decode(text, SECRET, "open") is None


@given(st.integers(min_value=0), st.characters(min_codepoint=33, max_codepoint=126))
@settings(max_examples=300)
def test_changing_any_character_of_a_token_breaks_it(position: int, replacement: str) -> None:
    encoded = TOKEN.encode(SECRET)
    index = position % len(encoded)
    altered = encoded[:index] + replacement + encoded[index + 1 :]
    if altered != encoded:
        assert TrackingToken.decode(altered, SECRET, "click") is None


_TOKEN_TEXT = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="/?#%\\"),
    min_size=1,
    max_size=200,
).filter(lambda text: text not in {".", ".."})
"""Any path segment but a dot segment: clients (browsers, httpx) remove ``/.`` and ``/..``
before sending (RFC 3986), so such a link never reaches the token check (it answers 404)."""


@given(tokens=st.lists(_TOKEN_TEXT, min_size=1, max_size=20))
@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_the_gateway_answers_bad_tokens_with_a_400(
    tokens: list[str], store: Store, settings: Settings
) -> None:
    with threaded_gateway(settings, store) as base, httpx.Client(base_url=base) as client:
        for token in tokens:
            for kind in ("c", "o"):
                answer = client.get(f"/t/{kind}/{token}", follow_redirects=False)
                assert answer.status_code == 400, (token, answer.text)


SAFARI = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5 Safari"


def _reason(
    method: str = "GET", agent: str = SAFARI, client: str = "203.0.113.9", **kw: object
) -> str | None:
    token = TOKEN if kw.get("open") is None else TrackingToken(**{**TOKEN.__dict__, "url": None})
    return machine_reason(
        method=method,
        user_agent=agent,
        client=client,
        token=token,
        now=float(kw.get("now", TOKEN.sent_at + 3600)),  # type: ignore[arg-type]
        scanner_seconds=5.0,
    )


def test_machines_are_told_from_people_as_documented() -> None:
    assert _reason() is None
    assert _reason(open=True) is None
    assert _reason(method="HEAD") == "HEAD request"
    assert _reason(agent="") == "no User-Agent"
    assert _reason(agent="Mimecast Link Scanner") == "scanner or tool User-Agent"
    assert _reason(agent="curl/8.5") == "scanner or tool User-Agent"
    assert _reason(agent="Mozilla/5.0", open=True) == "mail privacy prefetch"
    assert _reason(client="17.58.1.2", open=True) == "mail privacy prefetch"
    assert _reason(client="17.58.1.2") is None  # a person on Apple's network clicking
    assert _reason(now=TOKEN.sent_at + 2) == "clicked within 5s of the send"
