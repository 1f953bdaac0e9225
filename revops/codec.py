"""Encrypted Temporal payloads: every workflow and activity payload is AES-GCM on the wire.

Temporal keeps workflow histories (inputs, signals, activity results, queries) in its own
database, unencrypted. With ``REVOPS_PAYLOAD_ENCRYPTION`` on, every client of ours (worker,
gateway relay, CLI) encrypts each payload before it leaves the process and decrypts what it
reads, so the server and its database hold ciphertext only.

- **Keys** come from ``REVOPS_PAYLOAD_KEYS``: a JSON object of key id to a base64 AES key
  (16, 24 or 32 bytes). The **first** key encrypts; every listed key decrypts.
- **Rotation**: put a new key first and keep the old ones listed until no history needs them
  (a running contact's history reaches back to its last continue-as-new; closed executions
  until the namespace's retention ends). Each payload names its key in its metadata
  (``encryption-key-id``), so old payloads keep decrypting.
- A payload without our encoding (an older, unencrypted history; a replay test) passes
  through, so turning encryption on needs no migration of running workflows.
- The nonce is random (96 bits) per payload; the key id and encoding are bound to the
  ciphertext as associated data, so a payload cannot be relabelled to another key.

The codec endpoint (``gateway/codec.py``) runs this same codec for the Temporal UI and CLI.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from revops.errors import ConfigError

__all__ = ["ENCODING", "KEY_ID", "EncryptionCodec", "parse_keys"]

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
_NONCE = 12


def parse_keys(raw: Mapping[str, str]) -> dict[str, bytes]:
    """Key id -> key bytes from their base64 text; ConfigError names a bad one."""
    keys: dict[str, bytes] = {}
    for key_id, text in raw.items():
        if not key_id or len(key_id) > 64:
            raise ConfigError("REVOPS_PAYLOAD_KEYS: a key id must have 1 to 64 characters")
        try:
            key = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ConfigError(f"REVOPS_PAYLOAD_KEYS[{key_id!r}] is not base64: {exc}") from exc
        if len(key) not in (16, 24, 32):
            raise ConfigError(
                f"REVOPS_PAYLOAD_KEYS[{key_id!r}] must be a 16, 24 or 32 byte AES key "
                f"(base64), not {len(key)} bytes: `openssl rand -base64 32` makes one"
            )
        keys[key_id] = key
    if not keys:
        raise ConfigError("payload encryption is on but REVOPS_PAYLOAD_KEYS lists no key")
    return keys


class EncryptionCodec(PayloadCodec):
    """AES-GCM over whole serialized payloads; the first key encrypts, all decrypt."""

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        if not keys:
            raise ConfigError("the payload codec needs at least one key")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self._active = next(iter(keys))

    @property
    def active_key_id(self) -> str:
        """The key new payloads are encrypted with."""
        return self._active

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Encrypt each payload with the active key."""
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Decrypt ours; pass any other payload through unchanged."""
        return [self.decrypt(p) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        """One payload, encrypted (synchronous: the codec endpoint calls it too)."""
        nonce = os.urandom(_NONCE)
        key_id = self._active
        sealed = self._ciphers[key_id].encrypt(
            nonce, payload.SerializeToString(), _associated(key_id)
        )
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID: key_id.encode()}, data=nonce + sealed
        )

    def decrypt(self, payload: Payload) -> Payload:
        """One payload, decrypted when it is ours; ValueError for an unknown key or tampering."""
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID, b"").decode()
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise ValueError(f"payload encrypted with unknown key id {key_id!r}")
        nonce, sealed = payload.data[:_NONCE], payload.data[_NONCE:]
        try:
            plain = cipher.decrypt(nonce, sealed, _associated(key_id))
        except InvalidTag as exc:
            raise ValueError(f"payload does not decrypt with key {key_id!r}") from exc
        decoded = Payload()
        decoded.ParseFromString(plain)
        return decoded


def _associated(key_id: str) -> bytes:
    return ENCODING + b"|" + key_id.encode()
