"""Types that diagnosis hands across boundaries: evidence, candidates, telemetry in and out.

Pure pydantic, so workflows can carry them. `Evidence` has the shape the diagnosis agent
takes (`source, service, kind, summary, value, score`): convert with
`TheirEvidence.model_validate(e.model_dump())`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from models.alert import Alert


class Evidence(BaseModel):
    """One observation that supports (or weakens) a conclusion, with where it came from."""

    source: str  # prometheus | topology | alerts | rca
    service: str
    kind: str  # anomaly | explains | dependencies_healthy | no_data | telemetry_unavailable | ...
    summary: str
    value: float | None = None
    score: float | None = None


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
    evidence: list[Evidence] = Field(default_factory=list)


class MetricSeries(BaseModel):
    service: str
    metric: str  # <kind>_<stat>
    points: list[tuple[float, float]]  # (unix seconds, value)


class TelemetryInput(BaseModel):
    """What to look at: the incident's services, when it started, and the symptom."""

    incident_id: str
    services: list[str] = Field(min_length=1)
    symptom: Symptom | None = None
    incident_start: datetime  # earliest alert start
    incident_end: datetime  # usually workflow.now()
    normal_seconds: float | None = Field(default=None, gt=0)  # normal period length (settings default)
    normal_gap_seconds: float = Field(default=300.0, ge=0)  # keep the run-up to the incident out of "normal"
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
