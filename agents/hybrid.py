"""Hybrid routing: rules first, the LLM only where the rules are not enough.

For every agent decision: compute the rules' answer; if the agent says it is good enough
(a rule matched with confidence at or above the threshold, nothing ambiguous), that is the
decision. Otherwise ask Claude — unless no key is configured, the workflow has switched the
incident to rules (the LLM stayed unavailable), or a budget refuses — in which case the
rules' answer stands (for an unknown signature, that is an escalation). Every result says
which reasoner decided, why it was routed there, and its confidence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agents.base import Agent, In, Out
from agents.budget import GlobalBudget, IncidentCaps
from agents.redact import Redactor
from models.agents import LLMCall

if TYPE_CHECKING:  # the SDK stays out of modules that workflows import
    from agents.claude import ClaudeReasoner


class HybridReasoner:
    def __init__(
        self,
        llm: ClaudeReasoner | None,
        *,
        threshold: float,
        redactor: Redactor,
        incident_caps: IncidentCaps,
        budget: GlobalBudget,
        disabled_reason: str = "no LLM configured (FIREBREAK_ANTHROPIC_API_KEY unset)",
    ) -> None:
        self.llm = llm
        self.threshold = threshold
        self.redactor = redactor
        self.incident_caps = incident_caps
        self.budget = budget
        self.disabled_reason = disabled_reason

    async def decide(self, agent: Agent[In, Any, Out], input: In) -> Out:
        ruled = agent.decide_by_rules(input)
        wanted = agent.llm_wanted(input, ruled, self.threshold)
        if wanted is None:
            why = f"rule {ruled.rule}" if ruled.rule else "rules"
            return ruled.model_copy(
                update={
                    "routing": f"rules: {why} decided with confidence {ruled.confidence:.2f} "
                    f"(threshold {self.threshold:.2f})"
                }
            )
        if input.rules_only is not None:
            return self._on_rules(ruled, wanted, input.rules_only)
        if self.llm is None:
            return self._on_rules(ruled, wanted, self.disabled_reason)

        instruction, data = agent.task(input, ruled)
        redacted, counts = self.redactor.redact(data)
        user = self.llm.user_message(instruction, redacted)
        tokens, cost = self.llm.estimate(agent, user)
        refusal = self.incident_caps.refusal(input.llm_usage, tokens, cost) or self.budget.reserve(2, cost)
        if refusal is not None:
            return self._on_rules(ruled, wanted, refusal)

        def record(call: LLMCall) -> None:
            self.budget.record(call.cost_usd)

        try:
            result = await self.llm.decide(agent, input, ruled, user, record)
        finally:
            self.budget.release(2, cost)
        return result.model_copy(
            update={
                "llm_wanted": True,
                "routing": f"{wanted}: routed to {self.llm.name}",
                "redactions": counts,
            }
        )

    def _on_rules(self, ruled: Out, wanted: str, blocked: str) -> Out:
        return ruled.model_copy(
            update={"llm_wanted": True, "routing": f"{wanted}; {blocked}: decided by rules"}
        )
