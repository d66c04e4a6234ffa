"""Alert correlation: alerts that belong to one failure become one incident.

Two alerts are related when they are about the same service, or about services within
`hops` dependency edges of each other (either direction), and the second arrives while
the incident is still active (its last alert is at most `window` old). One alert can
relate to several open incidents; then those incidents are one failure seen from two
sides, and they merge.

The correlator is streaming: `add(alert)` costs a lookup per neighbouring service, not a
scan of all incidents, and incidents that went quiet are closed as time moves on, so a
storm of 10,000 alerts over a few dozen services is a handful of incidents in
milliseconds. Alerts must arrive roughly in time order (late ones within `window` are fine).

Alerts from different clusters (label `cluster`, configurable) never correlate: the same
service in two clusters is two failures.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from models.alert import Alert
from rca.topology import Topology


@dataclass
class CorrelatedIncident:
    id: int
    scope: tuple[str, ...]
    opened_at: datetime
    last_at: datetime
    services: set[str] = field(default_factory=set)
    fingerprints: set[str] = field(default_factory=set)
    service_last: dict[str, datetime] = field(default_factory=dict)  # last alert per service
    alerts: int = 0  # alerts ingested, duplicates included
    merged_from: list[int] = field(default_factory=list)
    closed: bool = False

    def summary(self) -> dict[str, object]:
        return {
            "id": self.id,
            "scope": list(self.scope),
            "opened_at": self.opened_at.isoformat(),
            "last_at": self.last_at.isoformat(),
            "services": sorted(self.services),
            "alerts": self.alerts,
            "distinct_alerts": len(self.fingerprints),
            "merged_from": self.merged_from,
        }


class Correlator:
    def __init__(
        self,
        topology: Topology | None = None,
        *,
        hops: int = 1,
        window: timedelta = timedelta(minutes=15),
        scope_labels: Sequence[str] = ("cluster",),
        merge: bool = False,
        max_span: timedelta = timedelta(hours=1),
    ) -> None:
        self.topology = topology or Topology([])
        self.hops = hops
        self.window = window
        self.scope_labels = tuple(scope_labels)
        self.merge = merge
        self.max_span = max_span
        self.incidents: dict[int, CorrelatedIncident] = {}
        self.assignments: list[int] = []  # incident id per ingested alert, in order
        self._open: dict[tuple[tuple[str, ...], str], set[int]] = {}  # (scope, service) -> open ids
        self._alias: dict[int, int] = {}  # merged id -> surviving id
        self._near: dict[str, dict[str, int]] = {}
        self._next = 1
        self._clock: datetime | None = None
        self._active: set[int] = set()

    def near(self, service: str) -> dict[str, int]:
        """Services within `hops` of this one, with their distance (0 for itself)."""
        cached = self._near.get(service)
        if cached is None:
            cached = self.topology.within_distances(service, self.hops)
            self._near[service] = cached
        return cached

    def resolve(self, incident_id: int) -> int:
        """The incident an id ended up in after merges."""
        while incident_id in self._alias:
            incident_id = self._alias[incident_id]
        return incident_id

    def add(self, alert: Alert) -> int:
        """Assign one alert to an incident (opening one if nothing is related); returns its id."""
        at = alert.starts_at
        self._advance(at)
        scope = tuple(alert.labels.get(k, "") for k in self.scope_labels)
        # The closest relation wins: the same service, then one hop, then two...; among
        # equals, the incident that heard from that service most recently.
        best: tuple[int, float, int] | None = None  # (distance, -last seen, id)
        related: set[int] = set()
        for other, distance in self.near(alert.service).items():
            for incident_id in self._open.get((scope, other), ()):
                incident = self.incidents[incident_id]
                seen = incident.service_last[other]
                if at - seen > self.window:
                    continue  # that service went quiet: stale relation
                if distance > 0 and at - incident.opened_at > self.max_span:
                    continue  # a long-running incident (a flapping alert) must not absorb new failures
                related.add(incident_id)
                key = (distance, -seen.timestamp(), incident_id)
                if best is None or key < best:
                    best = key
        if best is None:
            incident = CorrelatedIncident(id=self._next, scope=scope, opened_at=at, last_at=at)
            self._next += 1
            self.incidents[incident.id] = incident
            self._active.add(incident.id)
        elif self.merge and len(related) > 1:
            incident = self._merge(sorted(related))
        else:
            incident = self.incidents[best[2]]
        incident.alerts += 1
        incident.fingerprints.add(alert.fingerprint)
        incident.last_at = max(incident.last_at, at)
        previous = incident.service_last.get(alert.service)
        incident.service_last[alert.service] = max(previous, at) if previous else at
        if alert.service not in incident.services:
            incident.services.add(alert.service)
            self._open.setdefault((scope, alert.service), set()).add(incident.id)
        self.assignments.append(incident.id)
        return incident.id

    def extend(self, alerts: Iterable[Alert]) -> None:
        for alert in alerts:
            self.add(alert)

    def _merge(self, ids: list[int]) -> CorrelatedIncident:
        survivor = self.incidents[ids[0]]  # the oldest keeps its id
        for other_id in ids[1:]:
            other = self.incidents.pop(other_id)
            self._active.discard(other_id)
            survivor.alerts += other.alerts
            survivor.fingerprints |= other.fingerprints
            survivor.opened_at = min(survivor.opened_at, other.opened_at)
            survivor.last_at = max(survivor.last_at, other.last_at)
            survivor.merged_from.append(other_id)
            for service in other.services:
                ids_for = self._open.setdefault((other.scope, service), set())
                ids_for.discard(other_id)
                ids_for.add(survivor.id)
            survivor.services |= other.services
            for service, seen in other.service_last.items():
                mine = survivor.service_last.get(service)
                survivor.service_last[service] = max(mine, seen) if mine else seen
            self._alias[other_id] = survivor.id
        return survivor

    def _advance(self, now: datetime) -> None:
        """Close incidents that went quiet; keeps the index small during long storms."""
        if self._clock is not None and now <= self._clock:
            return
        self._clock = now
        for incident_id in sorted(self._active):
            incident = self.incidents[incident_id]
            if now - incident.last_at > self.window:
                incident.closed = True
                self._active.discard(incident_id)
                for service in incident.services:
                    ids = self._open.get((incident.scope, service))
                    if ids is not None:
                        ids.discard(incident.id)

    def incident_of(self, index: int) -> int:
        """The final incident of the index-th ingested alert."""
        return self.resolve(self.assignments[index])


@dataclass(frozen=True)
class CorrelationReport:
    alerts: int
    incidents: int
    compression: float  # alerts per incident
    purity: float  # share of alerts in an incident whose majority failure is theirs
    fragmentation: float  # incidents per true failure (1.0 is ideal)

    def to_json(self) -> dict[str, float | int]:
        return {
            "alerts": self.alerts,
            "incidents": self.incidents,
            "compression": round(self.compression, 2),
            "purity": round(self.purity, 4),
            "fragmentation": round(self.fragmentation, 3),
        }


def score_correlation(correlator: Correlator, truth: Sequence[str]) -> CorrelationReport:
    """Compare the correlator's grouping with the true failure of each ingested alert."""
    if len(truth) != len(correlator.assignments):
        raise ValueError(f"{len(truth)} labels for {len(correlator.assignments)} alerts")
    groups: dict[int, dict[str, int]] = {}
    for index, label in enumerate(truth):
        counts = groups.setdefault(correlator.incident_of(index), {})
        counts[label] = counts.get(label, 0) + 1
    majority = sum(max(counts.values()) for counts in groups.values())
    failures: dict[str, set[int]] = {}
    for index, label in enumerate(truth):
        failures.setdefault(label, set()).add(correlator.incident_of(index))
    n = len(truth)
    return CorrelationReport(
        alerts=n,
        incidents=len(groups),
        compression=n / len(groups) if groups else 0.0,
        purity=majority / n if n else 1.0,
        fragmentation=sum(len(v) for v in failures.values()) / len(failures) if failures else 0.0,
    )
