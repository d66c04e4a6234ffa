"""The incident's remediation runs: preview, shadow, apply and rollback, each an admitted child.

Every run is a `RemediationWorkflow` child (it takes the target's lock) started only with
an admission from the worker's `admit_remediation` activity, which decides again over the
sealed policy decisions and attested answers; the sealed admission travels in the child's
input. A run that cannot start or fails is a result with status "failed", never an
exception: the incident decides what to do about it.

- preview: the plan in check mode, so an approval request shows exactly what would change;
- shadow: check mode only (autonomy `recommend`), recording what would have changed;
- apply: the plan for real, action by action, stopping at the first that does not succeed;
- roll back: every applied action that declares a rollback, last first, unless the policy
  now denies undoing it.
"""

from __future__ import annotations

import hashlib

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from activities import table
    from models.admission import Admission
    from models.agents import ProposedAction
    from models.alert import Severity
    from models.incident import (
        AdmitInput,
        IncidentState,
        Outcome,
        Plan,
        RemediationInput,
        RemediationResult,
    )
    from models.policy import PolicyDecision, PolicyInput, PolicyVerdict
    from workflows.remediation import RemediationWorkflow
    from workflows.wording import cause, change_lines, decide, would_change

# A check-mode run (approval preview, shadow mode) waits this long for the target's lock:
# the approval request should not wait half an hour behind another remediation.
CHECK_LOCK_WAIT_SECONDS = 120.0


