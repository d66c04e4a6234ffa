"""The rule reasoner: deterministic decisions from data a user can read and extend.

Rules are data (`agents/rules.yaml`):

- `rules`: known alert signatures, read top to bottom, first match wins. Whatever no rule
  covers is escalated with the reason (or, when an LLM is configured, routed to it), never
  guessed at.
- `diagnosis`: what a hypothesis says per kind, and how much evidence must score to count.
- `planner`: catalog actions per hypothesis kind, expected effects and how to verify them.
- `review`: vetoes, each a small condition over the plan and the evidence.

`RuleBook.load` reads all four and names the file, section and rule of anything wrong.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from models.agents import ProposedAction, TriageResult
from models.alert import Alert
from runtime.bounded import load_yaml_file

REASONER = "rules"
_PLACEHOLDER = re.compile(r"\{(service|label:[A-Za-z0-9_]+)\}")


class RuleAction(BaseModel):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class Rule(BaseModel):
    name: str
    match: dict[str, str] = Field(min_length=1)
    category: str
    confidence: float = Field(ge=0.0, le=1.0)
    summary: str | None = None
    runbook: str | None = None
    action: RuleAction | None = None
    # Known, and a human must act (no catalog action fits): the reason the escalation gives.
    escalate: str | None = None

    @model_validator(mode="after")
    def _action_or_escalate(self) -> Rule:
        if self.action is not None and self.escalate is not None:
            raise ValueError("a rule either proposes an action or escalates, not both")
        return self

    @field_validator("match")
    @classmethod
    def _compile(cls, match: dict[str, str]) -> dict[str, str]:
        for label, pattern in match.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"match.{label}: bad regular expression: {exc}") from None
        return match

    def matches(self, alert: Alert) -> bool:
        labels = {**alert.labels, "alertname": alert.name}
        return all(
            re.fullmatch(pattern, labels.get(label, "")) is not None for label, pattern in self.match.items()
        )


class RuleFileError(ValueError):
    """The rules file does not load; the message names the file and the rule."""


class RuleReasoner:
    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules

    @classmethod
    def load(cls, path: Path) -> RuleReasoner:
        return cls.from_raw(_read(path), path)

    @classmethod
    def from_raw(cls, raw: Any, path: Path) -> RuleReasoner:
        if not isinstance(raw, dict) or not isinstance(raw.get("rules"), list):
            raise RuleFileError(f"{path}: expected a mapping with a 'rules' list")
        rules = []
        for index, body in enumerate(raw["rules"]):
            try:
                rules.append(Rule.model_validate(body))
            except ValidationError as exc:
                name = body.get("name", f"#{index}") if isinstance(body, dict) else f"#{index}"
                raise RuleFileError(f"{path}: rule {name}: {exc}") from exc
        return cls(rules)

    def first_match(self, alert: Alert) -> Rule | None:
        return next((rule for rule in self.rules if rule.matches(alert)), None)

    def triage(self, alerts: list[Alert]) -> TriageResult:
        if not alerts:
            raise ValueError("triage needs at least one alert")
        severity = min((a.severity for a in alerts), key=lambda s: s.rank)
        services = sorted({a.service for a in alerts})
        # Worst alert first, so the action addresses what hurts most.
        ordered = sorted(alerts, key=lambda a: (a.severity.rank, a.name, a.fingerprint))
        matched = [(alert, self.first_match(alert)) for alert in ordered]
        actionable = [(a, r) for a, r in matched if r is not None and r.action is not None]
        if actionable:
            alert, rule = actionable[0]
            assert rule.action is not None
            return TriageResult(
                severity=severity,
                category=rule.category,
                services=services,
                summary=_summary(alert, rule, len(alerts)),
                confidence=rule.confidence,
                reasoner=REASONER,
                rule=rule.name,
                runbook=rule.runbook,
                proposed=ProposedAction(
                    action=rule.action.name,
                    params=fill_params(rule.action.params, alert),
                    target=alert.service,
                ),
            )
        known = [(a, r) for a, r in matched if r is not None]
        if known and len(known) == len(matched):
            alert, rule = known[0]
            return TriageResult(
                severity=severity,
                category=rule.category,
                services=services,
                summary=_summary(alert, rule, len(alerts)),
                confidence=rule.confidence,
                reasoner=REASONER,
                rule=rule.name,
                runbook=rule.runbook,
                actionable=False,
                escalate_reason=next((r.escalate for _, r in known if r.escalate), None),
            )
        unknown = sorted({a.name for a, r in matched if r is None})
        return TriageResult(
            severity=severity,
            category="unknown",
            services=services,
            summary=f"{len(alerts)} alert(s) on {', '.join(services)}: {ordered[0].summary}",
            confidence=0.2,
            reasoner=REASONER,
            escalate_reason=f"no rule covers {', '.join(unknown)}; a human must decide",
        )


def _read(path: Path) -> Any:
    try:
        return load_yaml_file(path)  # bounded: aliases, depth, sizes (runtime/bounded.py)
    except (OSError, yaml.YAMLError) as exc:
        raise RuleFileError(f"{path}: {exc}") from exc


def _summary(alert: Alert, rule: Rule, count: int) -> str:
    text = rule.summary or alert.summary
    others = f" (+{count - 1} related alert(s))" if count > 1 else ""
    return f"{alert.name} on {alert.service} [{alert.severity}]: {text}{others}"


def fill_params(params: dict[str, Any], alert: Alert) -> dict[str, Any]:
    """Fill `{service}` and `{label:x}` placeholders from the alert."""

    def substitute(match: re.Match[str]) -> str:
        placeholder = match.group(1)
        if placeholder == "service":
            return alert.service
        return alert.labels.get(placeholder.split(":", 1)[1], "")

    return {
        key: _PLACEHOLDER.sub(substitute, value) if isinstance(value, str) else value
        for key, value in params.items()
    }


# --- Diagnosis, planner and review rules -----------------------------------------------------


class DiagnosisRules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Evidence scoring below this is context, not a hypothesis of its own.
    min_evidence_score: float = Field(default=0.5, ge=0.0, le=1.0)
    # Two hypotheses on different services closer than this are a judgment call.
    ambiguity_margin: float = Field(default=0.05, ge=0.0, le=1.0)
    # What a hypothesis says, by kind (a triage category or an evidence kind).
    causes: dict[str, str] = Field(default_factory=dict)
    default_cause: str = "{service}: {summary}"

    def cause(self, kind: str, service: str, summary: str) -> str:
        template = self.causes.get(kind, self.default_cause)
        return template.replace("{service}", service).replace("{summary}", summary)


class Effect(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expected: str
    verify: str


class PlannerRules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Below this (the weaker of triage and diagnosis confidence) the planner escalates.
    min_confidence: float = Field(default=0.5, ge=0.0, le=1.0)
    # Actions for hypotheses that no alert rule covers (evidence kinds); `{service}` is
    # the hypothesis' service.
    actions_by_kind: dict[str, RuleAction] = Field(default_factory=dict)
    effects: dict[str, Effect] = Field(default_factory=dict)


class VetoCondition(BaseModel):
    """All the given conditions must hold for the veto to apply."""

    model_config = ConfigDict(extra="forbid")

    action: str | None = None  # regex on the action name
    risk: str | None = None  # regex on the action's catalog risk
    evidence_kind: str | None = None  # regex: evidence of this kind on the target exists
    param_not_above_evidence: dict[str, str] | None = None  # {param: p, kind: k}: params[p] <= value
    target_not_implicated: bool | None = None  # no alert, hypothesis or evidence names the target
    confidence_below: float | None = Field(default=None, ge=0.0, le=1.0)

    @field_validator("action", "risk", "evidence_kind")
    @classmethod
    def _regex(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"bad regular expression: {exc}") from None
        return pattern

    @field_validator("param_not_above_evidence")
    @classmethod
    def _pair(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None and set(value) != {"param", "kind"}:
            raise ValueError("needs exactly the keys 'param' and 'kind'")
        return value


class ReviewCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    veto_if: VetoCondition
    # Placeholders: {action} {target} {risk_notes} {evidence} {param} {value} {confidence}
    reason: str


class ReviewConfidence(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # How sure the rule review is when nothing vetoes: of a plan the rules made (every
    # check understood it) and of a plan an LLM made (the rules can only check hard limits).
    rules_plan: float = Field(default=0.9, ge=0.0, le=1.0)
    llm_plan: float = Field(default=0.5, ge=0.0, le=1.0)


class ReviewRules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    confidence: ReviewConfidence = Field(default_factory=ReviewConfidence)
    checks: list[ReviewCheck] = Field(default_factory=list)


class RuleBook:
    """Everything the rule reasoner knows, loaded from one file."""

    def __init__(
        self,
        triage: RuleReasoner,
        diagnosis: DiagnosisRules,
        planner: PlannerRules,
        review: ReviewRules,
    ) -> None:
        self.triage = triage
        self.diagnosis = diagnosis
        self.planner = planner
        self.review = review

    @classmethod
    def load(cls, path: Path) -> RuleBook:
        raw = _read(path)
        triage = RuleReasoner.from_raw(raw, path)
        sections: dict[str, Any] = {}
        for section, model in (
            ("diagnosis", DiagnosisRules),
            ("planner", PlannerRules),
            ("review", ReviewRules),
        ):
            try:
                sections[section] = model.model_validate(raw.get(section) or {})
            except ValidationError as exc:
                raise RuleFileError(f"{path}: section {section}: {exc}") from exc
        names = [check.name for check in sections["review"].checks]
        if len(names) != len(set(names)):
            raise RuleFileError(f"{path}: section review: check names must be unique: {names}")
        return cls(triage, sections["diagnosis"], sections["planner"], sections["review"])
