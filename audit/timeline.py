"""An incident's timeline, rebuilt from its workflow history alone.

The history is the audit log: this needs neither the worker nor a query, so it works on a
finished incident long after its worker is gone. Each signal carries the identity of the
client that sent it, which makes approvals attributable twice: the `by` the human typed and
the Temporal identity of the client (UI session, CLI) that delivered it.

`audit.chain` makes the timeline a tamper-evident export; `audit.render` shows it as text
or a self-contained HTML page.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHistory
from temporalio.converter import DataConverter, PayloadConverter

from activities import table
from models.agents import AgentResult, DiagnosisResult, PlanResult, ReviewResult, TriageResult
from models.alert import AlertBatch
from models.constants import (
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
    ApprovalSignal,
    IncidentResult,
    IncidentWorkflowInput,
    RemediationInput,
    RemediationResult,
)
from models.notify import ChannelsResult, NotifyResult
from models.policy import PolicyDecision

_SEARCH_ATTRIBUTE_NAMES = {
    SA_PHASE.name: "phase",
    SA_OUTCOME.name: "outcome",
    SA_SEVERITY.name: "severity",
    SA_SERVICE.name: "service",
}


_UPDATE_ANSWERS = {UPDATE_APPROVE: SIGNAL_APPROVE, UPDATE_REJECT: SIGNAL_REJECT}


def result_type_of(activity_name: str) -> type | None:
    """The activity's result type from the activity table; None for a name it does not list."""
    spec = table.BY_NAME.get(activity_name)
    return spec.result_type if spec is not None else None


class AuditEntry(BaseModel):
    at: datetime
    kind: str
    summary: str
    details: dict[str, Any] = Field(default_factory=dict)


