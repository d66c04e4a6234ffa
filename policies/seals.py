"""Seals: HMACs that only the worker (and, for approval codes, the API) can make.

Anything a Temporal client can send, including a whole forged incident state through a
direct workflow start, is data. What lets a remediation run must therefore be something a
client cannot make: each of these is an HMAC-SHA256 over canonical JSON with a key that
never enters workflow history.

- the *admission key* (worker only) seals policy decisions when the policy activity makes
  them, approval attestations when an approval is verified, and the gate's admission of
  one action, which the remediation activity checks before it asks Vault for anything;
- the *approval key* (API and worker) signs approval codes that the API issues to an
  authenticated approver, bound to (incident, plan hash, approver, expiry, nonce).

Each seal names its purpose inside the MAC, so a seal of one kind never verifies as another.
Pure functions and a key holder: no Temporal, no I/O except `load_or_create_key`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SecretStr, ValidationError

KEY_BYTES = 32


class SealError(ValueError):
    """A key is missing or malformed, or a seal/code does not verify."""


def canonical(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()


def load_or_create_key(path: Path) -> SecretStr:
    """A 32-byte key (url-safe base64) kept in `path` (0600), created on first use.

    Processes on one machine (the dev stack's worker and API) share it through the file;
    across machines set the key in the environment instead.
    """
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            text = base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode()
            # Written whole under a private name, then linked into place: a process racing
            # this one sees either no file or the whole key, and the first link wins.
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
            try:
                with os.fdopen(fd, "w") as out:
                    out.write(text + "\n")
                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                os.unlink(tmp)
        text = path.read_text().strip()
    except OSError as exc:
        raise SealError(f"{path}: cannot read or create the key ({exc.strerror})") from None
    if not text:
        raise SealError(f"{path}: the key file is empty")
    return SecretStr(text)


def configured_key(configured: SecretStr | None, data_dir: Path, name: str) -> SecretStr:
    """The key from the environment, else from `data_dir/<name>.key` (created if missing)."""
    return configured if configured is not None else load_or_create_key(data_dir / f"{name}.key")


def _key_bytes(key: SecretStr, name: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(key.get_secret_value() + "==")
    except (binascii.Error, ValueError):
        raise SealError(f"{name}: not url-safe base64") from None
    if len(raw) < KEY_BYTES:
        raise SealError(f"{name}: {len(raw)} bytes, need at least {KEY_BYTES}")
    return raw


class Sealer:
    """Makes and checks purpose-bound HMACs with one key."""

    def __init__(self, key: SecretStr, name: str = "admission key") -> None:
        self._key = _key_bytes(key, name)

    def __repr__(self) -> str:  # never show the key
        return "Sealer(<key>)"

    def seal(self, purpose: str, payload: Mapping[str, Any]) -> str:
        mac = hmac.new(self._key, purpose.encode() + b"\x00" + canonical(payload), hashlib.sha256)
        return mac.hexdigest()

    def verify(self, purpose: str, payload: Mapping[str, Any], seal: str | None) -> bool:
        if not seal:
            return False
        return hmac.compare_digest(self.seal(purpose, payload), seal)


# --- approval codes --------------------------------------------------------------------------

CODE_PREFIX = "fbap1"
CODE_MAX_CHARS = 2048
DEFAULT_CODE_TTL = timedelta(minutes=15)


class ApprovalClaims(BaseModel):
    """What an approval code states; the MAC binds all of it."""

    incident_id: str = Field(min_length=1, max_length=256)
    plan_hash: str = Field(min_length=1, max_length=128)
    approver: str = Field(min_length=1, max_length=256)
    expires_at: datetime
    nonce: str = Field(min_length=16, max_length=64)


class ApprovalCodes:
    """Issues (API) and verifies (worker) approval codes: `fbap1.<claims>.<mac>`."""

    PURPOSE = "approval-code"

    def __init__(self, key: SecretStr) -> None:
        self._sealer = Sealer(key, "approval key")

    def issue(
        self,
        incident_id: str,
        plan_hash: str,
        approver: str,
        now: datetime,
        ttl: timedelta = DEFAULT_CODE_TTL,
    ) -> str:
        claims = ApprovalClaims(
            incident_id=incident_id,
            plan_hash=plan_hash,
            approver=approver,
            expires_at=(now + ttl).astimezone(UTC),
            nonce=secrets.token_hex(16),
        )
        body = canonical(claims.model_dump(mode="json"))
        mac = self._sealer.seal(self.PURPOSE, claims.model_dump(mode="json"))
        return f"{CODE_PREFIX}.{base64.urlsafe_b64encode(body).decode().rstrip('=')}.{mac}"

    def verify(self, code: str, incident_id: str, plan_hash: str | None, now: datetime) -> ApprovalClaims:
        """The code's claims if it is genuine, unexpired and for this incident and plan."""
        claims, mac = _read_code(code)
        if not self._sealer.verify(self.PURPOSE, claims.model_dump(mode="json"), mac):
            raise SealError("code: signature does not verify (forged or altered)")
        _check_claims(claims, incident_id, plan_hash, now)
        return claims


def code_refusal(
    code: str, incident_id: str, plan_hash: str | None, now: datetime, used_nonces: Sequence[str]
) -> str | None:
    """Why a code cannot be accepted, judged from its shape and claims alone (no key, no MAC).

    For the workflow's update validator, which must refuse at once what the worker's
    verification would refuse; the worker still checks the MAC before trusting the code.
    """
    try:
        claims, _ = _read_code(code)
        _check_claims(claims, incident_id, plan_hash, now)
    except SealError as exc:
        return str(exc)
    if claims.nonce in used_nonces:
        return "code: already used for an answer to this incident"
    return None


def _read_code(code: str) -> tuple[ApprovalClaims, str]:
    """The claims and MAC of a code in the `fbap1.<claims>.<mac>` shape (not yet verified)."""
    if len(code) > CODE_MAX_CHARS:
        raise SealError(f"code: longer than {CODE_MAX_CHARS} characters")
    prefix, _, rest = code.partition(".")
    body_b64, _, mac = rest.partition(".")
    if prefix != CODE_PREFIX or not body_b64 or not mac:
        raise SealError(f"code: not a Firebreak approval code (expected {CODE_PREFIX}.<claims>.<mac>)")
    try:
        claims = ApprovalClaims.model_validate_json(base64.urlsafe_b64decode(body_b64 + "=="))
    except (binascii.Error, ValueError, ValidationError):
        raise SealError("code: its claims do not decode") from None
    return claims, mac


def _check_claims(claims: ApprovalClaims, incident_id: str, plan_hash: str | None, now: datetime) -> None:
    if claims.incident_id != incident_id:
        raise SealError(f"code: issued for incident {claims.incident_id!r}, not {incident_id!r}")
    if claims.plan_hash != plan_hash:
        raise SealError(f"code: issued for plan {claims.plan_hash!r}, not the pending plan {plan_hash!r}")
    if claims.expires_at <= now:
        raise SealError(f"code: expired at {claims.expires_at.isoformat()}")
