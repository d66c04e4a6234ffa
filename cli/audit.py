"""An incident's timeline, rebuilt from its workflow history alone.

The history is the audit log: this needs neither the worker nor a query, so it works on a
finished incident long after its worker is gone. Each signal carries the identity of the
client that sent it, which makes approvals attributable twice: the `by` the human typed and
the Temporal identity of the client (UI session, CLI) that delivered it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHistory
from temporalio.converter import DataConverter

from models.agents import AgentResult, DiagnosisResult, PlanResult, ReviewResult, TriageResult
from models.alert import AlertBatch
from models.constants import SIGNAL_ALERTS, SIGNAL_APPROVE, SIGNAL_REJECT
from models.incident import (
    ApprovalSignal,
    IncidentResult,
    IncidentWorkflowInput,
    PolicyDecision,
    RemediationResult,
)

ACTIVITY_RESULTS: dict[str, type[BaseModel]] = {
    "triage": TriageResult,
    "diagnose": DiagnosisResult,
    "plan_remediation": PlanResult,
    "review_plan": ReviewResult,
    "evaluate_policy": PolicyDecision,
    "run_playbook": RemediationResult,
}


class AuditEntry(BaseModel):
    at: datetime
    kind: str
    summary: str
    details: dict[str, Any] = {}


async def build_timeline(history: WorkflowHistory, converter: DataConverter) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    activity_types: dict[int, str] = {}

    async def decode(payloads: Any, kind: type[BaseModel]) -> Any:
        (value,) = await converter.decode(list(payloads.payloads), [kind])
        return value

    for event in history.events:
        at = event.event_time.ToDatetime().replace(tzinfo=None)
        entry = await _entry(event, at, activity_types, decode)
        if entry is not None:
            entries.append(entry)
    return entries


async def _entry(
    event: HistoryEvent, at: datetime, activity_types: dict[int, str], decode: Any
) -> AuditEntry | None:
    kind = event.event_type
    if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
        attrs = event.workflow_execution_started_event_attributes
        params: IncidentWorkflowInput = await decode(attrs.input, IncidentWorkflowInput)
        return AuditEntry(
            at=at,
            kind="opened",
            summary=f"incident {params.key} opened (settle {params.settle_seconds:g}s, "
            f"approval timeout {params.approval_timeout_seconds:g}s)",
            details={"identity": attrs.identity, "input": params.model_dump(mode="json")},
        )
    if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
        attrs_s = event.workflow_execution_signaled_event_attributes
        if attrs_s.signal_name == SIGNAL_ALERTS:
            batch: AlertBatch = await decode(attrs_s.input, AlertBatch)
            names = ", ".join(f"{a.name} {a.status} on {a.service} [{a.severity}]" for a in batch.alerts[:5])
            more = f" (+{len(batch.alerts) - 5} more)" if len(batch.alerts) > 5 else ""
            return AuditEntry(
                at=at,
                kind="alerts",
                summary=f"{len(batch.alerts)} alert(s) in: {names}{more}",
                details={
                    "identity": attrs_s.identity,
                    "alerts": [a.model_dump(mode="json") for a in batch.alerts],
                },
            )
        if attrs_s.signal_name in (SIGNAL_APPROVE, SIGNAL_REJECT):
            signal: ApprovalSignal = await decode(attrs_s.input, ApprovalSignal)
            return AuditEntry(
                at=at,
                kind=attrs_s.signal_name,
                summary=f"{attrs_s.signal_name} by {signal.by}: {signal.reason or '(no reason)'} "
                f"[plan {signal.plan_hash}] via {attrs_s.identity or 'unknown client'}",
                details={"identity": attrs_s.identity, **signal.model_dump(mode="json")},
            )
        return AuditEntry(
            at=at,
            kind="signal",
            summary=f"signal {attrs_s.signal_name}",
            details={"identity": attrs_s.identity},
        )
    if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
        activity_types[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
        return None
    if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
        attrs_a = event.activity_task_completed_event_attributes
        name = activity_types.get(attrs_a.scheduled_event_id, "?")
        model = ACTIVITY_RESULTS.get(name)
        if model is None:
            return AuditEntry(at=at, kind=name, summary=f"{name} completed")
        result = await decode(attrs_a.result, model)
        return AuditEntry(
            at=at,
            kind=name,
            summary=_activity_summary(result),
            details=result.model_dump(mode="json"),
        )
    if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED:
        attrs_f = event.activity_task_failed_event_attributes
        name = activity_types.get(attrs_f.scheduled_event_id, "?")
        return AuditEntry(at=at, kind="failure", summary=f"{name} failed: {attrs_f.failure.message}")
    if kind == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED:
        remediation: RemediationResult = await decode(
            event.child_workflow_execution_completed_event_attributes.result, RemediationResult
        )
        return AuditEntry(
            at=at,
            kind="remediation",
            summary=_activity_summary(remediation),
            details=remediation.model_dump(mode="json"),
        )
    if kind == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED:
        failure = event.child_workflow_execution_failed_event_attributes.failure
        return AuditEntry(at=at, kind="remediation", summary=f"remediation failed: {failure.message}")
    if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
        outcome: IncidentResult = await decode(
            event.workflow_execution_completed_event_attributes.result, IncidentResult
        )
        return AuditEntry(
            at=at,
            kind="closed",
            summary=f"{outcome.outcome}: {outcome.summary}",
            details=outcome.model_dump(mode="json"),
        )
    if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
        attrs_t = event.workflow_execution_terminated_event_attributes
        return AuditEntry(
            at=at, kind="terminated", summary=f"terminated by {attrs_t.identity}: {attrs_t.reason}"
        )
    if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
        return AuditEntry(
            at=at,
            kind="failed",
            summary=event.workflow_execution_failed_event_attributes.failure.message,
        )
    return None


def _activity_summary(result: BaseModel) -> str:
    if isinstance(result, AgentResult):
        return f"{_agent_summary(result)}\n{_how_decided(result)}"
    if isinstance(result, PolicyDecision):
        group = f", approver group {result.approver_group}" if result.approver_group else ""
        return f"policy {result.policy}: {result.verdict}{group} — {'; '.join(result.reasons)}"
    if isinstance(result, RemediationResult):
        lease = (
            f"; credential accessor {result.credential_accessor} "
            f"(ttl {result.credential_ttl_seconds}s, revoked: {result.credential_revoked})"
            if result.credential_accessor
            else ""
        )
        return f"{result.summary} in {result.duration_seconds:.1f}s{lease}"
    return type(result).__name__


def _agent_summary(result: AgentResult) -> str:
    """What the agent decided, with the reasoning and evidence it gave."""
    by = f"{result.reasoner}{f' (rule {result.rule})' if result.rule else ''}"
    escalate = f"; escalate: {result.escalate_reason}" if result.escalate_reason else ""
    if isinstance(result, TriageResult):
        what = "no action needed" if not result.actionable and not result.escalate_reason else ""
        return (
            f"triage by {by}: {result.severity} {result.category}, confidence {result.confidence:.2f}; "
            f"{', '.join(result.services)}: {result.summary}{escalate}{'; ' + what if what else ''}"
        )
    if isinstance(result, DiagnosisResult):
        lines = [f"diagnosis by {by}: {len(result.hypotheses)} hypothesis(es){escalate}"]
        for rank, h in enumerate(result.hypotheses, 1):
            lines.append(f"  {rank}. {h.service} [{h.kind}] {h.cause} (confidence {h.confidence:.2f})")
            lines += [f"     evidence: {e}" for e in h.evidence[:5]]
        return "\n".join(lines)
    if isinstance(result, PlanResult):
        actions = "; ".join(f"{a.action} on {a.target} {a.params}" for a in result.actions) or "no action"
        lines = [f"plan by {by}: {actions}, confidence {result.confidence:.2f}{escalate}"]
        lines.append(f"  why: {result.rationale}")
        if result.expected_effect:
            lines.append(f"  expected: {result.expected_effect}")
        if result.verification:
            lines.append(f"  verify: {result.verification}")
        return "\n".join(lines)
    if isinstance(result, ReviewResult):
        return "\n".join(
            [f"review by {by}: {result.verdict}, confidence {result.confidence:.2f}{escalate}"]
            + [f"  - {reason}" for reason in result.reasons]
        )
    return f"{type(result).__name__} by {by}"


def _how_decided(result: AgentResult) -> str:
    """Which reasoner, why it was routed there, and what the LLM cost."""
    parts = [f"  reasoner: {result.reasoner}; routing: {result.routing or '(not recorded)'}"]
    if result.usage.calls:
        u = result.usage
        parts.append(
            f"  LLM {result.model}: {u.calls} call(s), {u.input_tokens} in / {u.output_tokens} out / "
            f"{u.cache_read_input_tokens} cache read / {u.cache_creation_input_tokens} cache write tokens, "
            f"${u.cost_usd:.4f}"
        )
    if result.repair_error:
        parts.append(f"  repaired once after: {result.repair_error}")
    if result.redactions:
        parts.append(
            "  redacted before the LLM: " + ", ".join(f"{k} x{v}" for k, v in result.redactions.items())
        )
    return "\n".join(parts)


def render_text(incident_id: str, entries: list[AuditEntry]) -> str:
    lines = [f"Audit of {incident_id} ({len(entries)} entries, from workflow history)", ""]
    indent = " " * 38  # under the summary column
    for entry in entries:
        first, *rest = entry.summary.split("\n")
        lines.append(f"{entry.at:%Y-%m-%d %H:%M:%S}  {entry.kind:<16} {first}")
        lines += [indent + line for line in rest]
    return "\n".join(lines)
