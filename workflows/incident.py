"""IncidentWorkflow: one incident from its first alert to its outcome.

settle -> (join a neighbour's open incident) -> triage -> gather context -> diagnose -> plan
-> review -> policy -> gate -> remediation (child workflows) -> verify (-> rollback) -> close.

This module is the orchestration, read top to bottom; the steps live beside it:
agent steps and the fall-back to rules in `workflows.reasoning`, context gathering and
continue-as-new carry-over in `workflows.context`, answers to an approval request in
`workflows.approvals`, preview / shadow / apply / rollback runs in
`workflows.remediation_runs`, decision wording in `workflows.wording`, notifications and
workflow metrics in `workflows.notifier`. Every activity is called through the activity
table (`activities.table`).

Governance. The policy (Rego) decides per action: deny, allow, or needs approval from a
group whose members it names; the action class's autonomy level is the catalog's, moved by
its track record from memory. The gate (`policies.gate`) is the only place that turns
decisions and answers into "run": shadow mode (autonomy `recommend`) runs the plan in
check mode and closes as `recommended`; needing approval, the plan also runs in check
mode so the request shows exactly what would change (the request goes out at the verdict,
the preview follows into its details, and nothing runs before the preview has), and an
answer must name the plan's hash and come from the approver group; after the action the
alerts must resolve within the verify window, or applied actions with a rollback playbook
are rolled back and the incident escalates.

Bounded history: at each wait (settle, approval, verify), after `max_signals_per_run`
alert signals in one run or when Temporal suggests it, the run continues as new carrying
the whole state and the wait's deadline (IncidentResume).

The workflow's history is the audit log; the state query and the Temporal UI's current
details show the incident as it is now, including how to answer a pending approval.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities import table
    from models.agents import (
        DiagnosisInput,
        PlanInput,
        ReviewInput,
        TriageInput,
        TriageResult,
    )
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
        UPDATE_APPROVE,
        UPDATE_REJECT,
    )
    from models.incident import (
        MAX_JOINED_ALERTS,
        ApprovalRecord,
        ApprovalSignal,
        IncidentResult,
        IncidentState,
        IncidentWorkflowInput,
        JoinInput,
        Outcome,
        Phase,
        Plan,
        Stage,
    )
    from models.memory import TrackRecordInput
    from models.notify import NotifyEvent
    from models.policy import PolicyInput
    from policies.gate import Gate, answer, gate, strictest
    from workflows import notifier
    from workflows.approvals import Approvals, admitted_or_raise, gate_decisions
    from workflows.context import carry_over, gather_context, resumed_notifier
    from workflows.details import render_details
    from workflows.reasoning import run_agent
    from workflows.records import incident_record
    from workflows.remediation_runs import RemediationRuns, plan_of
    from workflows.wording import (
        autonomy_changes,
        cause,
        decide,
        decide_agent,
        diagnosis_reasons,
        diagnosis_summary,
        plan_reasons,
        plan_summary,
    )


# workflow.patched ids: histories recorded before a change replay on its old branch.
PATCH_GATE_OPENS_BEFORE_PREVIEW = "gate-opens-before-preview"
PATCH_JOIN_AT_SETTLE = "join-related-at-settle"
MAX_HANDOVERS = 3  # alerts still arriving after this many hand-overs stay in the closed run


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
        self._approvals = Approvals(
            self._state,
            awaiting=resume is not None and resume.stage == Stage.APPROVAL,
            changed=self._refresh_details,
        )
        self._signals_this_run = 0
        self._notifier = resumed_notifier(resume)
        self._runs = RemediationRuns(self._state, input.remediation_task_queue)
        self._preview: asyncio.Task[None] | None = None  # the approval request's check-mode run
        self._joined: str | None = None  # the incident this one's alerts were handed to

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

    # Approvals arrive as signals (the Temporal UI sends those) or as updates (the CLI), which
    # refuse at once what the gate would refuse and answer with the attested record.

    @workflow.signal(name=SIGNAL_APPROVE)
    async def on_approve(self, signal: ApprovalSignal) -> None:
        await self._approvals.answer("approved", signal)

    @workflow.signal(name=SIGNAL_REJECT)
    async def on_reject(self, signal: ApprovalSignal) -> None:
        await self._approvals.answer("rejected", signal)

    @workflow.update(name=UPDATE_APPROVE)
    async def approve(self, signal: ApprovalSignal) -> ApprovalRecord:
        return admitted_or_raise(await self._approvals.answer("approved", signal))

    @approve.validator
    def validate_approve(self, signal: ApprovalSignal) -> None:
        self._approvals.validate(signal)

    @workflow.update(name=UPDATE_REJECT)
    async def reject(self, signal: ApprovalSignal) -> ApprovalRecord:
        return admitted_or_raise(await self._approvals.answer("rejected", signal))

    @reject.validator
    def validate_reject(self, signal: ApprovalSignal) -> None:
        self._approvals.validate(signal)

    @workflow.query(name=QUERY_STATE)
    def state(self) -> IncidentState:
        return self._state

    # --- main ------------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: IncidentWorkflowInput) -> IncidentResult:
        resume = input.resume
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
        quiet = await self._wait_until(lambda: state.all_resolved, deadline, Stage.SETTLE)
        if workflow.patched(PATCH_JOIN_AT_SETTLE):
            joined = await self._join_related()
            if joined is not None:
                return await self._close(Outcome.CORRELATED, joined)
        if quiet:
            return await self._close(Outcome.TRANSIENT, "every alert resolved within the settle window")

        self._set_phase(Phase.TRIAGE)
        alerts = state.firing or list(state.alerts.values())
        triage = await run_agent(
            state, table.TRIAGE, TriageInput(incident_id=state.incident_id, alerts=alerts)
        )
        state.triage = triage
        state.severity = triage.severity
        workflow.upsert_search_attributes(
            [
                SA_SEVERITY.value_set(triage.severity.value),
                SA_SERVICE.value_set(",".join(triage.services)[:256]),
            ]
        )
        decide_agent(state, "triage", triage, f"{triage.severity} {triage.category}: {triage.summary}")
        self._notifier.send(NotifyEvent.OPENED, state)
        if triage.escalate_reason:
            return await self._close(Outcome.ESCALATED, triage.escalate_reason)
        if not triage.actionable:
            return await self._close(Outcome.NO_ACTION, f"{triage.category}: nothing to remediate")

        self._set_phase(Phase.GATHERING)
        evidence, grounding = await gather_context(state, alerts, triage)
        self._set_phase(Phase.DIAGNOSING)
        diagnosis = await run_agent(
            state,
            table.DIAGNOSE,
            DiagnosisInput(incident_id=state.incident_id, alerts=alerts, triage=triage, evidence=evidence),
        )
        state.diagnosis = diagnosis
        decide_agent(
            state, "diagnosis", diagnosis, diagnosis_summary(diagnosis), diagnosis_reasons(diagnosis)
        )
        if diagnosis.escalate_reason:
            return await self._close(Outcome.ESCALATED, diagnosis.escalate_reason)

        self._set_phase(Phase.PLANNING)
        proposal = await run_agent(
            state,
            table.PLAN_REMEDIATION,
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
        decide_agent(state, "plan", proposal, plan_summary(proposal), plan_reasons(proposal))
        if proposal.escalate_reason or not proposal.actions:
            return await self._close(
                Outcome.ESCALATED, proposal.escalate_reason or "the planner proposed no action"
            )

        self._set_phase(Phase.REVIEWING)
        review = await run_agent(
            state,
            table.REVIEW_PLAN,
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
        decide_agent(state, "review", review, f"plan {review.verdict}", review.reasons)
        if review.verdict == "veto":
            return await self._close(Outcome.VETOED, "reviewer vetoed the plan: " + "; ".join(review.reasons))

        plan = Plan(actions=proposal.actions)
        state.plan = plan
        state.plan_hash = plan.digest()
        self._set_phase(Phase.POLICY)
        await self._evaluate_policy(plan, triage)
        return None

    async def _join_related(self) -> str | None:
        """Hand the alerts to an open incident of a neighbouring service (the topology's); the
        close reason if they went, None to handle this incident on its own. Alerts that arrive
        while the hand-over is in flight go after it, until none is new."""
        state = self._state
        reason = None
        for _ in range(MAX_HANDOVERS):
            alerts = list(state.alerts.values())
            if not alerts or len(alerts) > MAX_JOINED_ALERTS:
                return reason
            signals = state.alert_signals
            try:
                result = await table.execute(
                    table.JOIN_RELATED, JoinInput(incident_id=state.incident_id, alerts=alerts)
                )
            except ActivityError as exc:
                state.degraded.append(f"correlation unavailable ({cause(exc)}): handled on its own")
                return reason
            if result.joined is None:
                return reason
            if reason is None:
                decide(
                    state, "correlation", "firebreak", f"alerts handed to {result.joined}", [result.reason]
                )
                reason = f"correlated with {result.joined}: {result.reason}"
                self._joined = result.joined
            if state.alert_signals == signals:
                return reason
        return reason

    async def _evaluate_policy(self, plan: Plan, triage: TriageResult) -> None:
        """One decision per action (with its class's track record), and the plan's strictest."""
        state = self._state
        try:
            track = await table.execute(
                table.ACTION_TRACK_RECORD, TrackRecordInput(actions=sorted({a.action for a in plan.actions}))
            )
            records = track.records
        except ActivityError as exc:
            state.degraded.append(
                f"track record unavailable ({cause(exc)}): the catalog's autonomy levels apply"
            )
            records = {}
        decisions = []
        for action in plan.actions:
            record = records.get(action.action)
            decisions.append(
                await table.execute(
                    table.EVALUATE_POLICY,
                    PolicyInput(
                        incident_id=state.incident_id,
                        severity=triage.severity,
                        services=triage.services,
                        action=action,
                        now=workflow.now(),
                        track_record=record,
                    ),
                )
            )
        state.policy_decisions = decisions
        state.policy = strictest(decisions)
        decide(state, "policy", state.policy.policy, f"verdict: {state.policy.verdict}", state.policy.reasons)
        autonomy_changes(state, decisions)

    async def _gate_and_remediate(self, deadline: datetime | None) -> IncidentResult | None:
        """Apply the gate: deny, shadow, wait for an admitted answer, or run; None: verify."""
        state, input = self._state, self._input
        plan_of(state)  # the gate is only ever reached with a plan
        verdict = gate(gate_decisions(state), state.plan_hash, state.approvals)
        if verdict == Gate.DENY:
            return await self._close(Outcome.DENIED, "; ".join(state.policy.reasons if state.policy else []))
        if verdict == Gate.SHADOW:
            self._set_phase(Phase.REMEDIATING)
            return await self._close(*await self._runs.shadow())
        if verdict == Gate.WAIT:
            asking = deadline is None  # False: a continued run, whose request is already out
            if deadline is None:  # ask now; the check-mode preview of what would change follows
                if workflow.patched(PATCH_GATE_OPENS_BEFORE_PREVIEW):
                    # The approver is asked at the verdict, not after a storm's queue of previews;
                    # the preview lands in the request's details while they read it.
                    self._preview = asyncio.create_task(self._preview_into_request())
                else:
                    await self._runs.preview()
                deadline = workflow.now() + timedelta(seconds=input.approval_timeout_seconds)
            self._approvals.awaiting = True
            self._set_phase(Phase.AWAITING_APPROVAL)
            if asking:
                self._notifier.send(NotifyEvent.APPROVAL_NEEDED, state)
            await self._wait_until(
                lambda: self._approvals.answered or state.all_resolved, deadline, Stage.APPROVAL
            )
            self._approvals.awaiting = False
            await self._preview_done()  # nothing runs, and nothing closes, before its preview
            verdict = gate(gate_decisions(state), state.plan_hash, state.approvals)
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
                record = answer(gate_decisions(state), state.plan_hash, state.approvals)
                by, why = (record.by, record.reason) if record else ("?", "")
                return await self._close(Outcome.REJECTED, f"rejected by {by}: {why}")
        if verdict != Gate.RUN:  # the gate has no other way to let a plan through
            raise ApplicationError(
                f"gate said {verdict} after approval", type="GateError", non_retryable=True
            )
        if state.all_resolved:
            return await self._close(Outcome.SELF_RESOLVED, "every alert resolved before any action ran")

        self._set_phase(Phase.REMEDIATING)
        failed = await self._runs.apply()
        if failed is not None:
            return await self._close(Outcome.ESCALATED, failed)
        return None

    async def _verify(self, deadline: datetime | None) -> IncidentResult:
        """The alerts must resolve within the verify window; if not, roll back and escalate."""
        state, input = self._state, self._input
        if deadline is None:
            self._set_phase(Phase.VERIFYING)
            deadline = workflow.now() + timedelta(seconds=input.verify_window_seconds)
        if await self._wait_until(lambda: state.all_resolved, deadline, Stage.VERIFY):
            decide(state, "verification", "firebreak", "every alert resolved after remediation")
            return await self._close(Outcome.REMEDIATED, "remediated and verified: alerts resolved")
        still = ", ".join(sorted(a.name for a in state.firing))
        decide(state, "verification", "firebreak", "alerts still firing after remediation", [still])
        reason = f"still firing {input.verify_window_seconds:g}s after remediation: {still}"
        return await self._close(Outcome.ESCALATED, reason + await self._runs.roll_back(reason))

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

    async def _preview_into_request(self) -> None:
        await self._runs.preview()
        self._refresh_details()

    async def _preview_done(self) -> None:
        if self._preview is not None:
            await self._preview
            self._preview = None

    def _history_full(self) -> bool:
        return (
            self._signals_this_run >= self._input.max_signals_per_run
            or workflow.info().is_continue_as_new_suggested()
        )

    async def _continue_as_new(self, stage: Stage, deadline: datetime) -> None:
        state = self._state
        decide(
            state,
            "continue_as_new",
            "firebreak",
            f"history bounded: run {state.runs} continues as new while waiting ({stage.value})",
            [f"{self._signals_this_run} alert signal(s) in this run, {state.alert_signals} in all"],
        )
        # Notifications and a preview in flight would be abandoned with this run: let them land.
        await self._preview_done()
        await self._notifier.flush()
        await workflow.wait_condition(workflow.all_handlers_finished)
        state.runs += 1
        resume = carry_over(state, stage, deadline, self._notifier)
        workflow.continue_as_new(self._input.model_copy(update={"resume": resume}))

    # --- closing ---------------------------------------------------------------------------

    async def _close(self, outcome: Outcome, reason: str) -> IncidentResult:
        state = self._state
        state.outcome = outcome
        state.closed_at = workflow.now()
        decide(state, "close", "firebreak", f"closed: {outcome}", [reason])
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
                await table.execute(table.RECORD_INCIDENT, record)
                state.memory_record = record.id
            except ActivityError as exc:
                state.degraded.append(f"episodic memory not written: {cause(exc)}")
        await workflow.wait_condition(workflow.all_handlers_finished)
        return IncidentResult(
            incident_id=state.incident_id, outcome=outcome, summary=reason, joined=self._joined
        )

    def _set_phase(self, phase: Phase) -> None:
        self._state.phase = phase
        workflow.upsert_search_attributes([SA_PHASE.value_set(phase.value)])
        notifier.phase_entered(phase.value)
        self._refresh_details()

    def _refresh_details(self) -> None:
        workflow.set_current_details(render_details(self._state, self._approvals.awaiting))
