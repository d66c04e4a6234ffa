"""Admission activities: the worker re-decides the gate over what only it can seal.

`admit_remediation` runs in the incident workflow before each remediation child and returns
the sealed `Admission` the child carries; `verify_approval` authenticates an approve/reject
signal when it arrives, so a refused answer is recorded at once and the gate stays open.
The logic is policies/admission.py; this is the Temporal side: who is calling, and when.
"""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio import activity

from activities.errors import to_application_error
from models.admission import Admission
from models.constants import INCIDENT_WORKFLOW
from models.incident import AdmitInput, VerifyApprovalInput, VerifyApprovalResult
from policies.admission import NotAdmitted, admit, verify_answer
from policies.seals import ApprovalCodes, Sealer


class AdmissionActivities:
    def __init__(self, sealer: Sealer, codes: ApprovalCodes | None) -> None:
        self._sealer = sealer
        self._codes = codes  # None: approvals by roster name only (the dev stack's default)

    @activity.defn
    async def admit_remediation(self, input: AdmitInput) -> Admission:
        """Admit one run of the plan, or fail (non-retryable) naming the check that failed."""
        info = activity.info()
        caller = info.workflow_id if info.workflow_type == INCIDENT_WORKFLOW else f"{info.workflow_type}"
        try:
            admission = admit(self._sealer, input, caller or "", datetime.now(UTC))
        except NotAdmitted as exc:
            activity.logger.warning("not admitted: %s", exc)
            raise to_application_error(exc) from None
        activity.logger.info(
            "admitted %s #%d of plan %s (%s)",
            admission.mode,
            admission.index,
            admission.plan_hash,
            admission.verdict,
        )
        return admission

    @activity.defn
    async def verify_approval(self, input: VerifyApprovalInput) -> VerifyApprovalResult:
        """Authenticate an answer: an attested record, or the refusal and its reason."""
        info = activity.info()
        if info.workflow_type != INCIDENT_WORKFLOW or info.workflow_id != input.incident_id:
            raise to_application_error(
                NotAdmitted("incident_id: only the incident's own workflow may verify its approvals")
            )
        return verify_answer(self._sealer, self._codes, input, datetime.now(UTC))
