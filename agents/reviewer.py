"""Reviewer agent: checks the plan against the evidence and the catalog's risk notes.

The rule checks (`review.checks` in the rule book) always run first and a rule veto is
final: an LLM reviewer is only asked when the rules approve without enough confidence
(typically a plan an LLM made), and it can veto but never overturn a rule veto.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agents import prompts
from agents.base import Agent, alert_view, evidence_line, implicated_services, triage_view
from agents.rules import ReviewCheck
from models.agents import ProposedAction, ReviewInput, ReviewResult


class ReviewDraft(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdict: Literal["approve", "veto"]
    reasons: list[str] = Field(min_length=1, max_length=10)
    confidence: float = Field(ge=0.0, le=1.0)


class ReviewerAgent(Agent[ReviewInput, ReviewDraft, ReviewResult]):
    name = "reviewer"
    tool = "record_review"
    tool_description = "Record the review of the plan: approve, or veto with reasons."
    system_prompt = prompts.REVIEWER
    draft = ReviewDraft

    def decide_by_rules(self, input: ReviewInput) -> ReviewResult:
        vetoes: list[str] = []
        fired: list[str] = []
        for action in input.plan.actions:
            for check in self.book.review.checks:
                reason = self._veto(check, action, input)
                if reason is not None:
                    vetoes.append(reason)
                    fired.append(check.name)
        if not input.plan.actions:
            vetoes.append("the plan has no actions to review")
        if vetoes:
            return ReviewResult(
                reasoner="rules",
                confidence=1.0,
                rule=",".join(dict.fromkeys(fired)) or None,
                verdict="veto",
                reasons=vetoes,
            )
        names = ", ".join(c.name for c in self.book.review.checks)
        settings = self.book.review.confidence
        confidence = settings.rules_plan if input.plan.reasoner == "rules" else settings.llm_plan
        return ReviewResult(
            reasoner="rules",
            confidence=confidence,
            verdict="approve",
            reasons=[f"passed every rule check ({names})"],
        )

    def _veto(self, check: ReviewCheck, action: ProposedAction, input: ReviewInput) -> str | None:
        when = check.veto_if
        spec = self.catalog.actions.get(action.action)
        on_target = [e for e in input.evidence if e.service == action.target]
        values: dict[str, str] = {
            "action": action.action,
            "target": action.target,
            "risk_notes": spec.risk_notes if spec else "(not in the catalog)",
            "confidence": f"{input.plan.confidence:.2f}",
        }
        if when.action is not None and not re.fullmatch(when.action, action.action):
            return None
        if when.risk is not None and not re.fullmatch(when.risk, spec.risk.value if spec else ""):
            return None
        if when.evidence_kind is not None:
            matching = [e for e in on_target if re.fullmatch(when.evidence_kind, e.kind)]
            if not matching:
                return None
            values["evidence"] = "; ".join(evidence_line(e) for e in matching)
        if when.param_not_above_evidence is not None:
            param, kind = when.param_not_above_evidence["param"], when.param_not_above_evidence["kind"]
            wanted = action.params.get(param)
            current = [e.value for e in on_target if e.kind == kind and e.value is not None]
            if not isinstance(wanted, int | float) or not current or wanted > max(current):
                return None
            values["param"], values["value"] = f"{wanted:g}", f"{max(current):g}"
        if when.target_not_implicated:
            known = implicated_services(input.alerts, input.evidence) | {
                h.service for h in input.diagnosis.hypotheses
            }
            if action.target in known:
                return None
        if when.confidence_below is not None and input.plan.confidence >= when.confidence_below:
            return None
        reason = check.reason
        for key, value in values.items():
            reason = reason.replace("{" + key + "}", value)
        return f"{check.name}: {reason}"

    def llm_wanted(self, input: ReviewInput, ruled: ReviewResult, threshold: float) -> str | None:
        if ruled.verdict == "veto":
            return None  # a rule veto is final
        reason = super().llm_wanted(input, ruled, threshold)
        if reason is not None and input.plan.reasoner != "rules":
            return f"{reason}: the plan came from {input.plan.reasoner} and the rules only check hard limits"
        return reason

    def task(self, input: ReviewInput, ruled: ReviewResult) -> tuple[str, dict[str, Any]]:
        return (
            "Review the plan in the data below against the evidence, the hypotheses and the catalog's "
            "risk notes. rules_review is what the deterministic checks found.",
            {
                "alerts": [alert_view(a) for a in input.alerts],
                "triage": triage_view(input.triage),
                "hypotheses": [h.model_dump(mode="json") for h in input.diagnosis.hypotheses],
                "evidence": [e.model_dump(mode="json") for e in input.evidence],
                "plan": input.plan.model_dump(
                    mode="json",
                    include={"actions", "rationale", "expected_effect", "verification", "confidence"},
                ),
                "rules_review": ruled.reasons,
            },
        )

    def accept(self, input: ReviewInput, draft: ReviewDraft, ruled: ReviewResult) -> ReviewResult:
        verdict, reasons = draft.verdict, [*draft.reasons, *ruled.reasons]
        minimum = self.book.planner.min_confidence
        if verdict == "approve" and draft.confidence < minimum:
            # An unsure approval is not an approval: nothing runs on a reviewer's shrug.
            verdict = "veto"
            reasons.insert(0, f"reviewer approved with confidence {draft.confidence:.2f} < {minimum:.2f}")
        return ReviewResult(reasoner="claude", confidence=draft.confidence, verdict=verdict, reasons=reasons)

    def escalate(self, input: ReviewInput, ruled: ReviewResult, reason: str) -> ReviewResult:
        return ReviewResult(
            reasoner="claude", confidence=0.0, verdict="veto", reasons=[reason], escalate_reason=reason
        )
