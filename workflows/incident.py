"""IncidentWorkflow: one incident from its first alert to its outcome.

settle -> triage -> policy -> (approval) -> remediation (child workflows) -> verify -> close.

The workflow's history is the audit log: every alert batch, decision, approval and action
result is an event in it. The state query and the Temporal UI's current details show the
incident as it is now, including exactly which signal answers a pending approval.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from activities.policy import PolicyActivities
    from activities.triage import TriageActivities
    from models.alert import AlertBatch, AlertStatus
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
        ApprovalRecord,
        ApprovalSignal,
        Decision,
        IncidentResult,
        IncidentState,
        IncidentWorkflowInput,
        Outcome,
        Phase,
        Plan,
        PolicyInput,
        PolicyVerdict,
        RemediationInput,
        RemediationResult,
        TriageInput,
    )
    from workflows.remediation import RemediationWorkflow

TRIAGE_TIMEOUT = timedelta(seconds=60)
POLICY_TIMEOUT = timedelta(seconds=15)
DECISION_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=20),
    maximum_attempts=5,
    non_retryable_error_types=["PolicyError", "CatalogError"],
)


@workflow.defn(name=INCIDENT_WORKFLOW)
class IncidentWorkflow:
    @workflow.init
    def __init__(self, input: IncidentWorkflowInput) -> None:
        self._input = input
        info = workflow.info()
        self._state = IncidentState(incident_id=info.workflow_id, key=input.key, opened_at=workflow.now())
        self._approval: ApprovalRecord | None = None
        self._awaiting_approval = False

    # --- handlers --------------------------------------------------------------------------

    @workflow.signal(name=SIGNAL_ALERTS)
    def on_alerts(self, batch: AlertBatch) -> None:
        """Record alerts; the same alert twice (same fingerprint and status) counts once."""
        self._state.alert_signals += 1
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
    def on_approve(self, signal: ApprovalSignal) -> None:
        self._answer("approved", signal)

    @workflow.signal(name=SIGNAL_REJECT)
    def on_reject(self, signal: ApprovalSignal) -> None:
        self._answer("rejected", signal)

    @workflow.query(name=QUERY_STATE)
    def state(self) -> IncidentState:
        return self._state

    def _answer(self, decision: str, signal: ApprovalSignal) -> None:
        record = ApprovalRecord(
            decision="approved" if decision == "approved" else "rejected",
            by=signal.by,
            reason=signal.reason,
            at=workflow.now(),
            plan_hash=signal.plan_hash,
        )
        refusal = None
        if not self._awaiting_approval or self._approval is not None:
            refusal = "no approval is pending"
        elif signal.plan_hash != self._state.plan_hash:
            refusal = (
                f"plan_hash {signal.plan_hash!r} does not match the pending plan {self._state.plan_hash!r}"
            )
        if refusal is not None:
            record = record.model_copy(update={"decision": "refused", "note": f"{decision}: {refusal}"})
            self._state.approvals.append(record)
            self._decide("approval", signal.by, f"{decision} signal refused", [refusal])
            workflow.logger.warning("approval signal from %s refused: %s", signal.by, refusal)
            return
        self._approval = record
        self._state.approvals.append(record)
        self._decide("approval", signal.by, f"plan {decision}", [signal.reason] if signal.reason else [])

    # --- main ------------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: IncidentWorkflowInput) -> IncidentResult:
        state = self._state
        self._set_phase(Phase.SETTLING)
        if await self._wait(lambda: state.all_resolved, input.settle_seconds):
            return await self._close(Outcome.TRANSIENT, "every alert resolved within the settle window")

        self._set_phase(Phase.TRIAGE)
        triage = await workflow.execute_activity_method(
            TriageActivities.triage,
            TriageInput(incident_id=state.incident_id, alerts=state.firing or list(state.alerts.values())),
            start_to_close_timeout=TRIAGE_TIMEOUT,
            retry_policy=DECISION_RETRY,
        )
        state.triage = triage
        state.severity = triage.severity
        workflow.upsert_search_attributes(
            [
                SA_SEVERITY.value_set(triage.severity.value),
                SA_SERVICE.value_set(",".join(triage.services)[:256]),
            ]
        )
        self._decide(
            "triage",
            triage.reasoner,
            f"{triage.severity} {triage.category}: {triage.summary}",
            [f"confidence {triage.confidence:.2f}"]
            + ([f"rule {triage.rule}"] if triage.rule else [])
            + ([triage.escalate_reason] if triage.escalate_reason else []),
        )
        if triage.proposed is None:
            if triage.escalate_reason:
                return await self._close(Outcome.ESCALATED, triage.escalate_reason)
            return await self._close(Outcome.NO_ACTION, f"{triage.category}: nothing to remediate")

        plan = Plan(actions=[triage.proposed])
        state.plan = plan
        state.plan_hash = plan.digest()

        self._set_phase(Phase.POLICY)
        policy = await workflow.execute_activity_method(
            PolicyActivities.evaluate_policy,
            PolicyInput(
                incident_id=state.incident_id,
                severity=triage.severity,
                services=triage.services,
                action=triage.proposed,
                now=workflow.now(),
            ),
            start_to_close_timeout=POLICY_TIMEOUT,
            retry_policy=DECISION_RETRY,
        )
        state.policy = policy
        self._decide("policy", policy.policy, f"verdict: {policy.verdict}", policy.reasons)
        if policy.verdict == PolicyVerdict.DENY:
            return await self._close(Outcome.DENIED, "; ".join(policy.reasons))

        if policy.verdict == PolicyVerdict.NEEDS_APPROVAL:
            self._awaiting_approval = True
            self._set_phase(Phase.AWAITING_APPROVAL)
            await self._wait(
                lambda: self._approval is not None or state.all_resolved,
                input.approval_timeout_seconds,
            )
            self._awaiting_approval = False
            if self._approval is None:
                if state.all_resolved:
                    return await self._close(
                        Outcome.SELF_RESOLVED,
                        "every alert resolved while waiting for approval; request withdrawn",
                    )
                return await self._close(
                    Outcome.ESCALATED,
                    f"no approval within {input.approval_timeout_seconds:g}s; escalated to a human",
                )
            if self._approval.decision == "rejected":
                return await self._close(
                    Outcome.REJECTED, f"rejected by {self._approval.by}: {self._approval.reason}"
                )
        if state.all_resolved:
            return await self._close(Outcome.SELF_RESOLVED, "every alert resolved before any action ran")

        self._set_phase(Phase.REMEDIATING)
        for index, action in enumerate(plan.actions):
            result = await self._remediate(
                index,
                action_input=RemediationInput(
                    incident_id=state.incident_id,
                    action=action,
                    idempotency_key=self._idempotency_key(index),
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
                return await self._close(
                    Outcome.ESCALATED,
                    f"remediation {action.action} on {action.target}: {result.status}",
                )

        self._set_phase(Phase.VERIFYING)
        if await self._wait(lambda: state.all_resolved, input.verify_window_seconds):
            self._decide("verification", "firebreak", "every alert resolved after remediation")
            return await self._close(Outcome.REMEDIATED, "remediated and verified: alerts resolved")
        still = ", ".join(sorted(a.name for a in state.firing))
        self._decide("verification", "firebreak", "alerts still firing after remediation", [still])
        return await self._close(
            Outcome.ESCALATED,
            f"still firing {input.verify_window_seconds:g}s after remediation: {still}",
        )

    # --- steps -----------------------------------------------------------------------------

    async def _remediate(self, index: int, action_input: RemediationInput) -> RemediationResult:
        info = workflow.info()
        try:
            return await workflow.execute_child_workflow(
                RemediationWorkflow.run,
                action_input,
                id=f"{info.workflow_id}-action-{index}-{info.run_id[:8]}",
                task_queue=self._input.remediation_task_queue or info.task_queue,
            )
        except ChildWorkflowError as exc:
            cause = exc.cause
            message = cause.message if isinstance(cause, ApplicationError) else str(cause or exc)
            return RemediationResult(
                action=action_input.action.action,
                target=action_input.action.target,
                status="failed",
                changed=False,
                check_mode=action_input.check_mode,
                idempotency_key=action_input.idempotency_key,
                duration_seconds=0.0,
                summary=f"{action_input.action.action} could not run: {message}",
            )

    def _idempotency_key(self, index: int) -> str:
        """Stable across activity retries and worker restarts, unique per incident run."""
        info = workflow.info()
        raw = f"{info.workflow_id}/{info.run_id}/{index}"
        return hashlib.sha256(raw.encode()).hexdigest()[:32]

    async def _wait(self, condition: Callable[[], bool], seconds: float) -> bool:
        """wait_condition with a timeout; True if the condition held before it expired."""
        try:
            await workflow.wait_condition(condition, timeout=timedelta(seconds=seconds))
        except TimeoutError:
            return False
        return True

    async def _close(self, outcome: Outcome, reason: str) -> IncidentResult:
        state = self._state
        state.outcome = outcome
        state.closed_at = workflow.now()
        self._decide("close", "firebreak", f"closed: {outcome}", [reason])
        self._set_phase(Phase.CLOSED)
        workflow.upsert_search_attributes([SA_OUTCOME.value_set(outcome.value)])
        await workflow.wait_condition(workflow.all_handlers_finished)
        return IncidentResult(incident_id=state.incident_id, outcome=outcome, summary=reason)

    def _decide(self, kind: str, by: str, summary: str, reasons: list[str] | None = None) -> None:
        self._state.decisions.append(
            Decision(at=workflow.now(), kind=kind, by=by, summary=summary, reasons=reasons or [])
        )

    def _set_phase(self, phase: Phase) -> None:
        self._state.phase = phase
        workflow.upsert_search_attributes([SA_PHASE.value_set(phase.value)])
        self._refresh_details()

    def _refresh_details(self) -> None:
        workflow.set_current_details(render_details(self._state, self._awaiting_approval))


def render_details(state: IncidentState, awaiting_approval: bool) -> str:
    """Markdown for the Temporal UI's "Current Details": the incident at a glance."""
    firing = state.firing
    lines = [
        f"## Incident `{state.key}` — {state.phase.value}"
        + (f" ({state.outcome.value})" if state.outcome else ""),
        "",
        f"**Alerts:** {len(firing)} firing, {len(state.alerts) - len(firing)} resolved"
        f" ({state.duplicate_alerts} duplicates ignored)",
    ]
    for alert in sorted(firing, key=lambda a: (a.severity.rank, a.name))[:10]:
        lines.append(f"- `{alert.severity}` **{alert.name}** on `{alert.service}`: {alert.summary[:200]}")
    if state.triage:
        t = state.triage
        lines += [
            "",
            f"**Triage** ({t.reasoner}, confidence {t.confidence:.2f}): {t.summary[:300]}",
        ]
    if state.plan:
        lines += ["", f"**Plan** `{state.plan_hash}`:"]
        for action in state.plan.actions:
            params = json.dumps(action.params, sort_keys=True)
            lines.append(
                f"- `{action.action}` on `{action.target}` params `{params}`"
                f" (risk {action.risk}, timeout {action.timeout_seconds}s)"
            )
    if state.policy:
        lines += [
            "",
            f"**Policy:** {state.policy.verdict.value} — {'; '.join(state.policy.reasons)}",
        ]
    if awaiting_approval:
        payload = json.dumps({"by": "YOUR NAME", "reason": "WHY", "plan_hash": state.plan_hash})
        group = state.policy.approver_group if state.policy else None
        lines += [
            "",
            "### Pending: approval" + (f" (group `{group}`)" if group else ""),
            f"More Actions → Send a Signal → `{SIGNAL_APPROVE}` (or `{SIGNAL_REJECT}`) with data:",
            "",
            f"`{payload}`",
            "",
            f"CLI: `firebreak approve {state.key} --by NAME --reason TEXT` (add `--reject` to reject)",
        ]
    if state.remediations:
        lines += ["", "**Actions:**"] + [f"- {r.summary}" for r in state.remediations]
    if state.outcome and state.decisions:
        last = state.decisions[-1]
        lines += ["", f"**Outcome:** {last.reasons[0] if last.reasons else state.outcome.value}"]
    return "\n".join(lines)
