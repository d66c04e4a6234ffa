"""Encrypt every payload Firebreak puts in Temporal (AES-256-GCM, keys by id).

Alert text, evidence, plans and approvals land in workflow history; with this codec on the
client, the worker, the replayer and the CLI, the server only ever stores ciphertext. Each
payload names the key that sealed it, so keys rotate: new payloads use the first (active)
key, old ones still open with any key still listed. Failure messages and stack traces are
moved into encoded attributes, so they are encrypted too.

Keys come from `FIREBREAK_CODEC_KEYS` as `id:base64key[,id:base64key...]` (32-byte keys,
standard or url-safe base64); `generate_key()` makes one.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import secrets
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)

ENCODING = b"binary/encrypted"
KEY_ID_HEADER = "encryption-key-id"
NONCE_BYTES = 12


class CodecKeyError(ValueError):
    """The key configuration is malformed, or a payload names a key we do not have."""


def parse_keys(spec: str) -> dict[str, bytes]:
    """`id:base64,id:base64` -> ordered {id: key}; the first is the active key."""
    keys: dict[str, bytes] = {}
    for index, item in enumerate(part.strip() for part in spec.split(",") if part.strip()):
        key_id, sep, encoded = item.partition(":")
        if not sep or not key_id:
            raise CodecKeyError(f"codec key #{index + 1}: expected id:base64key")
        try:
            raw = base64.urlsafe_b64decode(encoded.replace("+", "-").replace("/", "_") + "==")
        except (ValueError, TypeError):
            raise CodecKeyError(f"codec key {key_id!r}: not base64") from None
        if len(raw) != 32:
            raise CodecKeyError(f"codec key {key_id!r}: {len(raw)} bytes, need 32 (AES-256)")
        if key_id in keys:
            raise CodecKeyError(f"codec key {key_id!r} listed twice")
        keys[key_id] = raw
    if not keys:
        raise CodecKeyError("no codec keys given")
    return keys


def generate_key(key_id: str | None = None) -> str:
    """A new `id:base64` key entry."""
    key_id = key_id or f"k{secrets.token_hex(4)}"
    return f"{key_id}:{base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip('=')}"


class EncryptionCodec(PayloadCodec):
    def __init__(self, keys: dict[str, bytes]) -> None:
        if not keys:
            raise CodecKeyError("no codec keys given")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.active_key_id = next(iter(keys))

    @classmethod
    def from_spec(cls, spec: SecretStr | str) -> EncryptionCodec:
        raw = spec.get_secret_value() if isinstance(spec, SecretStr) else spec
        return cls(parse_keys(raw))

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        cipher = self._ciphers[self.active_key_id]
        sealed = []
        for payload in payloads:
            nonce = os.urandom(NONCE_BYTES)
            data = nonce + cipher.encrypt(nonce, payload.SerializeToString(), None)
            sealed.append(
                Payload(
                    metadata={"encoding": ENCODING, KEY_ID_HEADER: self.active_key_id.encode()},
                    data=data,
                )
            )
        return sealed

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        opened = []
        for payload in payloads:
            if payload.metadata.get("encoding") != ENCODING:
                opened.append(payload)  # written before encryption was on: pass through
                continue
            key_id = payload.metadata.get(KEY_ID_HEADER, b"").decode()
            cipher = self._ciphers.get(key_id)
            if cipher is None:
                raise CodecKeyError(f"payload sealed with key {key_id!r}, which is not configured")
            try:
                plain = cipher.decrypt(payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:], None)
            except InvalidTag:
                raise CodecKeyError(f"payload under key {key_id!r} failed authentication") from None
            inner = Payload()
            inner.ParseFromString(plain)
            opened.append(inner)
        return opened


def data_converter(codec_keys: SecretStr | str | None) -> DataConverter:
    """Firebreak's converter: pydantic payloads, plus encryption when keys are configured."""
    if not codec_keys or (isinstance(codec_keys, SecretStr) and not codec_keys.get_secret_value()):
        return pydantic_data_converter
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=EncryptionCodec.from_spec(codec_keys),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
