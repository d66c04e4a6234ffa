"""Running an agent step: on the hybrid reasoner while the LLM answers, on rules after.

When an agent's LLM stays unavailable (retries exhausted, a timeout, or a request it
rejects), the step runs again on rules and so does the rest of the incident, which records
why. Token usage, cost and redaction counts of every decision add up in the state.
"""

from __future__ import annotations

from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as ActivityTimeout

with workflow.unsafe.imports_passed_through():
    from activities import table
    from models.agents import AgentInput, AgentResult
    from models.incident import IncidentState
    from workflows.wording import decide

AgentInputT = TypeVar("AgentInputT", bound="AgentInput")
AgentResultT = TypeVar("AgentResultT", bound="AgentResult")


async def run_agent(
    state: IncidentState, spec: table.ActivitySpec[AgentInputT, AgentResultT], input: AgentInputT
) -> AgentResultT:
    """Run one agent; when its LLM stays unavailable, run it (and the rest) on rules."""
    if state.llm_unavailable is None:
        try:
            result = await table.execute(spec, input.model_copy(update={"llm_usage": state.llm_usage}))
            return _account(state, result)
        except ActivityError as exc:
            inner = exc.cause
            if isinstance(inner, ApplicationError) and inner.type in table.LLM_FAULTS:
                why = f"{inner.type}: {inner.message}"
            elif isinstance(inner, ActivityTimeout):
                why = f"timed out: {inner.message}"
            else:
                raise
            state.llm_unavailable = f"LLM unavailable ({why}); the incident continues on rules"
            decide(state, "llm", "firebreak", state.llm_unavailable)
    result = await table.execute(
        spec,
        input.model_copy(update={"llm_usage": state.llm_usage, "rules_only": state.llm_unavailable}),
        config=table.AGENT_ON_RULES,
    )
    return _account(state, result)


def _account(state: IncidentState, result: AgentResultT) -> AgentResultT:
    state.llm_usage = state.llm_usage.plus(result.usage)
    for kind, count in result.redactions.items():
        state.redactions[kind] = state.redactions.get(kind, 0) + count
    return result
