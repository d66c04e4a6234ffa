"""The gate's admission: the one check between a plan and a credential.

IncidentWorkflow's gate decides inside the workflow, but a workflow's inputs are whatever a
Temporal client sent (a direct start can carry a whole forged incident state). So before a
remediation child runs, the worker re-decides here over what only it can have made:

1. the caller is the incident workflow itself (Temporal's activity info, not the input);
2. the plan's hash is the plan's, and every policy decision carries the policy activity's
   seal, bound to this incident and to the exact action it decided on;
3. only answers the worker attested (approval verified when it arrived) count;
4. `policies.gate.gate` over those says run (apply), or not deny (check mode, rollback);
5. a rollback also needs the genuine admission of the applied run it undoes.

The result is an `Admission` sealed with the admission key. The remediation activity checks
it (`check_admission`) against the run it is asked to do, before Vault is asked for anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from models.admission import Admission, AdmissionMode
from models.agents import ProposedAction
from models.incident import (
    AdmitInput,
    ApprovalRecord,
    RemediationInput,
    VerifyApprovalInput,
    VerifyApprovalResult,
    action_digest,
)
from models.policy import PolicyDecision, PolicyVerdict
from policies.gate import Gate, admitted, answer, gate
from policies.seals import ApprovalCodes, Sealer, SealError

DECISION_PURPOSE = "policy-decision"
APPROVAL_PURPOSE = "approval"
ADMISSION_PURPOSE = "admission"

# An admission outlives the wait for the target's lock and every playbook attempt, no more.
LOCK_WAIT_ALLOWANCE = timedelta(minutes=30)
PLAYBOOK_ATTEMPTS = 4
ADMISSION_MARGIN = timedelta(minutes=5)


class NotAdmitted(ValueError):
    """The run is not admitted; the message says which check failed."""


def _decision_payload(incident_id: str, action: ProposedAction, decision: PolicyDecision) -> dict[str, Any]:
    return {
        "incident_id": incident_id,
        "action_digest": action_digest(action),
        "decision": decision.model_dump(mode="json", exclude={"seal"}),
    }


def seal_decision(
    sealer: Sealer, incident_id: str, action: ProposedAction, decision: PolicyDecision
) -> PolicyDecision:
    return decision.model_copy(
        update={"seal": sealer.seal(DECISION_PURPOSE, _decision_payload(incident_id, action, decision))}
    )


def decision_is_sealed(
    sealer: Sealer, incident_id: str, action: ProposedAction, decision: PolicyDecision
) -> bool:
    return sealer.verify(DECISION_PURPOSE, _decision_payload(incident_id, action, decision), decision.seal)


def _approval_payload(incident_id: str, record: ApprovalRecord) -> dict[str, Any]:
    return {"incident_id": incident_id, "record": record.model_dump(mode="json", exclude={"attestation"})}


def attest_approval(sealer: Sealer, incident_id: str, record: ApprovalRecord) -> ApprovalRecord:
    return record.model_copy(
        update={"attestation": sealer.seal(APPROVAL_PURPOSE, _approval_payload(incident_id, record))}
    )


def approval_is_attested(sealer: Sealer, incident_id: str, record: ApprovalRecord) -> bool:
    return sealer.verify(APPROVAL_PURPOSE, _approval_payload(incident_id, record), record.attestation)


def _check_decisions(
    sealer: Sealer, incident_id: str, actions: Sequence[ProposedAction], decisions: Sequence[PolicyDecision]
) -> None:
    if len(decisions) != len(actions):
        raise NotAdmitted(f"decisions: {len(decisions)} policy decision(s) for {len(actions)} action(s)")
    for index, (action, decision) in enumerate(zip(actions, decisions, strict=True)):
        if not decision_is_sealed(sealer, incident_id, action, decision):
            raise NotAdmitted(
                f"decisions[{index}]: the policy decision for {action.action} on {action.target} "
                "is not sealed by the policy activity for this incident and action"
            )


def admit(sealer: Sealer, input: AdmitInput, caller_workflow_id: str, now: datetime) -> Admission:
    """Admit one run of `input.plan.actions[input.index]`, or raise NotAdmitted naming why."""
    if caller_workflow_id != input.incident_id:
        raise NotAdmitted(
            f"incident_id: asked for {input.incident_id!r} by workflow {caller_workflow_id!r}; "
            "only an incident's own workflow may admit its actions"
        )
    plan = input.plan
    if plan.digest() != input.plan_hash:
        raise NotAdmitted(f"plan_hash: {input.plan_hash!r} is not the hash of the plan ({plan.digest()!r})")
    if not 0 <= input.index < len(plan.actions):
        raise NotAdmitted(f"index: {input.index} is not an action of the plan ({len(plan.actions)} actions)")
    action = plan.actions[input.index]
    approver: str | None = None

    if input.mode == AdmissionMode.ROLLBACK:
        _check_decisions(sealer, input.incident_id, [action], input.decisions)
        if input.decisions[0].verdict == PolicyVerdict.DENY:
            raise NotAdmitted("decisions[0]: the policy denies this action now; no rollback")
        forward = input.forward
        if forward is None or not sealer.verify(ADMISSION_PURPOSE, forward.sealed_fields(), forward.seal):
            raise NotAdmitted("forward: a rollback needs the sealed admission of the run it undoes")
        if (
            forward.mode != AdmissionMode.APPLY
            or forward.incident_id != input.incident_id
            or forward.plan_hash != input.plan_hash
            or forward.index != input.index
            or forward.action_digest != action_digest(action)
            or forward.idempotency_key != input.rollback_of
        ):
            raise NotAdmitted("forward: the admission is not for the applied run this rollback names")
        verdict = "rollback"
    else:
        _check_decisions(sealer, input.incident_id, plan.actions, input.decisions)
        attested = [a for a in input.approvals if approval_is_attested(sealer, input.incident_id, a)]
        said = gate(input.decisions, input.plan_hash, attested)
        if input.mode == AdmissionMode.APPLY:
            if said != Gate.RUN:
                raise NotAdmitted(
                    f"gate: the sealed decisions and attested answers say {said.value}, not run"
                )
            record = answer(input.decisions, input.plan_hash, attested)
            approver = record.by if record is not None else None
            verdict = "approved" if record is not None else "allow"
        else:
            if said in (Gate.DENY, Gate.REJECT):
                raise NotAdmitted(f"gate: the plan is {said.value}; not even check mode")
            verdict = "shadow" if said == Gate.SHADOW else "preview"
        if input.rollback_of is not None:
            raise NotAdmitted("rollback_of: only a rollback admission may name a run to undo")

    admission = Admission(
        incident_id=input.incident_id,
        plan_hash=input.plan_hash,
        index=input.index,
        action_digest=action_digest(action),
        mode=input.mode,
        idempotency_key=input.idempotency_key,
        rollback_of=input.rollback_of,
        verdict=verdict,
        approver=approver,
        admitted_at=now,
        expires_at=now
        + LOCK_WAIT_ALLOWANCE
        + timedelta(seconds=action.timeout_seconds) * PLAYBOOK_ATTEMPTS
        + ADMISSION_MARGIN,
    )
    return seal_admission(sealer, admission)


def seal_admission(sealer: Sealer, admission: Admission) -> Admission:
    return admission.model_copy(update={"seal": sealer.seal(ADMISSION_PURPOSE, admission.sealed_fields())})


def check_admission(sealer: Sealer, run: RemediationInput, now: datetime) -> Admission:
    """The run's admission if it is genuine, current and for exactly this run."""
    admission = run.admission
    if admission is None:
        raise NotAdmitted("admission: missing; remediation runs only as an admitted child of its incident")
    if not sealer.verify(ADMISSION_PURPOSE, admission.sealed_fields(), admission.seal):
        raise NotAdmitted("admission: its seal does not verify (forged, altered, or another worker key)")
    mismatches = [
        name
        for name, ok in (
            ("incident_id", admission.incident_id == run.incident_id),
            ("action", admission.action_digest == action_digest(run.action)),
            ("idempotency_key", admission.idempotency_key == run.idempotency_key),
            ("check_mode", admission.mode == run.mode),
            ("rollback_of", admission.rollback_of == run.rollback_of),
        )
        if not ok
    ]
    if mismatches:
        raise NotAdmitted(f"admission: does not cover this run ({', '.join(mismatches)} differ)")
    if admission.expires_at <= now:
        raise NotAdmitted(f"admission: expired at {admission.expires_at.isoformat()}")
    return admission


