"""The episodic memory record an incident leaves at close, built from its state.

Deterministic and pure, so the workflow builds it and hands it to the `record_incident`
activity.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from models.incident import IncidentState, Outcome
from models.memory import ActionOutcome, ActionStatus, ApprovalNote, IncidentRecord

# Outcomes after which the incident's alerts were gone: time to resolve is meaningful.
RESOLVED_OUTCOMES = frozenset({Outcome.REMEDIATED, Outcome.SELF_RESOLVED, Outcome.TRANSIENT})


def incident_record(
    state: IncidentState,
    *,
    run_id: str,
    root_cause: str | None = None,
    cited: Iterable[str] = (),
    outcome_reason: str = "",
) -> IncidentRecord:
    """Build the record from a closed incident's state; deterministic, safe in a workflow."""
    if state.outcome is None or state.closed_at is None:
        raise ValueError(f"{state.incident_id} is not closed")
    alerts = sorted(state.alerts.values(), key=lambda a: (a.severity.rank, a.name, a.fingerprint))
    triage = state.triage
    plan_actions = [a.action for a in state.plan.actions] if state.plan else []
    # A decision about an earlier plan (another hash) is kept, but not charged to these actions.
    approvals = [
        ApprovalNote(
            decision="approved" if a.decision == "approved" else "rejected",
            by=a.by,
            reason=a.reason,
            at=a.at,
            actions=plan_actions if a.plan_hash in (None, state.plan_hash) else [],
        )
        for a in state.approvals
        if a.decision in ("approved", "rejected")
    ]
    approver = next((a.by for a in reversed(approvals) if a.decision == "approved"), None)
    rejected = any(a.decision == "rejected" for a in approvals)
    verified = state.outcome == Outcome.REMEDIATED
    actions: list[ActionOutcome] = [
        ActionOutcome(
            action=r.action,
            target=r.target,
            params=_params_of(state, r.action, r.target),
            status=r.status,
            check_mode=r.check_mode,
            verified=(verified if r.status == "successful" and not r.check_mode else None),
            approved_by=approver,
            summary=r.summary,
        )
        for r in state.remediations
    ]
    if state.plan and not state.remediations:
        status: ActionStatus = "rejected" if rejected else "not_run"
        actions = [
            ActionOutcome(action=a.action, target=a.target, params=a.params, status=status)
            for a in state.plan.actions
        ]
    duration = (state.closed_at - state.opened_at).total_seconds()
    return IncidentRecord(
        incident_id=state.incident_id,
        run_id=run_id,
        key=state.key,
        opened_at=state.opened_at,
        closed_at=state.closed_at,
        severity=state.severity.value if state.severity else None,
        category=triage.category if triage else None,
        services=sorted(triage.services) if triage else sorted({a.service for a in alerts}),
        alert_names=sorted({a.name for a in alerts}),
        symptoms=list(dict.fromkeys(f"{a.name} on {a.service}: {a.summary}" for a in alerts))[:50],
        summary=triage.summary if triage else "",
        root_cause=root_cause,
        actions=actions,
        approvals=approvals,
        outcome=state.outcome.value,
        outcome_reason=outcome_reason,
        time_to_resolve_seconds=duration if state.outcome in RESOLVED_OUTCOMES else None,
        cited=list(dict.fromkeys(cited)),
    )


def _params_of(state: IncidentState, action: str, target: str) -> dict[str, Any]:
    for proposed in state.plan.actions if state.plan else []:
        if proposed.action == action and proposed.target == target:
            return dict(proposed.params)
    return {}