async def build_timeline(history: WorkflowHistory, converter: DataConverter) -> list[AuditEntry]:
    """Every event that tells what happened, in order, then a closing cost summary."""
    entries: list[AuditEntry] = []
    activity_types: dict[int, str] = {}

    async def decode(payloads: Any, kind: type[BaseModel] | None) -> Any:
        # No type: plain JSON values (for activities this audit has no model for).
        (value,) = await converter.decode(list(payloads.payloads), [kind] if kind is not None else None)
        return value

    for event in history.events:
        at = event.event_time.ToDatetime().replace(tzinfo=UTC)
        entry = await _entry(event, at, activity_types, decode)
        if entry is not None:
            entries.append(entry)
    if entries:
        entries.append(_totals(entries))
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
            details={
                "identity": attrs.identity,
                "input": params.model_dump(mode="json"),
                **_search_attributes(attrs.search_attributes.indexed_fields),
            },
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
            return _answer_entry(at, attrs_s.signal_name, signal, attrs_s.identity)
        return AuditEntry(
            at=at,
            kind="signal",
            summary=f"signal {attrs_s.signal_name}",
            details={"identity": attrs_s.identity},
        )
    if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
        # An approve/reject update (the CLI): the same answer as the signal, shown the same way.
        request = event.workflow_execution_update_accepted_event_attributes.accepted_request
        answer = _UPDATE_ANSWERS.get(request.input.name)
        if answer is not None:
            sent: ApprovalSignal = await decode(request.input.args, ApprovalSignal)
            return _answer_entry(at, answer, sent, request.meta.identity)
        return AuditEntry(
            at=at,
            kind="update",
            summary=f"update {request.input.name}",
            details={"identity": request.meta.identity},
        )
    if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
        activity_types[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
        return None
    if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
        attrs_a = event.activity_task_completed_event_attributes
        name = activity_types.get(attrs_a.scheduled_event_id, "?")
        model = result_type_of(name)
        result: Any = None
        why_raw = f"{name} is not in the activity table"
        if model is not None:
            try:
                result = await decode(attrs_a.result, model)
            except Exception as exc:  # shown as recorded, and the timeline says why
                why_raw = f"does not decode as {model.__name__} ({type(exc).__name__})"
        if isinstance(result, ChannelsResult):
            return None  # which channels are configured: the notifications themselves follow
        summary = _activity_summary(result) if isinstance(result, BaseModel) else None
        if summary is not None:
            return AuditEntry(at=at, kind=name, summary=summary, details=result.model_dump(mode="json"))
        # No summary for this result (or no type): its facts as recorded, plain JSON.
        raw = await decode(attrs_a.result, None) if attrs_a.result.payloads else None
        facts = raw if isinstance(raw, dict) else {"result": raw}
        hints = [f"{k} {facts[k]}" for k in ("status", "mode", "id") if isinstance(facts.get(k), str | int)]
        note = "" if isinstance(result, BaseModel) else f" [{why_raw}; shown as recorded]"
        return AuditEntry(
            at=at,
            kind=name,
            summary=f"{name} completed" + (f": {', '.join(hints)}" if hints else "") + note,
            details=facts,
        )
    if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED:
        attrs_f = event.activity_task_failed_event_attributes
        name = activity_types.get(attrs_f.scheduled_event_id, "?")
        return AuditEntry(
            at=at,
            kind="failure",
            # Only the last attempt is in the history (retries before it are not).
            summary=f"{name} failed: {attrs_f.failure.message}",
            details={"activity": name, "error": attrs_f.failure.application_failure_info.type or None},
        )
    if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
        attrs_o = event.activity_task_timed_out_event_attributes
        name = activity_types.get(attrs_o.scheduled_event_id, "?")
        return AuditEntry(
            at=at,
            kind="failure",
            summary=f"{name} timed out: {attrs_o.failure.message}",
            details={"activity": name},
        )
    if kind == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
        attrs_c = event.start_child_workflow_execution_initiated_event_attributes
        if not attrs_c.input.payloads:
            return None
        try:
            action_input: RemediationInput = await decode(attrs_c.input, RemediationInput)
        except Exception:
            return None  # a child this audit does not know
        a = action_input.action
        return AuditEntry(
            at=at,
            kind="action",
            summary=f"remediation started: {a.action} on {a.target} {json.dumps(a.params, sort_keys=True)}"
            f"{' (check mode)' if action_input.check_mode else ''} as {attrs_c.workflow_id}",
            details={"workflow_id": attrs_c.workflow_id, **action_input.model_dump(mode="json")},
        )
    if kind == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
        fields = _search_attributes(
            event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
        )
        if not fields:
            return None
        return AuditEntry(
            at=at,
            kind="phase" if "phase" in fields else "attributes",
            summary=", ".join(f"{k}: {v}" for k, v in fields.items()),
            details=fields,
        )
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


def _answer_entry(at: datetime, kind: str, signal: ApprovalSignal, identity: str) -> AuditEntry:
    return AuditEntry(
        at=at,
        kind=kind,
        summary=f"{kind} by {signal.by}: {signal.reason or '(no reason)'} "
        f"[plan {signal.plan_hash}] via {identity or 'unknown client'}",
        details={"identity": identity, **signal.model_dump(mode="json")},
    )


def _activity_summary(result: BaseModel) -> str | None:
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
    if isinstance(result, NotifyResult):
        ticket = f" {result.number or result.ticket}" if (result.number or result.ticket) else ""
        return f"notify {result.channel.value} ({result.event.value}): {result.status}{ticket}"
    return None


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


def _search_attributes(fields: Mapping[str, Payload]) -> dict[str, Any]:
    """Firebreak's search attributes (phase, outcome, severity, service), decoded."""
    decoded: dict[str, Any] = {}
    for name, short in _SEARCH_ATTRIBUTE_NAMES.items():
        payload = fields.get(name)
        if payload is not None and payload.data:
            (value,) = PayloadConverter.default.from_payloads([payload])
            decoded[short] = value
    return decoded


def _totals(entries: list[AuditEntry]) -> AuditEntry:
    """The closing line: outcome, duration, LLM usage and cost, actions, approvals."""
    calls = tokens = 0
    cost = 0.0
    for entry in entries:
        usage = entry.details.get("usage") if entry.kind in table.BY_NAME else None
        if isinstance(usage, dict):
            calls += int(usage.get("calls", 0))
            tokens += sum(
                int(usage.get(k, 0))
                for k in (
                    "input_tokens",
                    "output_tokens",
                    "cache_read_input_tokens",
                    "cache_creation_input_tokens",
                )
            )
            cost += float(usage.get("cost_usd", 0.0))
    actions = [e.details for e in entries if e.kind == "remediation" and e.details]
    approvals = [e for e in entries if e.kind in (SIGNAL_APPROVE, SIGNAL_REJECT)]
    closed = next((e for e in reversed(entries) if e.kind in ("closed", "terminated", "failed")), None)
    outcome = str(closed.details.get("outcome", closed.kind)) if closed else "open"
    seconds = ((closed.at if closed else entries[-1].at) - entries[0].at).total_seconds()
    ok = sum(1 for a in actions if a.get("status") == "successful")
    return AuditEntry(
        at=entries[-1].at,
        kind="totals",
        summary=f"outcome: {outcome}; {seconds:.0f}s from first event to {'close' if closed else 'now'}; "
        f"LLM: {calls} call(s), {tokens} tokens, ${cost:.4f}; actions: {ok}/{len(actions)} successful; "
        f"approval signals: {len(approvals)}",
        details={
            "outcome": outcome,
            "duration_seconds": round(seconds, 3),
            "llm_calls": calls,
            "llm_tokens": tokens,
            "llm_cost_usd": round(cost, 6),
            "actions": len(actions),
            "actions_successful": ok,
            "approval_signals": len(approvals),
        },
    )


def run_id_of(history: WorkflowHistory) -> str | None:
    """The run the history belongs to (from its start event)."""
    for event in history.events[:1]:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            return event.workflow_execution_started_event_attributes.original_execution_run_id or None
    return None
