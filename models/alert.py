"""Alerts as Firebreak sees them, and the webhook payloads they come from.

Every source (Alertmanager, generic JSON) is validated into the same `Alert`, so the
workflows never see a source's quirks. Validation is strict: a payload that does not
parse is refused as a whole with the offending field named, and nothing reaches Temporal.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, field_validator

# Label values become workflow ids and search attribute values: keep them short and plain.
_KEY_UNSAFE = re.compile(r"[^a-z0-9._-]+")
MAX_LABELS = 64
MAX_LABEL_VALUE = 1024
MAX_ANNOTATION_VALUE = 8192
MAX_ALERTS_PER_PAYLOAD = 1000

_RFC3339_PREFIX = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _timestamp_text(value: object) -> object:
    """Webhook timestamps are RFC 3339 strings, as documented.

    Pydantic alone would also take numbers and numeric strings as Unix time, or a bare date.
    """
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339_PREFIX.match(value):
        raise ValueError("must be an RFC 3339 date-time string, e.g. 2026-11-21T10:00:00Z")
    return value


Timestamp = Annotated[datetime, BeforeValidator(_timestamp_text)]
LabelName = Annotated[str, StringConstraints(min_length=1, max_length=128)]
LabelValue = Annotated[str, StringConstraints(max_length=MAX_LABEL_VALUE)]
AnnotationValue = Annotated[str, StringConstraints(max_length=MAX_ANNOTATION_VALUE)]


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class Severity(StrEnum):
    """Incident priority, P1 most urgent. Ordered so that `min()` picks the worst."""

    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"

    @property
    def rank(self) -> int:
        return int(self.value[1])

    @classmethod
    def from_label(cls, value: str | None) -> Severity:
        """Map the severity labels seen in the wild (Prometheus conventions) to a priority."""
        if value is None:
            return cls.P3
        normalized = value.strip().lower()
        if normalized.upper() in cls.__members__:
            return cls[normalized.upper()]
        return _SEVERITY_LABELS.get(normalized, cls.P3)


_SEVERITY_LABELS = {
    "critical": Severity.P1,
    "page": Severity.P1,
    "emergency": Severity.P1,
    "high": Severity.P2,
    "error": Severity.P2,
    "major": Severity.P2,
    "warning": Severity.P3,
    "warn": Severity.P3,
    "medium": Severity.P3,
    "minor": Severity.P4,
    "low": Severity.P4,
    "info": Severity.P4,
    "none": Severity.P4,
}

# Labels that name the thing that is broken, most specific first.
SERVICE_LABELS = (
    "service",
    "app",
    "app_kubernetes_io_name",
    "deployment",
    "statefulset",
    "daemonset",
    "container",
    "job",
    "instance",
)
# Exporters and scrapers name who *observed* a problem, not what is broken: an alert from
# kube-state-metrics about a crash-looping container is about the container.
OBSERVERS = frozenset(
    {
        "kube-state-metrics",
        "node",
        "node-exporter",
        "blackbox",
        "blackbox-exporter",
        "prometheus",
        "kubelet",
        "cadvisor",
        "alertmanager",
        "pushgateway",
    }
)
_INSTANCE = re.compile(r"^(?:[a-z][a-z0-9+.-]*://)?(?P<host>\[[^\]]+\]|[^/:?#]+)", re.IGNORECASE)


class Alert(BaseModel):
    """One alert instance, identified by its fingerprint."""

    model_config = ConfigDict(frozen=True)

    fingerprint: str = Field(min_length=1, max_length=128)
    status: AlertStatus
    name: str = Field(min_length=1, max_length=MAX_LABEL_VALUE)
    service: str = Field(min_length=1, max_length=MAX_LABEL_VALUE)
    severity: Severity
    labels: dict[LabelName, LabelValue] = Field(default_factory=dict, max_length=MAX_LABELS)
    annotations: dict[LabelName, AnnotationValue] = Field(default_factory=dict, max_length=MAX_LABELS)
    starts_at: datetime
    ends_at: datetime | None = None
    generator_url: str | None = None
    source: Literal["alertmanager", "generic"]

    @property
    def summary(self) -> str:
        return self.annotations.get("summary") or self.annotations.get("description") or self.name

    def incident_key(self) -> str:
        """The correlation key: alerts about one service in one place share an incident."""
        parts = [self.labels.get(k, "") for k in ("cluster", "namespace")] + [self.service]
        return slug("-".join(p for p in parts if p))


class AlertBatch(BaseModel):
    """Alerts for one incident, delivered in one signal (one webhook request's share)."""

    alerts: list[Alert] = Field(min_length=1)
    received_at: datetime


def slug(text: str) -> str:
    cleaned = _KEY_UNSAFE.sub("-", text.lower()).strip("-.")
    if not cleaned:
        if not text:
            raise ValueError("no usable characters for an incident key")
        # Names in other scripts still need a stable, safe key.
        return "u-" + hashlib.sha256(text.encode()).hexdigest()[:16]
    if len(cleaned) > 120:
        # Keep ids bounded but distinct: truncate and add a digest of the whole.
        cleaned = cleaned[:100] + "-" + hashlib.sha256(cleaned.encode()).hexdigest()[:16]
    return cleaned


def fingerprint_of(name: str, labels: dict[str, str]) -> str:
    """Stable fingerprint for sources that do not send one (same labels, same alert)."""
    # Name and labels apart, so a label called "alertname" cannot collide with the name.
    canonical = json.dumps({"name": name, "labels": labels}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def service_of(labels: dict[str, str]) -> str | None:
    """The workload an alert is about: the first workload label that is not an observer."""
    for key in SERVICE_LABELS:
        value = labels.get(key, "").strip()
        if key == "instance" and value:
            match = _INSTANCE.match(value)
            value = match.group("host").strip("[]") if match else value
        if value and value.lower() not in OBSERVERS:
            return value
    return None


# --- Alertmanager webhook (version 4) -------------------------------------------------------


class AlertmanagerAlert(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    status: AlertStatus
    labels: dict[LabelName, LabelValue] = Field(
        max_length=MAX_LABELS,
        # What `_has_alertname` checks, said in the schema too (the OpenAPI document reads it).
        json_schema_extra={
            "required": ["alertname"],
            "properties": {"alertname": {"type": "string", "minLength": 1}},
        },
    )
    annotations: dict[LabelName, AnnotationValue] = Field(default_factory=dict, max_length=MAX_LABELS)
    starts_at: Timestamp = Field(alias="startsAt")
    ends_at: Timestamp | None = Field(default=None, alias="endsAt")
    generator_url: str | None = Field(default=None, alias="generatorURL", max_length=4096)
    fingerprint: str | None = Field(default=None, max_length=128)

    @field_validator("labels")
    @classmethod
    def _has_alertname(cls, labels: dict[str, str]) -> dict[str, str]:
        if not labels.get("alertname"):
            raise ValueError("labels.alertname is required")
        return labels

    @field_validator("ends_at")
    @classmethod
    def _zero_time_is_none(cls, value: datetime | None) -> datetime | None:
        # Alertmanager sends 0001-01-01T00:00:00Z for "not ended".
        if value is not None and value.year <= 1:
            return None
        return value

    def to_alert(self) -> Alert:
        name = self.labels["alertname"]
        return Alert(
            fingerprint=self.fingerprint or fingerprint_of(name, self.labels),
            status=self.status,
            name=name,
            service=service_of(self.labels) or name,
            severity=Severity.from_label(self.labels.get("severity")),
            labels=self.labels,
            annotations=self.annotations,
            starts_at=_aware(self.starts_at),
            ends_at=_aware(self.ends_at) if self.ends_at else None,
            generator_url=self.generator_url,
            source="alertmanager",
        )


class AlertmanagerPayload(BaseModel):
    """The body Alertmanager POSTs to a webhook receiver (`version: "4"`)."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    version: Literal["4"]
    group_key: str = Field(alias="groupKey", max_length=4096)
    status: AlertStatus
    receiver: str = Field(max_length=256)
    group_labels: dict[LabelName, LabelValue] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[LabelName, LabelValue] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[LabelName, AnnotationValue] = Field(
        default_factory=dict, alias="commonAnnotations"
    )
    external_url: str | None = Field(default=None, alias="externalURL", max_length=4096)
    truncated_alerts: int = Field(default=0, alias="truncatedAlerts", ge=0)
    alerts: list[AlertmanagerAlert] = Field(min_length=1, max_length=MAX_ALERTS_PER_PAYLOAD)

    @field_validator("truncated_alerts", mode="before")
    @classmethod
    def _a_json_number(cls, value: object) -> object:
        # A JSON integer (35 or 35.0, as JSON Schema has it); pydantic would also read true
        # as 1 and "3" as 3, and either is a malformed payload.
        if isinstance(value, bool | str):
            raise ValueError("must be a non-negative integer")
        return value

    def to_alerts(self) -> list[Alert]:
        return [a.to_alert() for a in self.alerts]


# --- Generic JSON alert ----------------------------------------------------------------------


class GenericAlert(BaseModel):
    """One alert from anything that can POST JSON (Grafana contact points, scripts, CI)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=256, description="what fired, e.g. HighErrorRate")
    service: str = Field(min_length=1, max_length=256, description="the affected service")
    status: AlertStatus = AlertStatus.FIRING
    severity: str | None = Field(default=None, max_length=32, description="critical|warning|P1..")
    summary: str | None = Field(default=None, max_length=MAX_ANNOTATION_VALUE)
    description: str | None = Field(default=None, max_length=MAX_ANNOTATION_VALUE)
    labels: dict[LabelName, LabelValue] = Field(default_factory=dict, max_length=MAX_LABELS)
    annotations: dict[LabelName, AnnotationValue] = Field(default_factory=dict, max_length=MAX_LABELS)
    fingerprint: str | None = Field(default=None, min_length=1, max_length=128)
    starts_at: Timestamp | None = None
    ends_at: Timestamp | None = None
    generator_url: str | None = Field(default=None, max_length=4096)

    def to_alert(self, now: datetime) -> Alert:
        labels = {"alertname": self.name, "service": self.service, **self.labels}
        if self.severity:
            labels.setdefault("severity", self.severity)
        annotations = dict(self.annotations)
        if self.summary:
            annotations["summary"] = self.summary
        if self.description:
            annotations["description"] = self.description
        return Alert(
            fingerprint=self.fingerprint or fingerprint_of(self.name, labels),
            status=self.status,
            name=self.name,
            service=self.service,
            severity=Severity.from_label(self.severity or labels.get("severity")),
            labels=labels,
            annotations=annotations,
            starts_at=_aware(self.starts_at) if self.starts_at else now,
            ends_at=_aware(self.ends_at) if self.ends_at else None,
            generator_url=self.generator_url,
            source="generic",
        )


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
