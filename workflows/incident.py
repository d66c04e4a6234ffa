"""IncidentWorkflow: one incident from its first alert to its outcome.

settle -> triage -> gather context -> diagnose -> plan -> review -> policy -> gate ->
remediation (child workflows) -> verify (-> rollback) -> close.

Each agent step is its own activity on the hybrid reasoner (rules first, Claude where the
rules are not enough). When the LLM stays unavailable (retries exhausted, or a request it
rejects), the step runs again on rules and so does the rest of the incident, which records
why. Token usage, cost and redaction counts of every decision add up in the state.

Governance. The policy (Rego) decides per action: deny, allow, or needs approval from a
group whose members it names; the action class's autonomy level is the catalog's, moved by
its track record from memory (promotion and demotion by rule, each change recorded). The
gate (workflows/gate.py) is the only place that turns decisions and answers into "run":
- shadow mode (autonomy `recommend`): the plan runs in Ansible check mode, the incident
  records what would have changed and closes as `recommended`;
- needs approval: the plan first runs in check mode so the request shows exactly what would
  change and the blast radius; an answer names the plan's hash and must come from the
  approver group, anything else is refused and recorded while the request stays open;
- after the action, the alerts must resolve within the verify window, or each applied
  action whose catalog entry has a rollback playbook is rolled back, and the incident
  escalates.

Bounded history: at each wait (settle, approval, verify), after `max_signals_per_run`
alert signals in one run or when Temporal suggests it, the run continues as new carrying
the whole state and the wait's deadline (IncidentResume).

The workflow's history is the audit log: every alert batch, decision, approval and action
result is an event in it. The state query and the Temporal UI's current details show the
incident as it is now, including exactly which signal answers a pending approval.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError
from temporalio.exceptions import TimeoutError as ActivityTimeout

with workflow.unsafe.imports_passed_through():
    from activities.admission import AdmissionActivities
    from activities.agents import AgentActivities
    from activities.policy import PolicyActivities
    from models.admission import Admission
    from models.agents import (
        AgentInput,
        AgentResult,
        DiagnosisInput,
        Evidence,
        Grounding,
        PlanInput,
        ProposedAction,
        ReviewInput,
        TriageInput,
        TriageResult,
    )
    from models.alert import Alert, AlertBatch, AlertStatus, Severity
    from models.constants import (
        INCIDENT_WORKFLOW,
        QUERY_STATE,
        SA_OUTCOME,
        SA_PHASE,
        SA_SERVICE,
        SA_SEVERITY,
        SIGNAL_ALERTS,
        SIGNAL_APPROVE,
        SIGNAL_REJECT,
    )
    from models.incident import (
        AdmitInput,
        ApprovalRecord,
        ApprovalSignal,
        Decision,
        IncidentResult,
        IncidentResume,
        IncidentState,
        IncidentWorkflowInput,
        Outcome,
        Phase,
        Plan,
        RemediationInput,
        RemediationResult,
        Stage,
        VerifyApprovalInput,
        VerifyApprovalResult,
    )
    from models.memory import (
        ActionTrackRecord,
        RecordResult,
        RetrievedContext,
        RetrieveInput,
        TrackRecordInput,
        TrackRecordResult,
        grounding_from_context,
    )
    from models.notify import NotifyChannel, NotifyEvent
    from models.policy import PolicyDecision, PolicyInput, PolicyVerdict
    from models.rca import Symptom, TelemetryInput, TelemetryResult
    from policies.gate import Gate, answer, approval_needed, gate, refusal, strictest
    from workflows import notifier
    from workflows.details import render_details
    from workflows.records import incident_record
    from workflows.remediation import RemediationWorkflow

__all__ = ["IncidentWorkflow", "render_details", "strictest"]

# Incidents that started before governance (track record, check-mode preview, approver
# groups, rollback, continue-as-new) replay along the path they took.
GOVERNANCE_PATCH = "firebreak-governance-v1"

POLICY_TIMEOUT = timedelta(seconds=15)
DECISION_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=20),
    maximum_attempts=5,
    non_retryable_error_types=["PolicyError", "CatalogError"],
)
# Context (telemetry, memory, track record) is worth waiting for briefly, never worth
# blocking on.
CONTEXT_TIMEOUT = timedelta(seconds=60)
CONTEXT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=5),
    maximum_attempts=3,
    non_retryable_error_types=["RecordNotFound", "TopologyError"],
)
MAX_EVIDENCE = 60
# An agent activity may make an LLM call and its repair (each bounded by the client's own
# timeout, at most 35 s); a few attempts, then the incident continues on rules.
AGENT_TIMEOUT = timedelta(seconds=90)
AGENT_SCHEDULE_TIMEOUT = timedelta(minutes=4)
AGENT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=3,
    non_retryable_error_types=["LLMRequestRejected"],
)
LLM_FAULTS = ("LLMUnavailable", "LLMRequestRejected")
RULES_TIMEOUT = timedelta(seconds=30)
# A check-mode run (approval preview, shadow mode) waits this long for the target's lock:
# the approval request should not wait half an hour behind another remediation.
CHECK_LOCK_WAIT_SECONDS = 120.0

AgentInputT = TypeVar("AgentInputT", bound="AgentInput")
AgentResultT = TypeVar("AgentResultT", bound="AgentResult")


@workflow.defn(name=INCIDENT_WORKFLOW)
class IncidentWorkflow:
    @workflow.init
    def __init__(self, input: IncidentWorkflowInput) -> None:
        self._input = input
        resume = input.resume
        if resume is not None:
            self._state = resume.state
        else:
            info = workflow.info()
            self._state = IncidentState(incident_id=info.workflow_id, key=input.key, opened_at=workflow.now())
        self._approval: ApprovalRecord | None = None
        self._awaiting_approval = resume is not None and resume.stage == Stage.APPROVAL
        self._signals_this_run = 0
        self._governance = True  # settled at the start of run()
        self._notifier = notifier.Notifier()
        if resume is not None:  # what earlier runs told whom: comment on their tickets, not anew
            self._notifier.tickets = {NotifyChannel(c): t for c, t in resume.notify_tickets.items()}
            self._notifier._sent = resume.notified

    # --- handlers --------------------------------------------------------------------------

    @workflow.signal(name=SIGNAL_ALERTS)
    def on_alerts(self, batch: AlertBatch) -> None:
        """Record alerts; the same alert twice (same fingerprint and status) counts once."""
        self._state.alert_signals += 1
        self._signals_this_run += 1
        for alert in batch.alerts:
            known = self._state.alerts.get(alert.fingerprint)
            if known is not None and known.status == alert.status:
                self._state.duplicate_alerts += 1
                continue
            if (
                known is not None
                and known.status == AlertStatus.RESOLVED
                and alert.status == AlertStatus.FIRING
            ):
                # A re-fire within the same incident: keep the original start.
                alert = alert.model_copy(update={"starts_at": min(known.starts_at, alert.starts_at)})
            self._state.alerts[alert.fingerprint] = alert
        self._refresh_details()

    @workflow.signal(name=SIGNAL_APPROVE)
    async def on_approve(self, signal: ApprovalSignal) -> None:
        await self._answer("approved", signal)

    @workflow.signal(name=SIGNAL_REJECT)
    async def on_reject(self, signal: ApprovalSignal) -> None:
        await self._answer("rejected", signal)

    @workflow.query(name=QUERY_STATE)
    def state(self) -> IncidentState:
        return self._state

    async def _answer(self, decision: Literal["approved", "rejected"], signal: ApprovalSignal) -> None:
        """Accept an answer to the pending approval, or record why it is refused.

        The gate's own checks come first (pending, plan hash, roster); then the worker
        authenticates the approver (approval code, policies/admission.py) and attests the
        record, which is what the admission will trust. Checked again after that wait: a
        second answer that arrived meanwhile finds the request already answered.
        """
        state = self._state
        why = refusal(self._gate_decisions(), state.plan_hash, self._pending(), signal)
        record: ApprovalRecord | None = None
        if why is None:
            try:
                verified: VerifyApprovalResult = await workflow.execute_activity_method(
                    AdmissionActivities.verify_approval,
                    VerifyApprovalInput(
                        incident_id=state.incident_id,
                        plan_hash=state.plan_hash,
                        decision=decision,
                        signal=signal,
                        decisions=approval_needed(self._gate_decisions()),
                        used_nonces=[a.code_nonce for a in state.approvals if a.code_nonce],
                    ),
                    start_to_close_timeout=POLICY_TIMEOUT,
                    retry_policy=DECISION_RETRY,
                )
            except ActivityError as exc:
                why = f"could not verify the approver: {_cause(exc)}"
            else:
                why, record = verified.refused, verified.record
            if why is None and not self._pending():
                why = "no approval is pending"
        if why is not None or record is None:
            why = why or "not verified"
            refused = ApprovalRecord(
                decision="refused",
                by=signal.by,
                reason=signal.reason,
                at=workflow.now(),
                plan_hash=signal.plan_hash,
                note=f"{decision}: {why}",
                code_nonce=record.code_nonce if record is not None else None,
            )
            state.approvals.append(refused)
            self._decide("approval", signal.by, f"{decision} signal refused", [why])
            workflow.logger.warning("approval signal from %s refused: %s", signal.by, why)
            self._refresh_details()
            return
        self._approval = record
        state.approvals.append(record)
        self._decide(
            "approval",
            record.by,
            f"plan {decision}",
            ([signal.reason] if signal.reason else []) + [f"authenticated by {record.authenticated_by}"],
        )

    def _pending(self) -> bool:
        return self._awaiting_approval and self._approval is None

    # --- main ------------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: IncidentWorkflowInput) -> IncidentResult:
        resume = input.resume
        self._governance = resume is not None or workflow.patched(GOVERNANCE_PATCH)
        stage = resume.stage if resume is not None else Stage.SETTLE
        deadline = resume.deadline if resume is not None else None
        if stage == Stage.SETTLE:
            closed = await self._settle_and_decide(deadline)
            if closed is not None:
                return closed
            stage, deadline = Stage.APPROVAL, None
        if stage == Stage.APPROVAL:
            closed = await self._gate_and_remediate(deadline)
            if closed is not None:
                return closed
            deadline = None
        return await self._verify(deadline)

    async def _settle_and_decide(self, deadline: datetime | None) -> IncidentResult | None:
        """Settle, triage, context, diagnosis, plan, review and policy; None: go to the gate."""
        state, input = self._state, self._input
        self._set_phase(Phase.SETTLING)
        if deadline is None:
            deadline = workflow.now() + timedelta(seconds=input.settle_seconds)
        if await self._wait_until(lambda: state.all_resolved, deadline, Stage.SETTLE):
            return await self._close(Outcome.TRANSIENT, "every alert resolved within the settle window")

        self._set_phase(Phase.TRIAGE)
        alerts = state.firing or list(state.alerts.values())
        triage = await self._agent(
            AgentActivities.triage,
            TriageInput(incident_id=state.incident_id, alerts=alerts),
        )
        state.triage = triage
        state.severity = triage.severity
        workflow.upsert_search_attributes(
            [
                SA_SEVERITY.value_set(triage.severity.value),
                SA_SERVICE.value_set(",".join(triage.services)[:256]),
            ]
        )
        self._decide_agent("triage", triage, f"{triage.severity} {triage.category}: {triage.summary}")
        self._notifier.send(NotifyEvent.OPENED, state)
        if triage.escalate_reason:
            return await self._close(Outcome.ESCALATED, triage.escalate_reason)
        if not triage.actionable:
            return await self._close(Outcome.NO_ACTION, f"{triage.category}: nothing to remediate")

        self._set_phase(Phase.GATHERING)
        evidence, grounding = await self._gather_context(alerts, triage)
        self._set_phase(Phase.DIAGNOSING)
        diagnosis = await self._agent(
            AgentActivities.diagnose,
            DiagnosisInput(incident_id=state.incident_id, alerts=alerts, triage=triage, evidence=evidence),
        )
        state.diagnosis = diagnosis
        top = diagnosis.hypotheses[0] if diagnosis.hypotheses else None
        self._decide_agent(
            "diagnosis",
            diagnosis,
            f"{len(diagnosis.hypotheses)} hypothesis(es)"
            + (f"; best: {top.cause} ({top.confidence:.2f})" if top else ""),
            [
                f"{h.service}/{h.kind} {h.confidence:.2f}: {'; '.join(h.evidence[:3])}"
                for h in diagnosis.hypotheses
            ],
        )
        if diagnosis.escalate_reason:
            return await self._close(Outcome.ESCALATED, diagnosis.escalate_reason)

        self._set_phase(Phase.PLANNING)
        proposal = await self._agent(
            AgentActivities.plan_remediation,
            PlanInput(
                incident_id=state.incident_id,
                alerts=alerts,
                triage=triage,
                diagnosis=diagnosis,
                evidence=evidence,
                grounding=grounding,
            ),
        )
        state.proposal = proposal
        self._decide_agent(
            "plan",
            proposal,
            "escalate: " + proposal.escalate_reason
            if proposal.escalate_reason
            else "; ".join(
                f"{a.action} on {a.target} {json.dumps(a.params, sort_keys=True)}" for a in proposal.actions
            ),
            [proposal.rationale]
            + ([f"expected: {proposal.expected_effect}"] if proposal.expected_effect else [])
            + ([f"verify: {proposal.verification}"] if proposal.verification else []),
        )
        if proposal.escalate_reason or not proposal.actions:
            return await self._close(
                Outcome.ESCALATED, proposal.escalate_reason or "the planner proposed no action"
            )

        self._set_phase(Phase.REVIEWING)
        review = await self._agent(
            AgentActivities.review_plan,
            ReviewInput(
                incident_id=state.incident_id,
                alerts=alerts,
                triage=triage,
                diagnosis=diagnosis,
                plan=proposal,
                evidence=evidence,
            ),
        )
        state.review = review
        self._decide_agent("review", review, f"plan {review.verdict}", review.reasons)
        if review.verdict == "veto":
            return await self._close(Outcome.VETOED, "reviewer vetoed the plan: " + "; ".join(review.reasons))

        plan = Plan(actions=proposal.actions)
        state.plan = plan
        state.plan_hash = plan.digest()
        self._set_phase(Phase.POLICY)
        await self._evaluate_policy(plan, triage)
        return None

    async def _evaluate_policy(self, plan: Plan, triage: TriageResult) -> None:
        """One decision per action (with its class's track record), and the plan's strictest."""
        state = self._state
        records = await self._track_records(plan) if self._governance else None
        decisions = []
        for action in plan.actions:
            record = records.get(action.action) if records is not None else None
            decisions.append(
                await workflow.execute_activity_method(
                    PolicyActivities.evaluate_policy,
                    PolicyInput(
                        incident_id=state.incident_id,
                        severity=triage.severity,
                        services=triage.services,
                        action=action,
                        now=workflow.now(),
                        track_record=record.model_dump(mode="json") if record is not None else None,
                    ),
                    start_to_close_timeout=POLICY_TIMEOUT,
                    retry_policy=DECISION_RETRY,
                )
            )
        state.policy_decisions = decisions
        state.policy = strictest(decisions)
        self._decide("policy", state.policy.policy, f"verdict: {state.policy.verdict}", state.policy.reasons)
        recorded: set[str] = set()
        for decision in decisions:
            autonomy = decision.autonomy
            if autonomy is None or autonomy.change is None or decision.action in recorded:
                continue
            # A change of level is a decision of its own: shown in the state, the UI and the audit.
            recorded.add(str(decision.action))
            self._decide(
                "autonomy",
                decision.policy,
                f"{decision.action} {autonomy.change}: {autonomy.configured} -> {autonomy.effective}",
                [r for r in decision.reasons if f" {autonomy.change} " in r],
            )

    async def _track_records(self, plan: Plan) -> dict[str, ActionTrackRecord] | None:
        """Each action class's track record from memory; None (and a note) if memory fails."""
        try:
            result: TrackRecordResult = await workflow.execute_activity(
                "action_track_record",
                TrackRecordInput(actions=sorted({a.action for a in plan.actions})),
                result_type=TrackRecordResult,
                start_to_close_timeout=CONTEXT_TIMEOUT,
                retry_policy=CONTEXT_RETRY,
            )
        except ActivityError as exc:
            self._state.degraded.append(
                f"track record unavailable ({_cause(exc)}): the catalog's autonomy levels apply"
            )
            return None
        return result.records

    async def _gate_and_remediate(self, deadline: datetime | None) -> IncidentResult | None:
        """Apply the gate: deny, shadow, wait for an admitted answer, or run; None: verify."""
        state, input = self._state, self._input
        plan = self._plan()
        verdict = gate(self._gate_decisions(), state.plan_hash, state.approvals)
        if verdict == Gate.DENY:
            return await self._close(Outcome.DENIED, "; ".join(state.policy.reasons if state.policy else []))
        if verdict == Gate.SHADOW:
            return await self._shadow()
        if verdict == Gate.WAIT:
            asking = deadline is None  # False: a continued run, whose request is already out
            if deadline is None:  # ask now, showing what would change
                if self._governance:
                    await self._preview()
                deadline = workflow.now() + timedelta(seconds=input.approval_timeout_seconds)
            self._awaiting_approval = True
            self._set_phase(Phase.AWAITING_APPROVAL)
            if asking:
                self._notifier.send(NotifyEvent.APPROVAL_NEEDED, state)
            await self._wait_until(
                lambda: self._approval is not None or state.all_resolved, deadline, Stage.APPROVAL
            )
            self._awaiting_approval = False
            verdict = gate(self._gate_decisions(), state.plan_hash, state.approvals)
            if verdict == Gate.WAIT:
                if state.all_resolved:
                    return await self._close(
                        Outcome.SELF_RESOLVED,
                        "every alert resolved while waiting for approval; request withdrawn",
                    )
                return await self._close(
                    Outcome.ESCALATED,
                    f"no approval within {input.approval_timeout_seconds:g}s; escalated to a human",
                )
            if verdict == Gate.REJECT:
                record = answer(self._gate_decisions(), state.plan_hash, state.approvals)
                by, why = (record.by, record.reason) if record else ("?", "")
                return await self._close(Outcome.REJECTED, f"rejected by {by}: {why}")
        if verdict != Gate.RUN:  # the gate has no other way to let a plan through
            raise ApplicationError(
                f"gate said {verdict} after approval", type="GateError", non_retryable=True
            )
        if state.all_resolved:
            return await self._close(Outcome.SELF_RESOLVED, "every alert resolved before any action ran")

        self._set_phase(Phase.REMEDIATING)
        for index, action in enumerate(plan.actions):
            result = await self._run_child(
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
            self._decide(
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
                return await self._close(Outcome.ESCALATED, reason + await self._roll_back(reason))
        return None

    async def _verify(self, deadline: datetime | None) -> IncidentResult:
        """The alerts must resolve within the verify window; if not, roll back and escalate."""
        state, input = self._state, self._input
        if deadline is None:
            self._set_phase(Phase.VERIFYING)
            deadline = workflow.now() + timedelta(seconds=input.verify_window_seconds)
        if await self._wait_until(lambda: state.all_resolved, deadline, Stage.VERIFY):
            self._decide("verification", "firebreak", "every alert resolved after remediation")
            return await self._close(Outcome.REMEDIATED, "remediated and verified: alerts resolved")
        still = ", ".join(sorted(a.name for a in state.firing))
        self._decide("verification", "firebreak", "alerts still firing after remediation", [still])
        reason = f"still firing {input.verify_window_seconds:g}s after remediation: {still}"
        rolled_back = await self._roll_back(reason) if self._governance else ""
        return await self._close(Outcome.ESCALATED, reason + rolled_back)

    # --- check mode, shadow mode, rollback -------------------------------------------------

    async def _preview(self) -> None:
        """Run the plan in check mode so the approval request shows exactly what would change."""
        state = self._state
        for index, action in enumerate(self._plan().actions):
            result = await self._run_child("check", index, self._check_input(index, action))
            state.previews.append(result)
            self._decide("preview", "ansible", f"check mode: {result.summary}", change_lines(result))

    async def _shadow(self) -> IncidentResult:
        """Shadow mode: run the plan in check mode only and record what would have changed."""
        state = self._state
        self._set_phase(Phase.REMEDIATING)
        for index, action in enumerate(self._plan().actions):
            result = await self._run_child("check", index, self._check_input(index, action))
            state.remediations.append(result)
            self._decide("remediation", "ansible", f"shadow: {result.summary}", change_lines(result))
            if result.status != "successful":
                return await self._close(
                    Outcome.ESCALATED, f"shadow run of {action.action} on {action.target}: {result.status}"
                )
        would = [f"{c.task} ({r.action} on {r.target})" for r in state.remediations for c in r.changes]
        return await self._close(
            Outcome.RECOMMENDED,
            "shadow mode, nothing applied; would change: " + ("; ".join(would) if would else "nothing"),
        )

    async def _roll_back(self, reason: str) -> str:
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
            result = await self._run_child(
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
            self._decide(
                "rollback", "ansible", result.summary, [f"undoes run {forward.idempotency_key}: {reason}"]
            )
            done.append(f"{forward.action} on {forward.target} rollback {result.status}")
        return f"; rolled back: {', '.join(done)}" if done else ""

    async def _rollback_decision(self, action: ProposedAction) -> PolicyDecision | None:
        """The policy's verdict on undoing `action` now (a rollback is admitted unless denied)."""
        state = self._state
        try:
            decision: PolicyDecision = await workflow.execute_activity_method(
                PolicyActivities.evaluate_policy,
                PolicyInput(
                    incident_id=state.incident_id,
                    severity=state.severity or Severity.P3,
                    services=state.triage.services if state.triage else [],
                    action=action,
                    now=workflow.now(),
                ),
                start_to_close_timeout=POLICY_TIMEOUT,
                retry_policy=DECISION_RETRY,
            )
        except ActivityError as exc:
            summary = f"rollback of {action.action}: no policy verdict"
            self._decide("policy", "firebreak", summary, [_cause(exc)])
            return None
        self._decide(
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

    async def _run_child(
        self,
        kind: str,
        index: int,
        action_input: RemediationInput,
        decisions: list[PolicyDecision] | None = None,
        forward: Admission | None = None,
    ) -> RemediationResult:
        """One admitted RemediationWorkflow (it takes the target's lock); a failure is a result.

        The worker's admission activity decides again over sealed decisions and attested
        answers, and its sealed admission travels in the child's input.
        """
        info = workflow.info()
        try:
            admission = await self._admit(kind, index, action_input, decisions, forward)
            return await workflow.execute_child_workflow(
                RemediationWorkflow.run,
                action_input.model_copy(update={"admission": admission}),
                id=f"{info.workflow_id}-{kind}-{index}-{info.run_id[:8]}",
                task_queue=self._input.remediation_task_queue or info.task_queue,
            )
        except (ActivityError, ChildWorkflowError) as exc:
            # The reason a human needs is the innermost one (e.g. "Vault ... unavailable"), not
            # the ActivityError / ChildWorkflowError wrappers around it.
            cause: BaseException = exc
            while getattr(cause, "cause", None) is not None and not isinstance(cause, ApplicationError):
                cause = cause.cause  # type: ignore[attr-defined]
            message = cause.message if isinstance(cause, ApplicationError) else str(cause)
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
            admission: Admission = await workflow.execute_activity_method(
                AdmissionActivities.admit_remediation,
                AdmitInput(
                    incident_id=state.incident_id,
                    plan=self._plan(),
                    plan_hash=state.plan_hash or "",
                    index=index,
                    mode=action_input.mode,
                    idempotency_key=action_input.idempotency_key,
                    rollback_of=action_input.rollback_of,
                    decisions=decisions if decisions is not None else state.policy_decisions,
                    approvals=state.approvals,
                    forward=forward,
                ),
                start_to_close_timeout=POLICY_TIMEOUT,
                retry_policy=DECISION_RETRY,
            )
        except ActivityError as exc:
            self._decide("admission", "firebreak", f"{kind} #{index} not admitted", [_cause(exc)])
            raise
        state.admissions.append(admission)
        self._decide(
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

    def _plan(self) -> Plan:
        if self._state.plan is None:  # the gate is only ever reached with a plan
            raise ApplicationError("no plan to act on", type="GateError", non_retryable=True)
        return self._state.plan

    def _severity_rank(self) -> int:
        return self._state.severity.rank if self._state.severity else 3

    def _gate_decisions(self) -> list[PolicyDecision]:
        state = self._state
        decisions = state.policy_decisions or ([state.policy] if state.policy else [])
        if not self._governance:  # before approver groups, anyone who signed could answer
            decisions = [d.model_copy(update={"approvers": ["*"]}) for d in decisions]
        return decisions

    # --- waiting, and continuing as new ----------------------------------------------------

    async def _wait_until(self, condition: Callable[[], bool], deadline: datetime, stage: Stage) -> bool:
        """Wait for `condition` until `deadline`; True if it held. Continues as new when due."""
        while True:
            if condition():
                return True
            remaining = (deadline - workflow.now()).total_seconds()
            if remaining <= 0:
                return False
            try:
                await workflow.wait_condition(
                    lambda: condition() or self._history_full(), timeout=timedelta(seconds=remaining)
                )
            except TimeoutError:
                return condition()
            if not condition() and self._history_full():
                await self._continue_as_new(stage, deadline)

    def _history_full(self) -> bool:
        return self._governance and (
            self._signals_this_run >= self._input.max_signals_per_run
            or workflow.info().is_continue_as_new_suggested()
        )

    async def _continue_as_new(self, stage: Stage, deadline: datetime) -> None:
        state = self._state
        self._decide(
            "continue_as_new",
            "firebreak",
            f"history bounded: run {state.runs} continues as new while waiting ({stage.value})",
            [f"{self._signals_this_run} alert signal(s) in this run, {state.alert_signals} in all"],
        )
        # Notifications in flight would be abandoned with this run: let them land first.
        await self._notifier.flush()
        await workflow.wait_condition(workflow.all_handlers_finished)
        state.runs += 1
        resume = IncidentResume(
            state=state,
            stage=stage,
            deadline=deadline,
            notify_tickets={c.value: t for c, t in self._notifier.tickets.items()},
            notified=self._notifier._sent,
        )
        workflow.continue_as_new(self._input.model_copy(update={"resume": resume}))

    # --- agents ----------------------------------------------------------------------------

    async def _agent(
        self, activity: Callable[[Any, AgentInputT], Awaitable[AgentResultT]], input: AgentInputT
    ) -> AgentResultT:
        """Run one agent; when its LLM stays unavailable, run it (and the rest) on rules."""
        state = self._state
        if state.llm_unavailable is None:
            try:
                result = await workflow.execute_activity_method(
                    activity,
                    input.model_copy(update={"llm_usage": state.llm_usage}),
                    start_to_close_timeout=AGENT_TIMEOUT,
                    schedule_to_close_timeout=AGENT_SCHEDULE_TIMEOUT,
                    retry_policy=AGENT_RETRY,
                )
                return self._account(result)
            except ActivityError as exc:
                cause = exc.cause
                if isinstance(cause, ApplicationError) and cause.type in LLM_FAULTS:
                    why = f"{cause.type}: {cause.message}"
                elif isinstance(cause, ActivityTimeout):
                    why = f"timed out: {cause.message}"
                else:
                    raise
                state.llm_unavailable = f"LLM unavailable ({why}); the incident continues on rules"
                self._decide("llm", "firebreak", state.llm_unavailable)
        result = await workflow.execute_activity_method(
            activity,
            input.model_copy(update={"llm_usage": state.llm_usage, "rules_only": state.llm_unavailable}),
            start_to_close_timeout=RULES_TIMEOUT,
            retry_policy=DECISION_RETRY,
        )
        return self._account(result)

    def _account(self, result: AgentResultT) -> AgentResultT:
        state = self._state
        state.llm_usage = state.llm_usage.plus(result.usage)
        for kind, count in result.redactions.items():
            state.redactions[kind] = state.redactions.get(kind, 0) + count
        return result

    def _decide_agent(
        self, kind: str, result: AgentResult, summary: str, reasons: list[str] | None = None
    ) -> None:
        usage = result.usage
        notes = list(reasons or [])
        if usage.calls:
            notes.append(f"LLM: {usage.calls} call(s), {usage.total_tokens} tokens, ${usage.cost_usd:.4f}")
        if result.repair_error:
            notes.append(f"repaired after: {result.repair_error}")
        if result.escalate_reason:
            notes.append(f"escalate: {result.escalate_reason}")
        self._state.decisions.append(
            Decision(
                at=workflow.now(),
                kind=kind,
                by=result.reasoner,
                summary=summary,
                reasons=notes,
                confidence=result.confidence,
                routing=result.routing,
            )
        )

    async def _gather_context(
        self, alerts: list[Alert], triage: TriageResult
    ) -> tuple[list[Evidence], Grounding]:
        """Telemetry + root-cause ranking and memory, in parallel; either may be missing.

        Activities are called by name so this module never imports their I/O libraries.
        A source that fails is recorded in `degraded` and the incident goes on without it.
        """
        state = self._state
        # Both start now and run side by side; each is awaited on its own so one can fail alone.
        telemetry_call = workflow.start_activity(
            "gather_telemetry",
            TelemetryInput(
                incident_id=state.incident_id,
                services=triage.services,
                symptom=Symptom(service=triage.services[0]) if triage.services else None,
                incident_start=min(a.starts_at for a in alerts),
                incident_end=workflow.now(),
                alerts=alerts[:50],
            ),
            result_type=TelemetryResult,
            start_to_close_timeout=CONTEXT_TIMEOUT,
            retry_policy=CONTEXT_RETRY,
        )
        memory_call = workflow.start_activity(
            "retrieve_context",
            RetrieveInput.from_alerts(
                state.incident_id, alerts, summary=triage.summary, category=triage.category
            ),
            result_type=RetrievedContext,
            start_to_close_timeout=CONTEXT_TIMEOUT,
            retry_policy=CONTEXT_RETRY,
        )
        evidence: list[Evidence] = []
        notes: list[str] = []
        try:
            telemetry: TelemetryResult = await telemetry_call
        except ActivityError as exc:
            state.degraded.append(f"telemetry unavailable: {_cause(exc)}")
        else:
            # The ranker's top candidates as root_cause evidence, then what Prometheus showed.
            # Scaled by how much telemetry there was: a ranking from alerts alone is a weak hint.
            evidence = [
                e.model_copy(update={"score": round(e.score * telemetry.confidence, 4)})
                if e.score is not None
                else e
                for e in telemetry.diagnosis_evidence()[:MAX_EVIDENCE]
            ]
            state.root_cause_candidates = [
                f"{c.service} ({c.confidence:.2f})" for c in telemetry.candidates[:5]
            ]
            if telemetry.status != "ok":
                state.degraded.extend(telemetry.reasons[:5])
            notes.append(f"telemetry {telemetry.status}: {len(evidence)} evidence item(s)")
            if state.root_cause_candidates:
                notes.append("root-cause ranking: " + ", ".join(state.root_cause_candidates))
        try:
            context: RetrievedContext = await memory_call
        except ActivityError as exc:
            reason = f"memory unavailable: {_cause(exc)}"
            state.degraded.append(reason)
            grounding = Grounding(unavailable_reason=reason)
        else:
            grounding = grounding_from_context(context)
            notes.append(
                f"memory ({context.mode}): {len(context.passages)} passage(s), "
                f"{len(context.incidents)} similar incident(s)"
            )
        state.evidence = evidence
        state.grounding = grounding
        self._decide("context", "firebreak", "context gathered", notes + state.degraded)
        return evidence, grounding

    async def _close(self, outcome: Outcome, reason: str) -> IncidentResult:
        state = self._state
        state.outcome = outcome
        state.closed_at = workflow.now()
        self._decide("close", "firebreak", f"closed: {outcome}", [reason])
        self._set_phase(Phase.CLOSED)
        workflow.upsert_search_attributes([SA_OUTCOME.value_set(outcome.value)])
        notifier.incident_closed(state)
        await self._notifier.close(state, reason)
        if state.triage is not None:
            # Episodic memory: best effort, it never changes how the incident ended.
            top = state.diagnosis.hypotheses[0] if state.diagnosis and state.diagnosis.hypotheses else None
            record = incident_record(
                state,
                # One record per incident, however many runs it continued as new through.
                run_id=workflow.info().first_execution_run_id,
                root_cause=top.cause if top else None,
                cited=state.proposal.citations if state.proposal else [],
                outcome_reason=reason,
            )
            try:
                await workflow.execute_activity(
                    "record_incident",
                    record,
                    result_type=RecordResult,
                    start_to_close_timeout=CONTEXT_TIMEOUT,
                    retry_policy=CONTEXT_RETRY,
                )
                state.memory_record = record.id
            except ActivityError as exc:
                state.degraded.append(f"episodic memory not written: {_cause(exc)}")
        await workflow.wait_condition(workflow.all_handlers_finished)
        return IncidentResult(incident_id=state.incident_id, outcome=outcome, summary=reason)

    def _decide(self, kind: str, by: str, summary: str, reasons: list[str] | None = None) -> None:
        self._state.decisions.append(
            Decision(at=workflow.now(), kind=kind, by=by, summary=summary, reasons=reasons or [])
        )

    def _set_phase(self, phase: Phase) -> None:
        self._state.phase = phase
        workflow.upsert_search_attributes([SA_PHASE.value_set(phase.value)])
        notifier.phase_entered(phase.value)
        self._refresh_details()

    def _refresh_details(self) -> None:
        workflow.set_current_details(render_details(self._state, self._awaiting_approval))


def _cause(exc: BaseException) -> str:
    cause = exc.cause if isinstance(exc, ActivityError) else exc
    return getattr(cause, "message", None) or str(cause) or type(cause).__name__


def change_lines(result: RemediationResult) -> list[str]:
    """A run's changes as decision reasons: task, then the diff's first lines."""
    lines = []
    for change in result.changes:
        first = [line for line in change.diff.splitlines() if line.startswith(("+", "-", " ", "@"))][:6]
        lines.append(f"{change.task}: " + (" | ".join(first) if first else change.diff[:200]))
    return lines


def rollback_key(forward_key: str) -> str:
    """The rollback's own idempotency key: derived from, and never equal to, the undone run's."""
    return hashlib.sha256(f"{forward_key}/rollback".encode()).hexdigest()[:32]