class RemediationRuns:
    """Runs of one incident's plan as admitted RemediationWorkflow children."""

    def __init__(self, state: IncidentState, task_queue: str | None) -> None:
        self._state = state
        self._task_queue = task_queue  # None: the incident's own

    async def preview(self) -> None:
        """Run the plan in check mode so the approval request shows exactly what would change."""
        state = self._state
        for index, action in enumerate(plan_of(state).actions):
            result = await self._run("check", index, self._check_input(index, action))
            state.previews.append(result)
            decide(state, "preview", "ansible", f"check mode: {result.summary}", change_lines(result))

    async def shadow(self) -> tuple[Outcome, str]:
        """Shadow mode: the plan in check mode only; the outcome and what would have changed."""
        state = self._state
        for index, action in enumerate(plan_of(state).actions):
            result = await self._run("check", index, self._check_input(index, action))
            state.remediations.append(result)
            decide(state, "remediation", "ansible", f"shadow: {result.summary}", change_lines(result))
            if result.status != "successful":
                return Outcome.ESCALATED, f"shadow run of {action.action} on {action.target}: {result.status}"
        return Outcome.RECOMMENDED, would_change(state.remediations)

    async def apply(self) -> str | None:
        """Run each action for real; None if all succeeded, else why (with what was rolled back)."""
        state = self._state
        for index, action in enumerate(plan_of(state).actions):
            result = await self._run(
                "action",
                index,
                RemediationInput(
                    incident_id=state.incident_id,
                    action=action,
                    idempotency_key=self._idempotency_key(index),
                    severity_rank=self._severity_rank(),
                ),
            )
            state.remediations.append(result)
            decide(
                state,
                "remediation",
                "ansible",
                result.summary,
                [f"credential accessor {result.credential_accessor}, revoked: {result.credential_revoked}"]
                if result.credential_accessor
                else [],
            )
            if result.status != "successful":
                reason = f"remediation {action.action} on {action.target}: {result.status}"
                if result.summary:  # why, e.g. the refusal naming its field, or Vault down
                    reason += f" ({result.summary})"
                return reason + await self.roll_back(reason)
        return None

    async def roll_back(self, reason: str) -> str:
        """Roll back every applied action that declares a rollback, last first; a summary."""
        state = self._state
        if state.plan is None:
            return ""
        done = []
        for index in reversed(range(len(state.remediations))):
            forward = state.remediations[index]
            if forward.check_mode or forward.status != "successful" or not forward.rollback_available:
                continue
            action = state.plan.actions[index]
            verdict = await self._rollback_decision(action)
            forward_admission = next(
                (a for a in state.admissions if a.idempotency_key == forward.idempotency_key), None
            )
            result = await self._run(
                "rollback",
                index,
                RemediationInput(
                    incident_id=state.incident_id,
                    action=action,
                    idempotency_key=rollback_key(forward.idempotency_key),
                    rollback_of=forward.idempotency_key,
                    severity_rank=self._severity_rank(),
                ),
                decisions=[verdict] if verdict is not None else [],
                forward=forward_admission,
            )
            state.rollbacks.append(result)
            decide(
                state,
                "rollback",
                "ansible",
                result.summary,
                [f"undoes run {forward.idempotency_key}: {reason}"],
            )
            done.append(f"{forward.action} on {forward.target} rollback {result.status}")
        return f"; rolled back: {', '.join(done)}" if done else ""

    async def _rollback_decision(self, action: ProposedAction) -> PolicyDecision | None:
        """The policy's verdict on undoing `action` now (a rollback is admitted unless denied)."""
        state = self._state
        try:
            decision = await table.execute(
                table.EVALUATE_POLICY,
                PolicyInput(
                    incident_id=state.incident_id,
                    severity=state.severity or Severity.P3,
                    services=state.triage.services if state.triage else [],
                    action=action,
                    now=workflow.now(),
                ),
            )
        except ActivityError as exc:
            decide(
                state, "policy", "firebreak", f"rollback of {action.action}: no policy verdict", [cause(exc)]
            )
            return None
        decide(
            state,
            "policy",
            decision.policy,
            f"rollback of {action.action} on {action.target}: "
            + ("denied" if decision.verdict == PolicyVerdict.DENY else "not denied"),
            decision.reasons,
        )
        return decision

    def _check_input(self, index: int, action: ProposedAction) -> RemediationInput:
        return RemediationInput(
            incident_id=self._state.incident_id,
            action=action,
            idempotency_key=self._idempotency_key(index, "check"),
            check_mode=True,
            severity_rank=self._severity_rank(),
            lock_wait_seconds=CHECK_LOCK_WAIT_SECONDS,
        )

    async def _run(
        self,
        kind: str,
        index: int,
        action_input: RemediationInput,
        decisions: list[PolicyDecision] | None = None,
        forward: Admission | None = None,
    ) -> RemediationResult:
        """One admitted RemediationWorkflow (it takes the target's lock); a failure is a result."""
        info = workflow.info()
        try:
            admission = await self._admit(kind, index, action_input, decisions, forward)
            return await workflow.execute_child_workflow(
                RemediationWorkflow.run,
                action_input.model_copy(update={"admission": admission}),
                id=f"{info.workflow_id}-{kind}-{index}-{info.run_id[:8]}",
                task_queue=self._task_queue or info.task_queue,
            )
        except (ActivityError, ChildWorkflowError) as exc:
            # The reason a human needs is the innermost one (e.g. "Vault ... unavailable"), not
            # the ActivityError / ChildWorkflowError wrappers around it.
            inner: BaseException = exc
            while getattr(inner, "cause", None) is not None and not isinstance(inner, ApplicationError):
                inner = inner.cause  # type: ignore[attr-defined]
            message = inner.message if isinstance(inner, ApplicationError) else str(inner)
            return RemediationResult(
                action=action_input.action.action,
                target=action_input.action.target,
                status="failed",
                changed=False,
                check_mode=action_input.check_mode,
                idempotency_key=action_input.idempotency_key,
                duration_seconds=0.0,
                summary=f"{action_input.action.action} could not run: {message}",
                rollback_of=action_input.rollback_of,
            )

    async def _admit(
        self,
        kind: str,
        index: int,
        action_input: RemediationInput,
        decisions: list[PolicyDecision] | None,
        forward: Admission | None,
    ) -> Admission:
        state = self._state
        try:
            admission = await table.execute(
                table.ADMIT_REMEDIATION,
                AdmitInput(
                    incident_id=state.incident_id,
                    plan=plan_of(state),
                    plan_hash=state.plan_hash or "",
                    index=index,
                    mode=action_input.mode,
                    idempotency_key=action_input.idempotency_key,
                    rollback_of=action_input.rollback_of,
                    decisions=decisions if decisions is not None else state.policy_decisions,
                    approvals=state.approvals,
                    forward=forward,
                ),
            )
        except ActivityError as exc:
            decide(state, "admission", "firebreak", f"{kind} #{index} not admitted", [cause(exc)])
            raise
        state.admissions.append(admission)
        decide(
            state,
            "admission",
            admission.approver or "policy",
            f"{kind} #{index} admitted ({admission.verdict})",
            [f"plan {admission.plan_hash}, key {admission.idempotency_key}, until {admission.expires_at}"],
        )
        return admission

    def _idempotency_key(self, index: int, purpose: str = "") -> str:
        """Stable across activity retries and worker restarts, unique per incident run and purpose."""
        info = workflow.info()
        raw = f"{info.workflow_id}/{info.run_id}/{index}" + (f"/{purpose}" if purpose else "")
        return hashlib.sha256(raw.encode()).hexdigest()[:32]

    def _severity_rank(self) -> int:
        return self._state.severity.rank if self._state.severity else 3


def plan_of(state: IncidentState) -> Plan:
    """The plan to act on; the gate is only ever reached with one."""
    if state.plan is None:
        raise ApplicationError("no plan to act on", type="GateError", non_retryable=True)
    return state.plan


def rollback_key(forward_key: str) -> str:
    """The rollback's own idempotency key: derived from, and never equal to, the undone run's."""
    return hashlib.sha256(f"{forward_key}/rollback".encode()).hexdigest()[:32]
