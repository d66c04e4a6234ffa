"""Policy activity: ask the Rego policies whether a proposed action may run."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from models.incident import PolicyDecision, PolicyInput, PolicyVerdict
from policies.engine import DECISION_QUERY, PolicyEngine, PolicyEvaluationError


class PolicyActivities:
    def __init__(self, engine: PolicyEngine) -> None:
        self._engine = engine

    @activity.defn
    async def evaluate_policy(self, input: PolicyInput) -> PolicyDecision:
        try:
            raw = self._engine.decide(input.model_dump(mode="json"))
        except PolicyEvaluationError as exc:
            # Never a silent allow: a policy that cannot decide fails the step loudly.
            raise ApplicationError(str(exc), type="PolicyError", non_retryable=True) from None
        return PolicyDecision(
            verdict=PolicyVerdict(raw["verdict"]),
            reasons=[str(r) for r in raw.get("reasons", [])],
            approver_group=raw.get("approver_group"),
            policy=DECISION_QUERY.removeprefix("data.").removesuffix(".decision"),
        )
