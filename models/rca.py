"""Types that diagnosis hands across boundaries: candidates, telemetry in and out.

Pure pydantic, so workflows can carry them. Evidence is the agents' own
`models.agents.Evidence`: what the ranker and the telemetry activity produce goes into
`DiagnosisInput.evidence` as it is. Its `score` is 0..1, how strongly
the observation implicates the service; z-scores stay in the summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from models.agents import Evidence
from models.alert import Alert


class Symptom(BaseModel):
    service: str
    metric: str | None = None


class Candidate(BaseModel):
    """A possible root cause, ranked, with the evidence that put it there."""

    service: str
    rank: int = Field(ge=1)
    score: float  # log-likelihood ratio against "nothing is wrong here"; higher is likelier
    confidence: float = Field(ge=0.0, le=1.0)  # share of belief among all services
    anomaly: float | None = Field(default=None, ge=0.0, le=1.0)  # None: no data for it
    service_kind: str | None = None  # service | database | queue | lb | external
    explains: list[str] = Field(default_factory=list)  # anomalous services that depend on it
    # The signals (metrics, traces, logs) that call this service anomalous: agreement is what
    # makes a candidate more than a hypothesis.
    signals: list[str] = Field(default_factory=list)
    evidence: list[Evidence] = Field(default_factory=list)

    def as_evidence(self) -> Evidence:
        """This candidate as one piece of evidence (kind `root_cause`) for the diagnosis agent."""
        # The strongest finding of each signal (metric, trace hot spot, log template), so the
        # diagnosis agent sees every signal that speaks for this service, not three metrics.
        strong = [e for e in self.evidence if e.kind in ("anomaly", "metrics_vanished", "alerts_firing")]
        why = [e.summary for e in strong if e.source not in ("traces", "logs")][:2]
        for source in ("traces", "logs"):
            why += [f"{source}: {e.summary[:400]}" for e in strong if e.source == source][:1]
        parts = [f"root-cause candidate #{self.rank} (confidence {self.confidence:.2f})"]
        if self.signals:
            parts.append(f"anomalous in {', '.join(self.signals)}")
        if len(self.signals) <= 1 and self.confidence < 0.8:
            parts.append("one signal or none: a hypothesis to check, not a finding")
        if self.explains:
            parts.append(f"explains anomalies in {', '.join(self.explains[:6])}")
        if self.anomaly is None:
            parts.append("no metrics of its own")
        parts += why
        return Evidence(
            source="rca",
            service=self.service,
            kind="root_cause",
            summary="; ".join(parts)[:2000],
            value=self.score,
            score=self.confidence,
        )


class MetricSeries(BaseModel):
    service: str
    metric: str  # <kind>_<stat>
    points: list[tuple[float, float]]  # (unix seconds, value)


# How long before the first alert's start the incident window opens, by default: an alert fires
# once its condition has held for its rule's `for:` (commonly 1-5 minutes), so the fault began
# earlier. The worker's setting and the evaluation's from-alert variant share it.
LEAD_IN_SECONDS = 300.0


class TelemetryInput(BaseModel):
    """What to look at: the incident's services, when it started, and the symptom."""

    incident_id: str
    services: list[str] = Field(min_length=1)
    symptom: Symptom | None = None
    incident_start: datetime  # earliest alert start
    incident_end: datetime  # usually workflow.now()
    normal_seconds: float | None = Field(default=None, gt=0)  # normal period length (settings default)
    # Keep the run-up to the incident out of "normal" (None: the worker's configured gap).
    normal_gap_seconds: float | None = Field(default=None, ge=0)
    # Open the incident window this long before the first alert (None: the worker's setting).
    lead_in_seconds: float | None = Field(default=None, ge=0, le=3600)
    step_seconds: float | None = Field(default=None, gt=0)
    # Also look at what the services depend on (where root causes hide) and one hop of callers.
    expand_topology: bool = True
    alerts: list[Alert] = Field(default_factory=list)  # weak evidence for ranking
    include_series: bool = False  # return the raw series of the incident's services too


TelemetryStatus = Literal["ok", "partial", "unavailable"]


class TelemetryResult(BaseModel):
    status: TelemetryStatus
    confidence: float = Field(ge=0.0, le=1.0)  # multiply the diagnosis' confidence by this
    reasons: list[str] = Field(default_factory=list)
    prometheus_url: str
    services: list[str]
    normal: tuple[float, float]
    anomalous: tuple[float, float]
    series: list[MetricSeries] = Field(default_factory=list)
    evidence: list[Evidence] = Field(default_factory=list)
    candidates: list[Candidate] = Field(default_factory=list)

    def diagnosis_evidence(self, candidates: int = 3) -> list[Evidence]:
        """What to put in `DiagnosisInput.evidence`: the top candidates, then the telemetry."""
        return [c.as_evidence() for c in self.candidates[:candidates]] + list(self.evidence)


# Raw observations from a trace or log source, before diagnosis aggregates them (rca.spans,
# rca.logmining); plain dataclasses because there are many of them.
@dataclass(frozen=True)
class LogLine:
    timestamp: float  # unix seconds
    service: str
    text: str
    trace_id: str = ""  # "" when the source does not say


@dataclass
class Span:
    trace_id: str
    span_id: str
    parent_id: str  # "" or an id not in the trace: a root
    service: str
    start_ns: int
    end_ns: int
    error: bool | None = None  # None: the source does not say
    children: list[Span] = field(default_factory=list, repr=False)
