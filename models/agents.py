"""Inputs and outputs of the four agents (triage, diagnosis, planner, reviewer).

Every agent result records how it was decided: which reasoner (`rules` or `claude`), why
it was routed there, its confidence, the LLM calls it made (tokens and cost), and how many
secrets were redacted before anything reached the LLM. These are Temporal payloads: add
fields with defaults only.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from models.alert import Alert, Severity


class Evidence(BaseModel):
    """One observation that supports (or weakens) a hypothesis about the incident.

    Generic on purpose: alerts, Prometheus queries, the topology-aware root-cause ranker
    (`rca/`) and deploy trackers all produce it. `score` (0..1) is how strongly the source
    implicates `service`; `value` is the raw number behind it when there is one.
    """

    source: str = Field(min_length=1, max_length=64)  # "alertmanager", "prometheus", "rca", ...
    service: str = Field(min_length=1, max_length=256)
    kind: str = Field(min_length=1, max_length=64)  # "root_cause", "crashloop", "deploy_in_progress", ...
    summary: str = Field(max_length=2000)
    value: float | None = None
    score: float | None = Field(default=None, ge=0.0, le=1.0)


class LLMCall(BaseModel):
    """One Messages API call: what it was for, what it used and what it cost."""

    agent: str
    purpose: Literal["decide", "repair"]
    model: str
    request_id: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_usd: float = 0.0


class LLMUsage(BaseModel):
    """Token and cost totals over any number of calls (one decision, or a whole incident)."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def total_tokens(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_creation_input_tokens
            + self.cache_read_input_tokens
        )

    def plus(self, other: LLMUsage | LLMCall) -> LLMUsage:
        return LLMUsage(
            calls=self.calls + (other.calls if isinstance(other, LLMUsage) else 1),
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_creation_input_tokens=self.cache_creation_input_tokens + other.cache_creation_input_tokens,
            cache_read_input_tokens=self.cache_read_input_tokens + other.cache_read_input_tokens,
            # Rounded so that sums in workflow state read well; micro-dollars are plenty.
            cost_usd=round(self.cost_usd + other.cost_usd, 6),
        )


class AgentInput(BaseModel):
    incident_id: str
    alerts: list[Alert]
    # What the incident has spent on the LLM so far, for the per-incident budget.
    llm_usage: LLMUsage = Field(default_factory=LLMUsage)
    # Set by the workflow when the LLM stayed unavailable: decide on rules and say why.
    rules_only: str | None = None


class AgentResult(BaseModel):
    """What every agent decision records, whatever the agent."""

    reasoner: str  # "rules" or "claude"
    confidence: float = Field(ge=0.0, le=1.0)
    routing: str = ""  # why this reasoner decided
    llm_wanted: bool = False  # the rules were not enough on their own
    rule: str | None = None  # which rule decided, when the rules did
    model: str | None = None  # which LLM, when it decided
    llm_calls: list[LLMCall] = Field(default_factory=list)
    usage: LLMUsage = Field(default_factory=LLMUsage)
    redactions: dict[str, int] = Field(default_factory=dict)
    repair_error: str | None = None  # the validation error an LLM answer was repaired for
    escalate_reason: str | None = None  # set: a human must decide; no action runs


# --- Triage ----------------------------------------------------------------------------------


class ProposedAction(BaseModel):
    """A catalog action with validated parameters, aimed at one target.

    Risk, autonomy and timeout are copied from the catalog when the action is proposed, so
    the plan an approver sees (and its hash) states them.
    """

    action: str
    params: dict[str, Any] = Field(default_factory=dict)
    target: str
    risk: str = "medium"
    autonomy: str = "approve"
    timeout_seconds: int = Field(default=300, gt=0, le=3600)


class TriageInput(AgentInput):
    pass


class TriageResult(AgentResult):
    severity: Severity
    category: str
    services: list[str]
    summary: str
    actionable: bool = True  # False: known, and nothing to do beyond notifying
    runbook: str | None = None
    proposed: ProposedAction | None = None  # the rule reasoner's shortcut; the planner decides


# --- Diagnosis -------------------------------------------------------------------------------


class Hypothesis(BaseModel):
    service: str  # the service whose fault would explain the incident
    kind: str  # "availability", "root_cause", "deploy", ...: what the planner keys on
    cause: str
    evidence: list[str] = Field(default_factory=list)  # what it rests on, in words
    confidence: float = Field(ge=0.0, le=1.0)
    rule: str | None = None  # the triage rule behind it, when an alert signature is


class DiagnosisInput(AgentInput):
    triage: TriageResult
    evidence: list[Evidence] = Field(default_factory=list)


class DiagnosisResult(AgentResult):
    hypotheses: list[Hypothesis]  # best first


# --- Plan ------------------------------------------------------------------------------------


class GroundingItem(BaseModel):
    """A runbook passage, post-mortem passage or past incident the planner may cite by `id`."""

    id: str
    kind: Literal["runbook", "postmortem", "incident"]
    title: str = ""
    text: str = Field(default="", max_length=4000)
    actions: list[str] = Field(default_factory=list)  # catalog actions it recommends / that worked
    succeeded: list[str] = Field(default_factory=list)  # incidents: actions verified to have fixed it
    approved_by: str | None = None  # incidents: who chose the action
    score: float = 0.0


class Grounding(BaseModel):
    """What memory retrieved for this incident (models.memory.grounding_from_context)."""

    items: list[GroundingItem] = Field(default_factory=list)
    # Catalog actions ranked by memory, best first, with the ids behind each.
    suggestions: list[tuple[str, float, list[str]]] = Field(default_factory=list)
    unavailable_reason: str | None = None

    def ids(self) -> set[str]:
        return {i.id for i in self.items}


class DiagnosedInput(AgentInput):
    """What the planner and the reviewer both decide on: the triage, the diagnosis, the evidence."""

    triage: TriageResult
    diagnosis: DiagnosisResult
    evidence: list[Evidence] = Field(default_factory=list)


class PlanInput(DiagnosedInput):
    grounding: Grounding = Field(default_factory=Grounding)


class PlanResult(AgentResult):
    actions: list[ProposedAction] = Field(default_factory=list)  # validated against the catalog
    rationale: str = ""
    expected_effect: str = ""
    verification: str = ""
    runbook: str | None = None
    citations: list[str] = Field(default_factory=list)  # grounding ids the plan rests on


# --- Review ----------------------------------------------------------------------------------


class ReviewInput(DiagnosedInput):
    plan: PlanResult


class ReviewResult(AgentResult):
    verdict: Literal["approve", "veto"]
    reasons: list[str] = Field(default_factory=list)
