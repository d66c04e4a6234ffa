"""Agent activities: triage, diagnose, plan, review — each its own activity.

Each runs its agent on the hybrid reasoner (rules first, Claude where the rules are not
enough). LLM faults become `ApplicationError`s whose type names them (activities/errors.py):
`LLMUnavailable` (retryable; the server's retry-after becomes `next_retry_delay`) and
`LLMRequestRejected` (non-retryable). When they persist, the workflow calls the same activity again with
`rules_only` set, and the incident continues on rules, saying so.

The global LLM budget (requests per minute, spend per window) is state of this class, so it
is per worker process: N workers allow N times the configured caps.
"""

from __future__ import annotations

from typing import Any

from temporalio import activity

from activities.errors import to_application_error
from agents.base import Agent, In, Out
from agents.diagnosis import DiagnosisAgent
from agents.errors import LLMError
from agents.hybrid import HybridReasoner
from agents.planner import PlannerAgent
from agents.reviewer import ReviewerAgent
from agents.rules import RuleBook
from agents.triage import TriageAgent
from models.agents import (
    DiagnosisInput,
    DiagnosisResult,
    PlanInput,
    PlanResult,
    ReviewInput,
    ReviewResult,
    TriageInput,
    TriageResult,
)
from models.catalog import Catalog


class AgentActivities:
    def __init__(self, book: RuleBook, catalog: Catalog, reasoner: HybridReasoner) -> None:
        self.reasoner = reasoner
        self._triage = TriageAgent(book, catalog)
        self._diagnosis = DiagnosisAgent(book, catalog)
        self._planner = PlannerAgent(book, catalog)
        self._reviewer = ReviewerAgent(book, catalog)

    async def aclose(self) -> None:
        if self.reasoner.llm is not None:
            await self.reasoner.llm.aclose()

    @activity.defn(name="triage")
    async def triage(self, input: TriageInput) -> TriageResult:
        """Severity, category, affected services, summary."""
        return await self._run(self._triage, input)

    @activity.defn(name="diagnose")
    async def diagnose(self, input: DiagnosisInput) -> DiagnosisResult:
        """Ranked root-cause hypotheses with their evidence."""
        return await self._run(self._diagnosis, input)

    @activity.defn(name="plan_remediation")
    async def plan_remediation(self, input: PlanInput) -> PlanResult:
        """Catalog actions with validated params, or an escalation."""
        return await self._run(self._planner, input)

    @activity.defn(name="review_plan")
    async def review_plan(self, input: ReviewInput) -> ReviewResult:
        """Approve the plan, or veto it with reasons."""
        return await self._run(self._reviewer, input)

    async def _run(self, agent: Agent[In, Any, Out], input: In) -> Out:
        try:
            result = await self.reasoner.decide(agent, input)
        except LLMError as exc:
            activity.logger.warning("%s: LLM fault: %s", agent.name, exc)
            raise to_application_error(exc) from None
        activity.logger.info(
            "%s decided by %s (confidence %.2f): %s",
            agent.name,
            result.reasoner,
            result.confidence,
            result.routing,
        )
        return result
