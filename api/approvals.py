"""Approval codes: how an approver proves who they are before the Temporal UI signal.

`POST /approvals/{incident_id}/code` with the approver's *personal* bearer token (not the
webhook token) answers with a short-lived code, signed with the approval key and bound to
(incident, pending plan hash, that person). The approver pastes the JSON it returns into
the Temporal UI's *Send a Signal* (or `firebreak approve` sends it as an update, which
answers at once whether the approval was admitted); the worker verifies the
code before the approval counts (policies/admission.py). A typed name alone no longer
approves anything outside the dev stack.

Personal tokens live in `FIREBREAK_APPROVER_TOKENS_FILE`: YAML `person: sha256-hex-of-token`
(`firebreak approver-token PERSON` makes a token and its line). Only hashes are stored.
Who may approve what stays the policy's roster: the code only says who is asking.
"""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from temporalio.client import Client
from temporalio.service import RPCError

from models.constants import QUERY_STATE, SIGNAL_APPROVE, SIGNAL_REJECT, UPDATE_APPROVE, UPDATE_REJECT
from models.incident import IncidentState, Phase
from policies.seals import ApprovalCodes, SealError, configured_key
from runtime.settings import Settings

logger = logging.getLogger(__name__)

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_INCIDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,254}")
MAX_TOKENS_FILE_BYTES = 256 * 1024


class ApproverTokensError(ValueError):
    """The approver tokens file does not load; the message names the file and the entry."""


def load_approver_tokens(path: Path) -> dict[str, str]:
    """{sha256 hex of a personal token: person} from the tokens file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ApproverTokensError(f"{path}: cannot read ({exc.strerror})") from None
    if len(raw) > MAX_TOKENS_FILE_BYTES:
        raise ApproverTokensError(f"{path}: larger than {MAX_TOKENS_FILE_BYTES} bytes")
    try:
        data = yaml.safe_load(raw) or {}
    except yaml.YAMLError as exc:
        raise ApproverTokensError(f"{path}: not YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ApproverTokensError(f"{path}: expected a mapping of person: sha256-hex")
    tokens: dict[str, str] = {}
    for person, digest in data.items():
        if not isinstance(person, str) or not 0 < len(person) <= 256:
            raise ApproverTokensError(f"{path}: {person!r}: a person is a name of 1-256 characters")
        if not isinstance(digest, str) or _SHA256_HEX.fullmatch(digest) is None:
            raise ApproverTokensError(f"{path}: {person}: expected the token's sha256 as 64 hex digits")
        tokens[digest] = person
    return tokens


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_approval_routes(app: FastAPI, settings: Settings, client: Any) -> None:
    """Mount the approval-code endpoint; `client` is an awaitable factory of the Temporal client."""
    codes = ApprovalCodes(configured_key(settings.approval_key, settings.data_dir, "approval"))
    tokens = load_approver_tokens(settings.approver_tokens_file) if settings.approver_tokens_file else {}

    @app.post(
        "/approvals/{incident_id}/code",
        summary="An approval code for the pending plan, issued to the authenticated approver",
        responses={
            200: {"description": "the code, and the signal data to send with it"},
            401: {"description": "no personal approver token, or an unknown one"},
            404: {"description": "no such incident"},
            409: {"description": "the incident is not awaiting approval"},
        },
    )
    async def approval_code(incident_id: str, request: Request) -> JSONResponse:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        person = tokens.get(token_digest(presented.strip())) if scheme.lower() == "bearer" else None
        if person is None:
            return JSONResponse(
                {
                    "detail": "authorization: a personal approver token is required "
                    "(FIREBREAK_APPROVER_TOKENS_FILE)"
                },
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        if _INCIDENT_ID.fullmatch(incident_id) is None:
            return JSONResponse({"detail": "incident_id: not a workflow id"}, status_code=422)
        temporal: Client = await client()
        try:
            state = await temporal.get_workflow_handle(incident_id).query(
                QUERY_STATE, result_type=IncidentState
            )
        except RPCError as exc:
            return JSONResponse({"detail": f"incident_id: {exc.message}"}, status_code=404)
        if state.phase != Phase.AWAITING_APPROVAL or state.plan_hash is None:
            return JSONResponse(
                {"detail": f"incident_id: {incident_id} is {state.phase.value}, not awaiting approval"},
                status_code=409,
            )
        now = datetime.now(UTC)
        ttl = timedelta(seconds=settings.approval_code_ttl_seconds)
        try:
            code = codes.issue(incident_id, state.plan_hash, person, now, ttl)
        except SealError as exc:  # a malformed key: the operator's problem, said plainly
            logger.error("cannot issue approval codes: %s", exc)
            return JSONResponse({"detail": "approval codes are not configured on this API"}, status_code=503)
        logger.info("approval code issued to %s for %s plan %s", person, incident_id, state.plan_hash)
        signal = {"by": person, "reason": "", "plan_hash": state.plan_hash, "code": code}
        return JSONResponse(
            {
                "incident_id": incident_id,
                "approver": person,
                "plan_hash": state.plan_hash,
                "expires_at": (now + ttl).isoformat(),
                "signals": [SIGNAL_APPROVE, SIGNAL_REJECT],
                # The same data answers as an update, which says at once whether it was admitted.
                "updates": [UPDATE_APPROVE, UPDATE_REJECT],
                "signal": signal,
                "code": code,
            }
        )
