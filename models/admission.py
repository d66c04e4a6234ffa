"""The gate's admission of one remediation run: what it binds, sealed by the worker.

An `Admission` travels in `RemediationInput`. Its `seal` is an HMAC (policies/seals.py) with
a key only the worker holds, over every other field, so a Temporal client that starts
`RemediationWorkflow` itself, or edits an admission it copied from a history, has nothing
the remediation activity will accept.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class AdmissionMode(StrEnum):
    APPLY = "apply"  # the action for real: the gate said run (policy allow, or an approval)
    CHECK = "check"  # --check --diff: the approval preview, or shadow mode; no credential
    ROLLBACK = "rollback"  # the catalog's rollback of an admitted, applied run


class Admission(BaseModel):
    incident_id: str
    plan_hash: str
    index: int = Field(ge=0)
    action_digest: str  # sha256 of the canonical ProposedAction (action, target, params, ...)
    mode: AdmissionMode
    idempotency_key: str
    rollback_of: str | None = None
    verdict: str  # "allow", "approved", "shadow", "preview", "rollback"
    approver: str | None = None  # the authenticated approver, when an approval admitted it
    admitted_at: datetime
    expires_at: datetime
    seal: str = ""

    def sealed_fields(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"seal"})
