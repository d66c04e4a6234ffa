"""IncidentWorkflow: one incident from its first alert to its outcome.

settle -> triage -> diagnose -> plan -> review -> policy -> (approval) -> remediation (child
workflows) -> verify -> close.

Each agent step is its own activity on the hybrid reasoner (rules first, Claude where the
rules are not enough). When the LLM stays unavailable (retries exhausted, or a request it
rejects), the step runs again on rules and so does the rest of the incident, which records
why. Token usage, cost and redaction counts of every decision add up in the state.

The workflow's history is the audit log: every alert batch, decision, approval and action
result is an event in it. The state query and the Temporal UI's current details show the
incident as it is now, including exactly which signal answers a pending approval.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError
from temporalio.exceptions import TimeoutError as ActivityTimeout

with workflow.unsafe.imports_passed_through():
    from activities.agents import AgentActivities
    from activities.policy import PolicyActivities
    from models.agents import (
        AgentInput,
        AgentResult,
        DiagnosisInput,
        Evidence,
        Grounding,
        PlanInput,
        ReviewInput,
    )
    from models.alert import Alert, AlertBatch, AlertStatus
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
        PolicyDecision,
        PolicyInput,
        PolicyVerdict,
        RemediationInput,
        RemediationResult,
        TriageInput,
        TriageResult,
    )
    from models.memory import (
        IncidentRecord,
        RecordResult,
        RetrievedContext,
        RetrieveInput,
        grounding_from_context,
    )
    from rca.models import Symptom, TelemetryInput, TelemetryResult
    from workflows.remediation import RemediationWorkflow

POLICY_TIMEOUT = timedelta(seconds=15)
DECISION_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=20),
    maximum_attempts=5,
    non_retryable_error_types=["PolicyError", "CatalogError"],
)
# An agent activity may make an LLM call and its repair (each bounded by the client's own
# timeout, at most 35 s); a few attempts, then the incident continues on rules.
# Context (telemetry, memory) is worth waiting for briefly, never worth blocking on.
CONTEXT_TIMEOUT = timedelta(seconds=60)
CONTEXT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=5),
    maximum_attempts=3,
    non_retryable_error_types=["RecordNotFound", "TopologyError"],
)
MAX_EVIDENCE = 60
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

AgentInputT = TypeVar("AgentInputT", bound="AgentInput")
AgentResultT = TypeVar("AgentResultT", bound="AgentResult")


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
        decisions = []
        for action in plan.actions:
            decisions.append(
                await workflow.execute_activity_method(
                    PolicyActivities.evaluate_policy,
                    PolicyInput(
                        incident_id=state.incident_id,
                        severity=triage.severity,
                        services=triage.services,
                        action=action,
                        now=workflow.now(),
                    ),
                    start_to_close_timeout=POLICY_TIMEOUT,
                    retry_policy=DECISION_RETRY,
                )
            )
        policy = strictest(decisions)
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
                    severity_rank=state.severity.rank if state.severity else 3,
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
        if state.triage is not None:
            # Episodic memory: best effort, it never changes how the incident ended.
            top = state.diagnosis.hypotheses[0] if state.diagnosis and state.diagnosis.hypotheses else None
            record = IncidentRecord.from_state(
                state,
                run_id=workflow.info().run_id,
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
        self._refresh_details()

    def _refresh_details(self) -> None:
        workflow.set_current_details(render_details(self._state, self._awaiting_approval))


def _cause(exc: BaseException) -> str:
    cause = exc.cause if isinstance(exc, ActivityError) else exc
    return getattr(cause, "message", None) or str(cause) or type(cause).__name__


_VERDICT_ORDER = {PolicyVerdict.ALLOW: 0, PolicyVerdict.NEEDS_APPROVAL: 1, PolicyVerdict.DENY: 2}


def strictest(decisions: list[PolicyDecision]) -> PolicyDecision:
    """One decision for a plan of several actions: the strictest verdict, every reason."""
    worst = max(decisions, key=lambda d: _VERDICT_ORDER[d.verdict])
    reasons = list(dict.fromkeys(r for d in decisions for r in d.reasons))
    return worst.model_copy(update={"reasons": reasons})


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
    if state.diagnosis and state.diagnosis.hypotheses:
        d = state.diagnosis
        lines += ["", f"**Diagnosis** ({d.reasoner}, confidence {d.confidence:.2f}):"]
        lines += [f"- `{h.service}` {h.cause[:200]} ({h.confidence:.2f})" for h in d.hypotheses[:3]]
    if state.proposal and state.proposal.actions:
        p = state.proposal
        lines += ["", f"**Why** ({p.reasoner}, confidence {p.confidence:.2f}): {p.rationale[:300]}"]
        if p.verification:
            lines.append(f"**Verify:** {p.verification[:200]}")
    if state.review:
        r = state.review
        lines += ["", f"**Review** ({r.reasoner}): {r.verdict} — {'; '.join(r.reasons)[:300]}"]
    if state.llm_usage.calls or state.llm_unavailable:
        u = state.llm_usage
        lines += ["", f"**LLM:** {u.calls} call(s), {u.total_tokens} tokens, ${u.cost_usd:.4f}"]
        if state.llm_unavailable:
            lines.append(f"**LLM unavailable:** {state.llm_unavailable}")
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
