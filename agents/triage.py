"""Triage agent: severity, category, affected services, summary, confidence."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agents import prompts
from agents.base import Agent, alert_view, implicated_services
from agents.errors import AgentOutputInvalid
from models.agents import TriageInput, TriageResult
from models.alert import Severity


class TriageDraft(BaseModel):
    """The triage tool's input: what the LLM decides."""

    model_config = ConfigDict(extra="forbid")

    severity: Severity = Field(description="P1 (outage) .. P4 (informational)")
    category: str = Field(pattern=r"^[a-z][a-z0-9-]{0,39}$", description="short lowercase category")
    services: list[str] = Field(min_length=1, max_length=10, description="affected services, as labelled")
    summary: str = Field(min_length=1, max_length=1500, description="one paragraph for the on-call engineer")
    needs_action: bool = Field(description="false only for heartbeat/informational alerts")
    escalate_reason: str | None = Field(
        default=None, max_length=500, description="set when a human must act: no catalog action helps"
    )
    confidence: float = Field(ge=0.0, le=1.0)


class TriageAgent(Agent[TriageInput, TriageDraft, TriageResult]):
    name = "triage"
    tool = "record_triage"
    tool_description = "Record the triage of this incident."
    system_prompt = prompts.TRIAGE
    draft = TriageDraft

    def decide_by_rules(self, input: TriageInput) -> TriageResult:
        result = self.book.triage.triage(input.alerts)
        # The planner decides actions; triage only says whether one is wanted.
        return result.model_copy(update={"proposed": None})

    def llm_wanted(self, input: TriageInput, ruled: TriageResult, threshold: float) -> str | None:
        if ruled.rule is None:
            unknown = sorted({a.name for a in input.alerts if self.book.triage.first_match(a) is None})
            return f"no rule covers {', '.join(unknown)}"
        return super().llm_wanted(input, ruled, threshold)

    def task(self, input: TriageInput, ruled: TriageResult) -> tuple[str, dict[str, Any]]:
        return (
            "Triage this incident. Its alerts are in the data below.",
            {"incident_id": input.incident_id, "alerts": [alert_view(a) for a in input.alerts]},
        )

    def accept(self, input: TriageInput, draft: TriageDraft, ruled: TriageResult) -> TriageResult:
        known = implicated_services(input.alerts, [])
        strangers = [s for s in draft.services if s not in known]
        if strangers:
            raise AgentOutputInvalid(
                f"services {strangers} are not named by any alert label; use only {sorted(known)}"
            )
        # The LLM may raise urgency but never lower it below what the alerts' own labels say:
        # a severity label is a fact from the monitoring system, the model's view is a reading.
        labelled = min((a.severity for a in input.alerts), key=lambda s: s.rank)
        severity = min(draft.severity, labelled, key=lambda s: s.rank)
        return TriageResult(
            reasoner="claude",
            confidence=draft.confidence,
            severity=severity,
            category=draft.category,
            services=sorted(set(draft.services)),
            summary=draft.summary,
            actionable=draft.needs_action and draft.escalate_reason is None,
            escalate_reason=draft.escalate_reason,
        )

    def escalate(self, input: TriageInput, ruled: TriageResult, reason: str) -> TriageResult:
        return ruled.model_copy(update={"escalate_reason": reason, "actionable": False})
