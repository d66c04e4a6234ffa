"""What every agent provides to the reasoners that run it.

An agent is the same decision whichever reasoner makes it:

- `decide_by_rules`: the deterministic answer from the rule book (always computed first);
- `llm_wanted`: why the rules' answer is not good enough on its own, or None;
- `task`: what to ask an LLM — a trusted instruction, and the untrusted data it is about
  (redacted and delimited by the reasoner, never mixed into the instruction);
- `draft`: the pydantic model the LLM fills through a tool call (its JSON schema is the
  tool's input schema);
- `accept`: turn a draft into a validated result, or raise `AgentOutputInvalid` with a
  message precise enough for one repair attempt;
- `escalate`: what to return when the LLM's answer cannot be repaired.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from agents.errors import AgentOutputInvalid
from agents.rules import RuleBook
from models.agents import AgentInput, AgentResult, Evidence, TriageResult
from models.alert import OBSERVERS, SERVICE_LABELS, Alert, service_of
from models.catalog import Catalog

In = TypeVar("In", bound=AgentInput)
Draft = TypeVar("Draft", bound=BaseModel)
Out = TypeVar("Out", bound=AgentResult)


class Agent(ABC, Generic[In, Draft, Out]):
    name: ClassVar[str]  # "triage", "diagnosis", "planner", "reviewer"
    tool: ClassVar[str]  # the tool the LLM must call
    tool_description: ClassVar[str]
    system_prompt: ClassVar[str]
    draft: type[Draft]

    def __init__(self, book: RuleBook, catalog: Catalog) -> None:
        self.book = book
        self.catalog = catalog

    @abstractmethod
    def decide_by_rules(self, input: In) -> Out: ...

    def llm_wanted(self, input: In, ruled: Out, threshold: float) -> str | None:
        if ruled.confidence < threshold:
            return f"rules confidence {ruled.confidence:.2f} < threshold {threshold:.2f}"
        return None

    @abstractmethod
    def task(self, input: In, ruled: Out) -> tuple[str, dict[str, Any]]: ...

    @abstractmethod
    def accept(self, input: In, draft: Draft, ruled: Out) -> Out: ...

    def escalate(self, input: In, ruled: Out, reason: str) -> Out:
        return ruled.model_copy(update={"escalate_reason": reason})

    def parse(self, raw: object) -> Draft:
        try:
            return self.draft.model_validate(raw)
        except ValidationError as exc:
            raise AgentOutputInvalid(
                f"{self.tool} input does not match its schema: {describe(exc)}"
            ) from None


def describe(exc: ValidationError) -> str:
    """A validation error in one line, without echoing the (possibly long) input."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}" for err in exc.errors()[:8]
    )


def implicated_services(alerts: list[Alert], evidence: list[Evidence]) -> set[str]:
    """Every service an alert label or an evidence item names: the only possible targets.

    Free text (annotations, summaries) never adds a service, so text in an alert cannot
    point an action at something the labels do not name.
    """
    names: set[str] = set()
    for alert in alerts:
        names.add(alert.service)
        for key in SERVICE_LABELS:
            value = service_of({key: alert.labels[key]}) if key in alert.labels else None
            if value and value.lower() not in OBSERVERS:
                names.add(value)
    names.update(e.service for e in evidence)
    return names


def alert_view(alert: Alert) -> dict[str, Any]:
    return {
        "name": alert.name,
        "status": alert.status.value,
        "severity": alert.severity.value,
        "service": alert.service,
        "starts_at": alert.starts_at.isoformat(),
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
    }


def triage_view(triage: TriageResult) -> dict[str, Any]:
    """What later agents' prompts need of the triage."""
    return triage.model_dump(mode="json", include={"severity", "category", "services", "summary"})


def alert_line(alert: Alert) -> str:
    return f"alert {alert.name} [{alert.severity}] on {alert.service}: {alert.summary[:300]}"


def evidence_line(item: Evidence) -> str:
    extra = "".join(
        part
        for part in (
            f", value {item.value:g}" if item.value is not None else "",
            f", score {item.score:.2f}" if item.score is not None else "",
        )
    )
    return f"{item.source}/{item.kind} on {item.service}: {item.summary[:300]}{extra}"
