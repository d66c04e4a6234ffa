"""Memory: what retrieval returns, what an incident leaves behind, and what people say about it.

These are Temporal payloads (the memory activities' inputs and results) and so are pure
pydantic with no I/O; add fields with defaults only. Everything a plan can cite carries a
stable id: a passage `runbook:disk-space#2` (document id, then chunk), a past incident
`incident-prod-checkout@<run id>`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, computed_field

from models.agents import Grounding, GroundingItem
from models.alert import Alert

DocKind = Literal["runbook", "postmortem"]
FilterMode = Literal["boost", "require", "off"]
ActionStatus = Literal["successful", "failed", "timeout", "canceled", "rejected", "not_run"]

# --- Retrieval -------------------------------------------------------------------------------


class RetrieveInput(BaseModel):
    """What the planner wants context for; `text` is matched, names and services also filter."""

    incident_id: str = ""
    text: str = Field(min_length=1, max_length=20_000)
    alert_names: list[str] = Field(default_factory=list, max_length=100)
    services: list[str] = Field(default_factory=list, max_length=100)
    category: str | None = None
    runbook_limit: int = Field(default=5, ge=1, le=50)
    postmortem_limit: int = Field(default=3, ge=0, le=50)
    incident_limit: int = Field(default=5, ge=0, le=50)
    # boost: documents that name one of the alerts or services rank higher; require: only those;
    # off: text alone decides.
    filter: FilterMode = "boost"

    @classmethod
    def from_alerts(
        cls,
        incident_id: str,
        alerts: Iterable[Alert],
        summary: str | None = None,
        category: str | None = None,
        **limits: Any,
    ) -> RetrieveInput:
        """The query an incident makes: its alerts' names, services, summaries and descriptions."""
        alerts = sorted(alerts, key=lambda a: (a.severity.rank, a.name, a.fingerprint))
        lines: list[str] = [summary] if summary else []
        for alert in alerts[:20]:
            description = alert.annotations.get("description", "")
            line = f"{alert.name} on {alert.service}: {alert.summary}"
            if description and description != alert.summary:
                line += f" {description}"
            lines.append(line)
        return cls(
            incident_id=incident_id,
            text="\n".join(lines)[:20_000],
            alert_names=sorted({a.name for a in alerts}),
            services=sorted({a.service for a in alerts}),
            category=category,
            **limits,
        )


class Passage(BaseModel):
    """A chunk of a runbook or post-mortem; cite it by `id`."""

    id: str  # "<doc id>#<chunk>", e.g. runbook:disk-space#2
    doc_id: str  # e.g. runbook:disk-space
    kind: DocKind
    title: str
    section: str
    path: str  # where the document lives, relative to the repository when it is in it
    text: str
    actions: list[str] = Field(default_factory=list)  # catalog actions the document recommends
    services: list[str] = Field(default_factory=list)
    alerts: list[str] = Field(default_factory=list)
    score: float


class ActionOutcome(BaseModel):
    """One action of an incident's plan and what became of it."""

    action: str
    target: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    status: ActionStatus
    check_mode: bool = False  # shadow run: nothing changed, so it proves nothing either way
    verified: bool | None = None  # the alerts resolved after it ran (None: not checked)
    approved_by: str | None = None  # the human who chose it, when one did
    summary: str = ""

    @property
    def succeeded(self) -> bool:
        return self.status == "successful" and not self.check_mode and self.verified is not False

    @property
    def failed(self) -> bool:
        return self.status in ("failed", "timeout") or (
            self.status == "successful" and not self.check_mode and self.verified is False
        )


class ApprovalNote(BaseModel):
    decision: Literal["approved", "rejected"]
    by: str
    reason: str = ""
    at: datetime
    actions: list[str] = Field(default_factory=list)  # the plan's actions the decision was about


class FeedbackNote(BaseModel):
    useful: bool
    by: str
    note: str = ""
    at: datetime
    action: str | None = None  # None: about the incident's response as a whole


class IncidentRecord(BaseModel):
    """Episodic memory: one closed incident, written once at close (rewriting it is harmless)."""

    incident_id: str
    run_id: str = ""  # the workflow run: one incident id (key) is reused by later incidents
    key: str = ""
    opened_at: datetime
    closed_at: datetime
    severity: str | None = None
    category: str | None = None
    services: list[str] = Field(default_factory=list)
    alert_names: list[str] = Field(default_factory=list)
    symptoms: list[str] = Field(default_factory=list)  # what fired, in the alerts' own words
    summary: str = ""
    root_cause: str | None = None
    actions: list[ActionOutcome] = Field(default_factory=list)
    approvals: list[ApprovalNote] = Field(default_factory=list)
    outcome: str  # an Outcome value
    outcome_reason: str = ""
    time_to_resolve_seconds: float | None = None  # None unless the alerts went away
    cited: list[str] = Field(default_factory=list)  # passage and incident ids the plan cited
    feedback: list[FeedbackNote] = Field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.incident_id}@{self.run_id}" if self.run_id else self.incident_id


class SimilarIncident(BaseModel):
    """A past incident that looks like this one; cite it by `id`."""

    id: str  # IncidentRecord.id
    record: IncidentRecord
    score: float
    matched_on: list[str] = Field(default_factory=list)  # "alert:X", "service:Y", "category:Z", "text"


class ActionSuggestion(BaseModel):
    """A catalog action ranked by what the runbooks say and how it went in similar incidents."""

    action: str
    score: float
    reasons: list[str] = Field(default_factory=list)
    cited: list[str] = Field(default_factory=list)  # passage and incident ids behind the score


