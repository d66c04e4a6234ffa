"""What the incident knows besides its alerts, and what it carries into its next run.

`gather_context`: telemetry (with the root-cause ranking) and memory, side by side; either
may fail alone, which is recorded in `state.degraded`, and the incident goes on without it.

`carry_over` / `resumed_notifier`: when a run continues as new, the whole state, the wait
it was in and what its notifications told whom travel in `IncidentResume`.
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities import table
    from models.agents import Evidence, Grounding, TriageResult
    from models.alert import Alert
    from models.incident import IncidentResume, IncidentState, Stage
    from models.memory import RetrievedContext, RetrieveInput, grounding_from_context
    from models.notify import NotifyChannel
    from models.rca import Symptom, TelemetryInput, TelemetryResult
    from workflows.notifier import Notifier
    from workflows.wording import cause, decide

MAX_EVIDENCE = 60


async def gather_context(
    state: IncidentState, alerts: list[Alert], triage: TriageResult
) -> tuple[list[Evidence], Grounding]:
    """Telemetry + root-cause ranking and memory, in parallel; either may be missing."""
    # Both start now and run side by side; each is awaited on its own so one can fail alone.
    telemetry_call = table.start(
        table.GATHER_TELEMETRY,
        TelemetryInput(
            incident_id=state.incident_id,
            services=triage.services,
            symptom=Symptom(service=triage.services[0]) if triage.services else None,
            incident_start=min(a.starts_at for a in alerts),
            incident_end=workflow.now(),
            alerts=alerts[:50],
        ),
    )
    memory_call = table.start(
        table.RETRIEVE_CONTEXT,
        RetrieveInput.from_alerts(
            state.incident_id, alerts, summary=triage.summary, category=triage.category
        ),
    )
    evidence: list[Evidence] = []
    notes: list[str] = []
    try:
        telemetry: TelemetryResult = await telemetry_call
    except ActivityError as exc:
        state.degraded.append(f"telemetry unavailable: {cause(exc)}")
    else:
        # The ranker's top candidates as root_cause evidence, then what Prometheus showed.
        # Scaled by how much telemetry there was: a ranking from alerts alone is a weak hint.
        evidence = [
            e.model_copy(update={"score": round(e.score * telemetry.confidence, 4)})
            if e.score is not None
            else e
            for e in telemetry.diagnosis_evidence()[:MAX_EVIDENCE]
        ]
        state.root_cause_candidates = [f"{c.service} ({c.confidence:.2f})" for c in telemetry.candidates[:5]]
        if telemetry.status != "ok":
            state.degraded.extend(telemetry.reasons[:5])
        notes.append(f"telemetry {telemetry.status}: {len(evidence)} evidence item(s)")
        if state.root_cause_candidates:
            notes.append("root-cause ranking: " + ", ".join(state.root_cause_candidates))
    try:
        context: RetrievedContext = await memory_call
    except ActivityError as exc:
        reason = f"memory unavailable: {cause(exc)}"
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
    decide(state, "context", "firebreak", "context gathered", notes + state.degraded)
    return evidence, grounding


def carry_over(state: IncidentState, stage: Stage, deadline: datetime, notifier: Notifier) -> IncidentResume:
    """What the next run needs: the state, the wait and its deadline, the notifications' tickets."""
    return IncidentResume(
        state=state,
        stage=stage,
        deadline=deadline,
        notify_tickets={c.value: t for c, t in notifier.tickets.items()},
        notified=notifier.announced,
    )


def resumed_notifier(resume: IncidentResume | None) -> Notifier:
    """The notifier of a (continued) run: earlier runs' tickets get comments, not new tickets."""
    if resume is None:
        return Notifier()
    return Notifier(
        tickets={NotifyChannel(c): t for c, t in resume.notify_tickets.items()}, announced=resume.notified
    )
