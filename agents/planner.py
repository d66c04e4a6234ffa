"""Planner agent: catalog actions with validated params, or an escalation with the reason.

Whatever reasoner plans, nothing leaves this agent that the catalog has not validated: an
unknown action, params outside the schema, or a target no alert or evidence names is an
error (for the LLM: one repair, then escalation), never an action.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agents import prompts
from agents.base import Agent, alert_view, implicated_services, triage_view
from agents.errors import AgentOutputInvalid
from agents.rules import RuleAction, fill_params
from models.agents import Grounding, Hypothesis, PlanInput, PlanResult, ProposedAction
from models.catalog import CatalogError

MAX_ACTIONS = 3
LEARNED = "memory.similar_incident"
LEARNED_CONFIDENCE = 0.7
LEARNED_MIN_SCORE = 0.3


def cite(grounding: Grounding, actions: list[str]) -> list[str]:
    """Grounding items that recommend (runbooks) or verifiably did (incidents) these actions."""
    wanted = set(actions)
    return [
        item.id
        for item in grounding.items
        if wanted & set(item.succeeded if item.kind == "incident" else item.actions)
    ]


class ActionDraft(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: str = Field(description="a catalog action name")
    params: dict[str, Any] = Field(description="params valid under the action's params_schema")
    target: str = Field(description="the service acted on; equals params.service")


class PlanDraft(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["act", "escalate"]
    actions: list[ActionDraft] = Field(default_factory=list, max_length=MAX_ACTIONS)
    rationale: str = Field(min_length=1, max_length=1500)
    expected_effect: str = Field(default="", max_length=500)
    verification: str = Field(default="", max_length=500)
    escalate_reason: str | None = Field(default=None, max_length=500)
    confidence: float = Field(ge=0.0, le=1.0)
    citations: list[str] = Field(
        default_factory=list, max_length=20, description="ids of the grounding items the plan rests on"
    )


class PlannerAgent(Agent[PlanInput, PlanDraft, PlanResult]):
    name = "planner"
    tool = "record_plan"
    tool_description = "Record the remediation plan (catalog actions) or the escalation."
    system_prompt = prompts.PLANNER
    draft = PlanDraft

    def decide_by_rules(self, input: PlanInput) -> PlanResult:
        hypotheses = input.diagnosis.hypotheses
        if not hypotheses:
            return self._escalation("no hypothesis to act on", 0.0)
        top = hypotheses[0]
        confidence = min(input.triage.confidence, top.confidence)
        found = self._rule_action(input, top) or self._learned_action(input, top)
        if found is None:
            return self._escalation(f"no catalog action is known for {top.kind} on {top.service}", confidence)
        rule_name, proposed = found
        if rule_name == LEARNED:
            # Memory, not a rule: act only as surely as the past incident was like this one.
            confidence = min(confidence, LEARNED_CONFIDENCE)
        if confidence < self.book.planner.min_confidence:
            return self._escalation(
                f"confidence {confidence:.2f} is below {self.book.planner.min_confidence:.2f}: {top.cause}",
                confidence,
            )
        try:
            proposed = self._validated(proposed)
        except AgentOutputInvalid as exc:
            return self._escalation(f"rule {rule_name}: {exc}", confidence)
        effect = self.book.planner.effects.get(proposed.action)
        citations = cite(input.grounding, [proposed.action])
        grounded = (
            f"; grounded in {', '.join(citations)}" if citations else "; no runbook or past incident cites it"
        )
        return PlanResult(
            reasoner="rules",
            confidence=confidence,
            rule=rule_name,
            actions=[proposed],
            citations=citations,
            rationale=f"{top.cause} (confidence {top.confidence:.2f}, {len(top.evidence)} evidence item(s))"
            + grounded,
            expected_effect=effect.expected if effect else "",
            verification=effect.verify if effect else "the incident's alerts resolve",
            runbook=input.triage.runbook,
        )

    def _rule_action(self, input: PlanInput, top: Hypothesis) -> tuple[str, ProposedAction] | None:
        """The first action the rules know for a hypothesis on the top hypothesis' service."""
        for hypothesis in input.diagnosis.hypotheses:
            if hypothesis.service != top.service:
                continue
            rule = next((r for r in self.book.triage.rules if r.name == hypothesis.rule), None)
            if rule is not None and rule.action is not None:
                alert = next((a for a in input.alerts if a.service == top.service and rule.matches(a)), None)
                if alert is not None:
                    params = fill_params(rule.action.params, alert)
                    return rule.name, ProposedAction(
                        action=rule.action.name, params=params, target=alert.service
                    )
            template: RuleAction | None = self.book.planner.actions_by_kind.get(hypothesis.kind)
            if template is not None:
                params = {
                    k: v.replace("{service}", hypothesis.service) if isinstance(v, str) else v
                    for k, v in template.params.items()
                }
                return f"planner.actions_by_kind.{hypothesis.kind}", ProposedAction(
                    action=template.name, params=params, target=hypothesis.service
                )
        return None

    def _learned_action(self, input: PlanInput, top: Hypothesis) -> tuple[str, ProposedAction] | None:
        """An action that verifiably fixed a similar past incident after a human chose it."""
        for item in input.grounding.items:
            if item.kind != "incident" or item.approved_by is None or item.score < LEARNED_MIN_SCORE:
                continue
            for action in item.succeeded:
                spec = self.catalog.actions.get(action)
                if spec is None:
                    continue
                params = {"service": top.service}
                try:
                    self.catalog.validate_params(action, params)
                except CatalogError:
                    continue  # needs params memory cannot supply (e.g. replicas): a human decides
                return LEARNED, ProposedAction(action=action, params=params, target=top.service)
        return None

    def _validated(self, proposed: ProposedAction) -> ProposedAction:
        """Catalog check, and the catalog's risk, autonomy and timeout copied onto the action."""
        try:
            spec = self.catalog.validate_params(proposed.action, proposed.params)
        except CatalogError as exc:
            raise AgentOutputInvalid(str(exc)) from None
        service = proposed.params.get("service")
        if service is not None and service != proposed.target:
            raise AgentOutputInvalid(
                f"action {proposed.action!r}: target {proposed.target!r} differs from "
                f"params.service {service!r}"
            )
        return proposed.model_copy(
            update={
                "risk": spec.risk.value,
                "autonomy": spec.autonomy.value,
                "timeout_seconds": spec.timeout_seconds,
            }
        )

    def _escalation(self, reason: str, confidence: float) -> PlanResult:
        return PlanResult(reasoner="rules", confidence=confidence, rationale=reason, escalate_reason=reason)

    def llm_wanted(self, input: PlanInput, ruled: PlanResult, threshold: float) -> str | None:
        if ruled.escalate_reason is not None:
            return f"rules cannot plan: {ruled.escalate_reason}"
        return super().llm_wanted(input, ruled, threshold)

    def task(self, input: PlanInput, ruled: PlanResult) -> tuple[str, dict[str, Any]]:
        return (
            "Plan the remediation of this incident from the diagnosis and evidence in the data below, "
            "using only catalog actions; or escalate.",
            {
                "alerts": [alert_view(a) for a in input.alerts],
                "triage": triage_view(input.triage),
                "hypotheses": [h.model_dump(mode="json") for h in input.diagnosis.hypotheses],
                "evidence": [e.model_dump(mode="json") for e in input.evidence],
                "runbook": input.triage.runbook,
                "grounding": [i.model_dump(mode="json") for i in input.grounding.items],
                "rules_opinion": ruled.escalate_reason or ruled.rationale,
            },
        )

    def accept(self, input: PlanInput, draft: PlanDraft, ruled: PlanResult) -> PlanResult:
        if draft.decision == "escalate":
            if not draft.escalate_reason:
                raise AgentOutputInvalid("decision is 'escalate' but escalate_reason is empty")
            return PlanResult(
                reasoner="claude",
                confidence=draft.confidence,
                rationale=draft.rationale,
                escalate_reason=draft.escalate_reason,
            )
        if not draft.actions:
            raise AgentOutputInvalid("decision is 'act' but actions is empty")
        known = implicated_services(input.alerts, input.evidence) | {
            h.service for h in input.diagnosis.hypotheses
        }
        actions = []
        for item in draft.actions:
            if item.target not in known:
                raise AgentOutputInvalid(
                    f"target {item.target!r} is not a service any alert label, hypothesis or evidence "
                    f"names; use one of {sorted(known)}"
                )
            actions.append(
                self._validated(ProposedAction(action=item.action, params=item.params, target=item.target))
            )
        minimum = self.book.planner.min_confidence
        if draft.confidence < minimum:
            # Valid, but not sure enough to act on: a human decides, with the model's reasoning.
            return PlanResult(
                reasoner="claude",
                confidence=draft.confidence,
                rationale=draft.rationale,
                escalate_reason=f"planner confidence {draft.confidence:.2f} is below {minimum:.2f}",
            )
        unknown = [c for c in draft.citations if c not in input.grounding.ids()]
        if unknown:
            raise AgentOutputInvalid(f"citations {unknown} are not ids of the grounding items")
        return PlanResult(
            reasoner="claude",
            confidence=draft.confidence,
            actions=actions,
            citations=draft.citations or cite(input.grounding, [a.action for a in actions]),
            rationale=draft.rationale,
            expected_effect=draft.expected_effect,
            verification=draft.verification,
            runbook=input.triage.runbook,
        )

    def escalate(self, input: PlanInput, ruled: PlanResult, reason: str) -> PlanResult:
        return PlanResult(
            reasoner="claude", confidence=0.0, rationale=ruled.rationale, escalate_reason=reason
        )