class RetrievedContext(BaseModel):
    query: str
    mode: Literal["hybrid", "sparse"]
    # Runbooks best first, then post-mortems best first; at most one passage per document.
    passages: list[Passage] = Field(default_factory=list)
    incidents: list[SimilarIncident] = Field(default_factory=list)  # best first
    suggestions: list[ActionSuggestion] = Field(default_factory=list)  # best first

    @property
    def citations(self) -> list[str]:
        return [p.id for p in self.passages] + [i.id for i in self.incidents]

    @property
    def empty(self) -> bool:
        return not self.passages and not self.incidents

    def render(self, max_chars: int = 6000) -> str:
        """The context as a prompt section: each item under the id a plan must cite."""
        parts: list[str] = []
        if self.passages:
            parts.append("Runbook and post-mortem passages:")
            for p in self.passages:
                actions = f" (actions: {', '.join(p.actions)})" if p.actions else ""
                parts.append(f"[{p.id}] {p.title} — {p.section}{actions}\n{p.text.strip()}")
        if self.incidents:
            parts.append("Similar past incidents:")
            for i in self.incidents:
                r = i.record
                done = "; ".join(
                    f"{a.action} on {a.target or '?'}: {a.status}"
                    + (", verified" if a.verified else "")
                    + (f", chosen by {a.approved_by}" if a.approved_by else "")
                    for a in r.actions
                )
                rejected = "; ".join(
                    f"rejected by {a.by}: {a.reason}" for a in r.approvals if a.decision == "rejected"
                )
                feedback = "; ".join(
                    f"{'useful' if f.useful else 'wrong'} ({f.by}): {f.note}" for f in r.feedback
                )
                lines = [
                    f"[{i.id}] {r.summary or ', '.join(r.alert_names)} — outcome {r.outcome}"
                    + (f" in {r.time_to_resolve_seconds / 60:.0f} min" if r.time_to_resolve_seconds else "")
                    + f" (matched on {', '.join(i.matched_on)})",
                    f"root cause: {r.root_cause}" if r.root_cause else "",
                    f"actions: {done}" if done else "",
                    rejected,
                    f"feedback: {feedback}" if feedback else "",
                ]
                parts.append("\n".join(line for line in lines if line))
        if self.suggestions:
            parts.append(
                "Actions ranked from these: "
                + ", ".join(
                    f"{s.action} ({s.score:+.2f}; {', '.join(s.cited[:3])})" for s in self.suggestions
                )
            )
        if not parts:
            return "No runbook passage or past incident matched: a plan made now cites nothing."
        text = "\n\n".join(parts)
        return text if len(text) <= max_chars else text[: max_chars - 15] + "\n[...truncated]"


# --- Feedback and track record ---------------------------------------------------------------


class FeedbackInput(BaseModel):
    """A human's after-the-fact judgement of how an incident was handled."""

    incident_id: str = Field(min_length=1)
    useful: bool
    by: str = Field(min_length=1, max_length=256)
    note: str = Field(default="", max_length=4096)
    action: str | None = None  # about one action; None: the whole response
    run_id: str | None = None  # a specific run; None: the incident's latest record
    at: datetime | None = None  # None: now (a workflow passes workflow.now())


class FeedbackResult(BaseModel):
    record_id: str
    feedback: list[FeedbackNote]


class RecordResult(BaseModel):
    record_id: str
    created: bool  # False: the record existed and was replaced (a retried activity)


class TrackRecordInput(BaseModel):
    actions: list[str] = Field(default_factory=list)  # empty: every action memory has seen


class ActionTrackRecord(BaseModel):
    """How an action class has fared, counted in incidents (one incident counts once per field)."""

    action: str
    incidents: int = 0  # incidents whose plan included it
    successes: int = 0  # ran for real, and the alerts resolved (or were not checked)
    failures: int = 0  # failed, timed out, or ran but the alerts stayed
    rejections: int = 0  # a human rejected a plan with it
    approvals: int = 0  # a human approved a plan with it
    shadow_runs: int = 0  # check mode only
    useful: int = 0  # feedback: the response was useful
    wrong: int = 0  # feedback: the response was wrong

    @computed_field  # type: ignore[prop-decorator]
    @property
    def success_rate(self) -> float | None:
        """Successes over real attempts (shadow runs and rejections are not attempts)."""
        attempts = self.successes + self.failures
        return self.successes / attempts if attempts else None


class TrackRecordResult(BaseModel):
    records: dict[str, ActionTrackRecord] = Field(default_factory=dict)


def grounding_from_context(context: RetrievedContext) -> Grounding:
    """What the planner sees of retrieved memory: citable items, no raw records."""
    items = [
        GroundingItem(
            id=p.id, kind=p.kind, title=f"{p.title} — {p.section}", text=p.text[:4000], actions=p.actions,
            score=p.score,
        )
        for p in context.passages
    ]
    for similar in context.incidents:
        record = similar.record
        items.append(
            GroundingItem(
                id=similar.id,
                kind="incident",
                title=f"{record.summary or record.incident_id} ({record.outcome})",
                text=f"root cause: {record.root_cause or 'unknown'}; outcome: {record.outcome_reason}"[:4000],
                actions=[a.action for a in record.actions],
                succeeded=[a.action for a in record.actions if a.succeeded],
                approved_by=next((a.approved_by for a in record.actions if a.approved_by), None),
                score=similar.score,
            )
        )
    return Grounding(items=items, suggestions=[(s.action, s.score, s.cited) for s in context.suggestions])
