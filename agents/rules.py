"""The rule reasoner: deterministic triage from known alert signatures.

Rules are data (`agents/rules.yaml`), read top to bottom, first match wins. Whatever no
rule covers is escalated with the reason, never guessed at.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator

from models.alert import Alert
from models.incident import ProposedAction, TriageResult

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
        try:
            raw = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise RuleFileError(f"{path}: {exc}") from exc
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
                    params=_fill(rule.action.params, alert),
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


def _summary(alert: Alert, rule: Rule, count: int) -> str:
    text = rule.summary or alert.summary
    others = f" (+{count - 1} related alert(s))" if count > 1 else ""
    return f"{alert.name} on {alert.service} [{alert.severity}]: {text}{others}"


def _fill(params: dict[str, Any], alert: Alert) -> dict[str, Any]:
    def substitute(match: re.Match[str]) -> str:
        placeholder = match.group(1)
        if placeholder == "service":
            return alert.service
        return alert.labels.get(placeholder.split(":", 1)[1], "")

    return {
        key: _PLACEHOLDER.sub(substitute, value) if isinstance(value, str) else value
        for key, value in params.items()
    }
