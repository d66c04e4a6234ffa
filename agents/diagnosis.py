"""Diagnosis agent: ranked root-cause hypotheses, each with its evidence and confidence.

The rules build hypotheses from the alerts their signatures know and from evidence items
(`DiagnosisInput.evidence`: today whatever the caller passes; the topology/Prometheus
root-cause ranker in `rca/` fills it). Strong evidence on another service — an upstream
dependency — can outrank the alerting service itself.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agents import prompts
from agents.base import Agent, alert_line, alert_view, evidence_line, implicated_services, triage_view
from agents.errors import AgentOutputInvalid
from models.agents import DiagnosisInput, DiagnosisResult, Evidence, Hypothesis


class HypothesisDraft(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: str = Field(description="the service whose fault explains the symptoms")
    kind: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,39}$")
    cause: str = Field(min_length=1, max_length=500)
    evidence: list[str] = Field(min_length=1, max_length=10, description="the alerts/evidence it rests on")
    confidence: float = Field(ge=0.0, le=1.0)


class DiagnosisDraft(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hypotheses: list[HypothesisDraft] = Field(min_length=1, max_length=5, description="best first")


def _first_ranked(input: DiagnosisInput) -> Evidence | None:
    """The root-cause ranking's first candidate (the ranker lists its candidates best first)."""
    return next((e for e in input.evidence if e.source == "rca" and e.kind == "root_cause"), None)


class DiagnosisAgent(Agent[DiagnosisInput, DiagnosisDraft, DiagnosisResult]):
    name = "diagnosis"
    tool = "record_diagnosis"
    tool_description = "Record the ranked root-cause hypotheses for this incident."
    system_prompt = prompts.DIAGNOSIS
    draft = DiagnosisDraft

    def decide_by_rules(self, input: DiagnosisInput) -> DiagnosisResult:
        rules = self.book.diagnosis
        found: dict[tuple[str, str], Hypothesis] = {}
        severity_rank: dict[str, int] = {}

        def add(service: str, kind: str, cause: str, line: str, confidence: float, rule: str | None) -> None:
            key = (service, kind)
            known = found.get(key)
            if known is None:
                found[key] = Hypothesis(
                    service=service, kind=kind, cause=cause, evidence=[line], confidence=confidence, rule=rule
                )
            else:
                known.evidence.append(line)
                known.confidence = max(known.confidence, confidence)

        for alert in input.alerts:
            rule = self.book.triage.first_match(alert)
            if rule is None or (rule.action is None and rule.escalate is None):
                continue  # unknown (the LLM's job) or known noise
            severity_rank[alert.service] = min(severity_rank.get(alert.service, 9), alert.severity.rank)
            add(
                alert.service,
                rule.category,
                rules.cause(rule.category, alert.service, alert.summary),
                alert_line(alert),
                rule.confidence,
                rule.name,
            )
        weak = []
        for item in input.evidence:
            if item.score is not None and item.score >= rules.min_evidence_score:
                cause = rules.cause(item.kind, item.service, item.summary)
                add(item.service, item.kind, cause, evidence_line(item), item.score, None)
            else:
                weak.append(item)
        for item in weak:  # context for hypotheses on the same service, never a hypothesis alone
            for hypothesis in found.values():
                if hypothesis.service == item.service:
                    hypothesis.evidence.append(evidence_line(item))
        ranked = sorted(
            found.values(), key=lambda h: (-h.confidence, severity_rank.get(h.service, 9), h.service, h.kind)
        )
        # Two services explain the incident about equally well: picking one is a guess.
        escalate_reason = self._ambiguity(ranked) or self._disagreement(ranked, input)
        first_rca = _first_ranked(input)
        if first_rca is not None and escalate_reason and ranked and ranked[0].service != first_rca.service:
            # The alert rule knows where the symptom is; the ranking weighed that service against
            # every other with all the signals, so its first candidate is the best estimate of where
            # the fault started, and leads, at its own (often low) confidence. A human still decides.
            lead = [h for h in ranked if h.service == first_rca.service] or [
                Hypothesis(
                    service=first_rca.service,
                    kind=first_rca.kind,
                    cause=rules.cause(first_rca.kind, first_rca.service, first_rca.summary),
                    evidence=[evidence_line(first_rca)],
                    confidence=first_rca.score or 0.0,
                    rule=None,
                )
            ]
            ranked = lead + [h for h in ranked if h.service != first_rca.service]
        return DiagnosisResult(
            reasoner="rules",
            confidence=ranked[0].confidence if ranked else 0.0,
            rule=ranked[0].rule if ranked else None,
            hypotheses=ranked,
            escalate_reason=escalate_reason,
        )

    @staticmethod
    def _disagreement(ranked: list[Hypothesis], input: DiagnosisInput) -> str | None:
        """The alert's signature blames the alerting service, the root-cause ranking another one.

        The alert says where the symptom is; the ranking (metrics, traces and logs over the call
        graph) says where it started. Acting on the symptom's service then treats a victim, so a
        human decides (on Nezha's real incidents the rules otherwise scaled the entry service
        for network delays and code faults elsewhere).
        """
        first_rca = _first_ranked(input)
        if not ranked or first_rca is None or ranked[0].rule is None:
            return None
        if first_rca.service == ranked[0].service:
            return None
        return (
            f"the alert rule blames {ranked[0].service}, the root-cause ranking puts {first_rca.service} "
            f"first ({first_rca.summary[:200]})"
        )

    def _ambiguity(self, ranked: list[Hypothesis]) -> str | None:
        if not ranked:
            return None
        margin = self.book.diagnosis.ambiguity_margin
        first, *rest = ranked
        rival = next((h for h in rest if h.service != first.service), None)
        if rival is not None and first.confidence - rival.confidence < margin:
            return (
                f"ambiguous root cause: {first.service} ({first.confidence:.2f}) and {rival.service} "
                f"({rival.confidence:.2f}) are within {margin:.2f}"
            )
        return None

    def llm_wanted(self, input: DiagnosisInput, ruled: DiagnosisResult, threshold: float) -> str | None:
        if not ruled.hypotheses:
            return "no rule or evidence explains the alerts"
        if ruled.escalate_reason:
            return ruled.escalate_reason
        return super().llm_wanted(input, ruled, threshold)

    def task(self, input: DiagnosisInput, ruled: DiagnosisResult) -> tuple[str, dict[str, Any]]:
        return (
            "Diagnose this incident: rank root-cause hypotheses from the alerts, the triage and the "
            "evidence in the data below. rules_hypotheses is what the deterministic rules found.",
            {
                "alerts": [alert_view(a) for a in input.alerts],
                "triage": triage_view(input.triage),
                "evidence": [e.model_dump(mode="json") for e in input.evidence],
                "rules_hypotheses": [h.model_dump(mode="json") for h in ruled.hypotheses],
            },
        )

    def accept(self, input: DiagnosisInput, draft: DiagnosisDraft, ruled: DiagnosisResult) -> DiagnosisResult:
        known = implicated_services(input.alerts, input.evidence)
        strangers = sorted({h.service for h in draft.hypotheses} - known)
        if strangers:
            raise AgentOutputInvalid(
                f"hypotheses name services {strangers} that no alert label or evidence names; "
                f"use only {sorted(known)}"
            )
        ranked = sorted((Hypothesis(**h.model_dump()) for h in draft.hypotheses), key=lambda h: -h.confidence)
        return DiagnosisResult(reasoner="claude", confidence=ranked[0].confidence, hypotheses=ranked)
