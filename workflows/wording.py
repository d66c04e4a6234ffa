"""The incident's decision log: each step's decision, in words a human reads.

Deterministic workflow code (`workflow.now()` only). Every decision the incident makes is
appended to `IncidentState.decisions` here, which the state query, the Temporal UI's
current details and the audit show.
"""

from __future__ import annotations

import json

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from models.agents import AgentResult, DiagnosisResult, PlanResult
    from models.incident import Decision, IncidentState, RemediationResult
    from models.policy import PolicyDecision


def decide(state: IncidentState, kind: str, by: str, summary: str, reasons: list[str] | None = None) -> None:
    """Record one decision of the incident."""
    state.decisions.append(
        Decision(at=workflow.now(), kind=kind, by=by, summary=summary, reasons=reasons or [])
    )


def decide_agent(
    state: IncidentState, kind: str, result: AgentResult, summary: str, reasons: list[str] | None = None
) -> None:
    """Record an agent's decision with what it cost, whether it was repaired, and why it escalates."""
    usage = result.usage
    notes = list(reasons or [])
    if usage.calls:
        notes.append(f"LLM: {usage.calls} call(s), {usage.total_tokens} tokens, ${usage.cost_usd:.4f}")
    if result.repair_error:
        notes.append(f"repaired after: {result.repair_error}")
    if result.escalate_reason:
        notes.append(f"escalate: {result.escalate_reason}")
    state.decisions.append(
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


def diagnosis_summary(diagnosis: DiagnosisResult) -> str:
    top = diagnosis.hypotheses[0] if diagnosis.hypotheses else None
    return f"{len(diagnosis.hypotheses)} hypothesis(es)" + (
        f"; best: {top.cause} ({top.confidence:.2f})" if top else ""
    )


def diagnosis_reasons(diagnosis: DiagnosisResult) -> list[str]:
    return [
        f"{h.service}/{h.kind} {h.confidence:.2f}: {'; '.join(h.evidence[:3])}" for h in diagnosis.hypotheses
    ]


def plan_summary(proposal: PlanResult) -> str:
    if proposal.escalate_reason:
        return "escalate: " + proposal.escalate_reason
    return "; ".join(
        f"{a.action} on {a.target} {json.dumps(a.params, sort_keys=True)}" for a in proposal.actions
    )


def plan_reasons(proposal: PlanResult) -> list[str]:
    return (
        [proposal.rationale]
        + ([f"expected: {proposal.expected_effect}"] if proposal.expected_effect else [])
        + ([f"verify: {proposal.verification}"] if proposal.verification else [])
    )


def autonomy_changes(state: IncidentState, decisions: list[PolicyDecision]) -> None:
    """A change of an action class's autonomy level is a decision of its own (once per class)."""
    recorded: set[str] = set()
    for decision in decisions:
        autonomy = decision.autonomy
        if autonomy is None or autonomy.change is None or decision.action in recorded:
            continue
        recorded.add(str(decision.action))
        decide(
            state,
            "autonomy",
            decision.policy,
            f"{decision.action} {autonomy.change}: {autonomy.configured} -> {autonomy.effective}",
            [r for r in decision.reasons if f" {autonomy.change} " in r],
        )


def change_lines(result: RemediationResult) -> list[str]:
    """A run's changes as decision reasons: task, then the diff's first lines."""
    lines = []
    for change in result.changes:
        first = [line for line in change.diff.splitlines() if line.startswith(("+", "-", " ", "@"))][:6]
        lines.append(f"{change.task}: " + (" | ".join(first) if first else change.diff[:200]))
    return lines


def would_change(results: list[RemediationResult]) -> str:
    """What a shadow run would have changed, as the close reason says it."""
    would = [f"{c.task} ({r.action} on {r.target})" for r in results for c in r.changes]
    return "shadow mode, nothing applied; would change: " + ("; ".join(would) if would else "nothing")


def cause(exc: BaseException) -> str:
    """The message of what went wrong inside an activity (or any error)."""
    inner = exc.cause if isinstance(exc, ActivityError) else exc
    return getattr(inner, "message", None) or str(inner) or type(inner).__name__