def verify_answer(
    sealer: Sealer,
    codes: ApprovalCodes | None,
    input: VerifyApprovalInput,
    now: datetime,
) -> VerifyApprovalResult:
    """Authenticate an approve/reject signal; an attested record, or a refusal naming the field.

    With approval codes (`codes` set) the approver is who the code was issued to, after the
    API authenticated them; the typed `by` must name the same person. Without (`roster` mode,
    the dev stack's default) the typed name is all there is, and the record says so.
    """
    signal = input.signal
    record = ApprovalRecord(
        decision=input.decision, by=signal.by, reason=signal.reason, at=now, plan_hash=signal.plan_hash
    )

    def refuse(why: str) -> VerifyApprovalResult:
        note = f"{input.decision}: {why}"
        return VerifyApprovalResult(
            refused=why, record=record.model_copy(update={"decision": "refused", "note": note})
        )

    if codes is None:
        record = record.model_copy(update={"authenticated_by": "roster"})
    else:
        if not signal.code:
            return refuse("code: missing; ask Firebreak for an approval code (firebreak approval-code)")
        try:
            claims = codes.verify(signal.code, input.incident_id, input.plan_hash, now)
        except SealError as exc:
            return refuse(str(exc))
        if claims.nonce in input.used_nonces:
            return refuse("code: already used for an answer to this incident")
        if claims.approver.strip().casefold() != signal.by.strip().casefold():
            return refuse(f"by: {signal.by!r} signed, but the code was issued to {claims.approver!r}")
        record = record.model_copy(
            update={"by": claims.approver, "authenticated_by": "code", "code_nonce": claims.nonce}
        )
    if not admitted(input.decisions, record.by):
        groups = ", ".join(sorted({d.approver_group or "?" for d in input.decisions if d.approvers}))
        return refuse(f"by: {record.by} is not in the approver group for this plan ({groups or 'none'})")
    return VerifyApprovalResult(record=attest_approval(sealer, input.incident_id, record))
