"""Run the agent chain (triage -> diagnose -> plan -> review) in process, as the workflow does.

Shared by the evals and the benchmark. It calls the same agents and hybrid reasoner the
activities use, without Temporal, so it measures decisions, not orchestration.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field

from activities.agents import AgentActivities
from models.agents import (
    AgentResult,
    DiagnosisInput,
    DiagnosisResult,
    Evidence,
    LLMUsage,
    PlanInput,
    PlanResult,
    ReviewInput,
    ReviewResult,
    TriageInput,
    TriageResult,
)
from models.alert import Alert, AlertmanagerAlert

Outcome = Literal["act", "escalate", "no_action"]
CASES_FILE = Path(__file__).parent / "cases.yaml"
# Held out: labels from the Nezha dataset's ground truth and the runbooks (tools/nezha_heldout.py),
# never looked at while writing the rules.
HELDOUT_FILE = Path(__file__).parent / "heldout.yaml"
REPO = Path(__file__).resolve().parents[2]


class Expected(BaseModel):
    severity: str
    category: list[str]
    root_cause: str | None = None
    outcome: Outcome
    action: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    params_gt: dict[str, float] = Field(default_factory=dict)


class Case(BaseModel):
    id: str
    alerts: list[dict[str, Any]]
    evidence: list[Evidence] = Field(default_factory=list)
    # A recorded incident (a scenario directory, relative to the repo): its evidence is what the
    # root-cause ranker makes of its metrics, traces and logs, as the telemetry step would.
    scenario: str | None = None
    expect: Expected

    def all_evidence(self) -> list[Evidence]:
        if self.scenario is None:
            return list(self.evidence)
        from evals.rca.scenario import load_scenario
        from rca.ranking import rank_root_causes

        loaded = load_scenario(REPO / self.scenario)
        candidates = rank_root_causes(
            loaded.topology,
            loaded.metrics,
            loaded.symptom,
            loaded.normal,
            loaded.anomalous,
            limit=3,
            traces=loaded.traces,
            logs=loaded.logs,
            trace_normal=loaded.baseline("traces"),
            log_normal=loaded.baseline("logs"),
        )
        return [c.as_evidence() for c in candidates] + list(self.evidence)

    def to_alerts(self) -> list[Alert]:
        return [
            AlertmanagerAlert.model_validate(
                {
                    "status": "firing",
                    "labels": raw["labels"],
                    "annotations": raw.get("annotations", {}),
                    "startsAt": "2026-11-21T10:00:00Z",
                }
            ).to_alert()
            for raw in self.alerts
        ]


def load_cases(path: Path = CASES_FILE) -> list[Case]:
    raw = yaml.safe_load(path.read_text())
    return [Case.model_validate(case) for case in raw["cases"]]


@dataclass
class ChainRun:
    """What the chain decided for one incident, and what each step took."""

    outcome: Outcome
    triage: TriageResult
    diagnosis: DiagnosisResult | None = None
    plan: PlanResult | None = None
    review: ReviewResult | None = None
    reason: str = ""
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def results(self) -> list[AgentResult]:
        return [r for r in (self.triage, self.diagnosis, self.plan, self.review) if r is not None]

    @property
    def usage(self) -> LLMUsage:
        total = LLMUsage()
        for result in self.results:
            total = total.plus(result.usage)
        return total

    @property
    def llm_wanted(self) -> bool:
        return any(r.llm_wanted for r in self.results)


async def run_chain(
    agents: AgentActivities, incident_id: str, alerts: list[Alert], evidence: list[Evidence]
) -> ChainRun:
    """The workflow's agent steps, in order, with its stopping rules."""
    usage = LLMUsage()
    seconds: dict[str, float] = {}

    async def step(name: str, call: Any, input: Any) -> Any:
        nonlocal usage
        started = time.perf_counter()
        result = await call(input.model_copy(update={"llm_usage": usage}))
        seconds[name] = time.perf_counter() - started
        usage = usage.plus(result.usage)
        return result

    triage: TriageResult = await step(
        "triage", agents.triage, TriageInput(incident_id=incident_id, alerts=alerts)
    )
    run = ChainRun(outcome="escalate", triage=triage, seconds=seconds)
    if triage.escalate_reason:
        run.reason = triage.escalate_reason
        return run
    if not triage.actionable:
        run.outcome, run.reason = "no_action", f"{triage.category}: nothing to remediate"
        return run
    run.diagnosis = await step(
        "diagnose",
        agents.diagnose,
        DiagnosisInput(incident_id=incident_id, alerts=alerts, triage=triage, evidence=evidence),
    )
    if run.diagnosis.escalate_reason:
        run.reason = run.diagnosis.escalate_reason
        return run
    run.plan = await step(
        "plan",
        agents.plan_remediation,
        PlanInput(
            incident_id=incident_id, alerts=alerts, triage=triage, diagnosis=run.diagnosis, evidence=evidence
        ),
    )
    if run.plan.escalate_reason or not run.plan.actions:
        run.reason = run.plan.escalate_reason or "no action planned"
        return run
    run.review = await step(
        "review",
        agents.review_plan,
        ReviewInput(
            incident_id=incident_id,
            alerts=alerts,
            triage=triage,
            diagnosis=run.diagnosis,
            plan=run.plan,
            evidence=evidence,
        ),
    )
    if run.review.verdict == "veto":
        run.reason = "vetoed: " + "; ".join(run.review.reasons)
        return run
    run.outcome = "act"
    return run
