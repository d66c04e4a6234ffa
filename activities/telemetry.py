"""Telemetry activity: metrics from Prometheus's HTTP API (and, when configured, traces from
Jaeger or Tempo and logs from Loki or Elasticsearch/OpenSearch), ranked over the topology.

`gather_telemetry` asks Prometheus (`/api/v1/query` as a probe, `/api/v1/query_range`
per metric kind) about the incident's services and what they depend on, for a normal
period before the incident and for the incident itself, then ranks root-cause candidates
(rca.ranking) with the evidence attached.

Prometheus, or a trace or log store, being down, slow or refusing a query never fails the
activity: the result says `unavailable` or `partial`, lowers `confidence`, records why, and
still ranks from the topology and the alerts. Diagnosis goes on; it just knows less. The
clients are `integrations.prometheus`, `integrations.traces` and `integrations.logs`; their
errors are mapped to the result here, never raised to the workflow.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from string import Template
from typing import Any

import httpx
from temporalio import activity

from integrations.logs import ElasticsearchSource, LogSource, LogSourceError, LokiSource
from integrations.prometheus import (
    DEFAULT_QUERIES,
    PROBE_QUERY,
    PrometheusClient,
    PrometheusError,
    public_url,
    services_regex,
)
from integrations.traces import JaegerSource, TempoSource, TraceSource, TraceSourceError
from models.agents import Evidence
from models.rca import (
    LEAD_IN_SECONDS,
    MetricSeries,
    Symptom,
    TelemetryInput,
    TelemetryResult,
    TelemetryStatus,
)
from rca.logmining import mine_logs
from rca.ranking import rank_root_causes, score_series
from rca.series import Kind, Metrics, Point, metric_info
from rca.signals import LogPairStat, LogStat, TraceStat, with_trace_edges
from rca.spans import aggregate_spans
from rca.topology import Topology
from runtime.settings import Settings

logger = logging.getLogger("runtime.tracing")

MAX_SERVICES = 60
MAX_POINTS = 240  # per series: enough for a robust baseline, small enough for one payload
MAX_EVIDENCE = 40
CONFIDENCE: dict[str, float] = {"ok": 1.0, "partial": 0.7, "unavailable": 0.4}
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@dataclass(frozen=True)
class TelemetryConfig:
    prometheus_url: str
    timeout_seconds: float = 10.0
    queries: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_QUERIES))
    service_label: str = "service"
    rate_window: str = "5m"
    normal_seconds: float = 3600.0
    normal_gap_seconds: float = 300.0
    lead_in_seconds: float = LEAD_IN_SECONDS

    def __post_init__(self) -> None:
        if not _LABEL.match(self.service_label):
            raise ValueError(
                f"prometheus_service_label {self.service_label!r} is not a Prometheus label name"
            )
        # A name diagnosis cannot read is still gathered and scored, but no latency, error or
        # availability rule reads it: say so once, at start, not silently on every incident.
        unread = sorted(name for name in self.queries if metric_info(name).kind == Kind.OTHER)
        if unread:
            logger.warning(
                "prometheus_queries: %s read as no known kind (latency, errors, availability, "
                "requests, cpu, memory, saturation); name them like latency_p99, errors_avg or "
                "ResponseTimeP99(ms) for diagnosis to use them as such",
                ", ".join(unread),
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> TelemetryConfig:
        return cls(
            prometheus_url=settings.prometheus_url,
            timeout_seconds=settings.prometheus_timeout_seconds,
            queries=dict(settings.prometheus_queries or DEFAULT_QUERIES),
            service_label=settings.prometheus_service_label,
            rate_window=settings.prometheus_rate_window,
            normal_seconds=settings.telemetry_normal_seconds,
            normal_gap_seconds=settings.telemetry_normal_gap_seconds,
            lead_in_seconds=settings.telemetry_lead_in_seconds,
        )


def incident_windows(
    start: float, end: float, *, lead_in: float, gap: float, normal_seconds: float
) -> tuple[tuple[float, float], tuple[float, float]]:
    """The normal period and the incident window, in unix seconds, for an incident whose first
    alert started at `start`. The incident window opens `lead_in` before it: an alert fires once
    its condition has held for its rule's `for:` (Prometheus sends that moment as startsAt), so
    the fault's onset, and the minutes just before it, lie before the alert. Those minutes let
    the ranking see what was anomalous already and what turned anomalous with the symptom. The
    normal period ends `gap` before the window opens."""
    opened = start - lead_in
    return (opened - gap - normal_seconds, opened - gap), (opened, max(end, start + 1.0))


def _value(raw: Any) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return math.nan
    return value if math.isfinite(value) else math.nan


class TelemetryActivities:
    def __init__(
        self,
        http: httpx.AsyncClient,
        config: TelemetryConfig,
        topology: Topology | None = None,
        *,
        traces: TraceSource | None = None,
        logs: LogSource | None = None,
        signals_normal_seconds: float = 900.0,
    ) -> None:
        self._config = config
        self._http = http
        self._prometheus = PrometheusClient(http, config.prometheus_url, config.timeout_seconds)
        self._topology = topology
        self._traces = traces
        self._logs = logs
        self._signals_normal = signals_normal_seconds

    async def _signals(
        self, services: list[str], normal: tuple[float, float], anomalous: tuple[float, float]
    ) -> tuple[list[TraceStat], list[LogStat], list[LogPairStat], tuple[float, float], list[str]]:
        """Traces and logs for the last part of the normal period and the incident, aggregated
        by the same code as the datasets (rca.spans, rca.logmining). A store that fails is a
        reason, not an error."""
        base = (max(normal[0], normal[1] - self._signals_normal), normal[1])
        reasons: list[str] = []
        traces: list[TraceStat] = []
        logs: list[LogStat] = []
        log_pairs: list[LogPairStat] = []
        if self._traces is not None:
            try:
                before, during = await asyncio.gather(
                    self._traces.spans(services, *base), self._traces.spans(services, *anomalous)
                )
                traces = aggregate_spans(before + during)
            except TraceSourceError as exc:
                reasons.append(f"traces from {self._traces.name} unavailable ({exc}); ranked without them")
        if self._logs is not None:
            try:
                before_lines, during_lines = await asyncio.gather(
                    self._logs.lines(services, *base), self._logs.lines(services, *anomalous)
                )
                # Drain is CPU work: off the event loop.
                logs, log_pairs = await asyncio.to_thread(mine_logs, before_lines, during_lines)
            except LogSourceError as exc:
                reasons.append(f"logs from {self._logs.name} unavailable ({exc}); ranked without them")
        return traces, logs, log_pairs, base, reasons

    async def aclose(self) -> None:
        """Close the Prometheus connection pool (the worker does, when it stops)."""
        await self._http.aclose()

    def scope(self, input: TelemetryInput) -> list[str]:
        """The incident's services, then what they depend on (nearest first), then their callers."""
        ordered = list(dict.fromkeys(input.services))
        topo = self._topology
        if input.expand_topology and topo is not None:
            depth: dict[str, int] = {}
            for service in ordered:
                for other, hops in topo.depth_from(service).items():
                    depth[other] = min(hops, depth.get(other, hops))
            ordered += sorted((s for s in depth if s not in ordered), key=lambda s: (depth[s], s))
            callers = sorted({c for s in input.services for c in topo.callers(s)} - set(ordered))
            ordered += callers
        return ordered[:MAX_SERVICES]

    @activity.defn
    async def gather_telemetry(self, input: TelemetryInput) -> TelemetryResult:
        """Query Prometheus for the incident's services and rank root causes; never raises for an outage."""
        config = self._config
        services = self.scope(input)
        start = input.incident_start.timestamp()
        normal_len = input.normal_seconds or config.normal_seconds
        gap = config.normal_gap_seconds if input.normal_gap_seconds is None else input.normal_gap_seconds
        lead_in = config.lead_in_seconds if input.lead_in_seconds is None else input.lead_in_seconds
        normal, anomalous = incident_windows(
            start, input.incident_end.timestamp(), lead_in=lead_in, gap=gap, normal_seconds=normal_len
        )
        end = anomalous[1]
        step = input.step_seconds or max(1.0, math.ceil((end - normal[0]) / MAX_POINTS))
        symptom = input.symptom or Symptom(service=input.services[0])
        values = {
            "label": config.service_label,
            "services": services_regex(services),
            "window": config.rate_window,
        }
        reasons: list[str] = []
        metrics: dict[str, dict[str, list[Point]]] = {}
        status: TelemetryStatus = "ok"
        url = public_url(config.prometheus_url)

        try:
            probe = await self._prometheus.query(Template(PROBE_QUERY).safe_substitute(values), end)
        except PrometheusError as exc:
            probe = None
            status = "unavailable"
            reasons.append(
                f"Prometheus at {url} did not answer ({exc}); diagnosis from topology and alerts only"
            )
            logger.warning("incident %s: Prometheus unavailable: %s", input.incident_id, exc)

        if probe is not None:
            names = sorted(config.queries)
            outcomes = await asyncio.gather(
                *(
                    self._prometheus.query_range(
                        Template(config.queries[name]).safe_substitute(values), normal[0], end, step
                    )
                    for name in names
                ),
                return_exceptions=True,
            )
            for name, outcome in zip(names, outcomes, strict=True):
                if isinstance(outcome, PrometheusError):
                    status = "partial"
                    reasons.append(f"query for {name} failed: {outcome}")
                    continue
                if isinstance(outcome, BaseException):
                    raise outcome
                for series in outcome:
                    service = series.get("metric", {}).get(config.service_label)
                    if service not in services:
                        continue
                    points = [(float(t), _value(v)) for t, v in series.get("values", [])]
                    metrics.setdefault(service, {})[name] = points
            missing = [s for s in input.services if s not in metrics]
            if not metrics:
                status = "partial"
                reasons.append(f"Prometheus at {url} has no data for {', '.join(services[:10])}")
            elif missing:
                reasons.append(f"no metrics for {', '.join(missing[:10])}")

        traces, logs, log_pairs, signals_normal, signal_reasons = await self._signals(
            services, normal, anomalous
        )
        if signal_reasons:
            reasons += signal_reasons
            status = "partial" if status == "ok" else status
        topology = self._topology
        if traces and (topology is None or topology.graph.number_of_edges() == 0):
            topology = with_trace_edges(topology or Topology([]), traces)  # no CMDB: the traces' graph
        candidates = rank_root_causes(
            topology,
            metrics,
            symptom,
            normal,
            anomalous,
            alerts=input.alerts,
            limit=5,
            traces=traces,
            logs=logs,
            log_pairs=log_pairs,
            trace_normal=signals_normal,
            log_normal=signals_normal,
        )
        evidence = self._evidence(metrics, normal, anomalous, input.services, url, status, reasons)
        logger.info(
            "incident %s: telemetry %s for %d services, %d series; top candidate %s",
            input.incident_id,
            status,
            len(services),
            sum(len(m) for m in metrics.values()),
            candidates[0].service if candidates else "-",
        )
        return TelemetryResult(
            status=status,
            confidence=CONFIDENCE[status] * (0.7 if status == "partial" and not metrics else 1.0),
            reasons=reasons,
            prometheus_url=url,
            services=services,
            normal=normal,
            anomalous=anomalous,
            series=[
                MetricSeries(service=s, metric=m, points=p[-MAX_POINTS:])
                for s, per in sorted(metrics.items())
                if s in input.services
                for m, p in sorted(per.items())
            ]
            if input.include_series
            else [],
            evidence=evidence,
            candidates=candidates,
        )

    def _evidence(
        self,
        metrics: Metrics,
        normal: tuple[float, float],
        anomalous: tuple[float, float],
        incident_services: list[str],
        url: str,
        status: str,
        reasons: list[str],
    ) -> list[Evidence]:
        if status == "unavailable":
            return [
                Evidence(
                    source="prometheus",
                    service=service,
                    kind="telemetry_unavailable",
                    summary=(reasons[0] if reasons else f"Prometheus at {url} did not answer")[:2000],
                    score=0.0,
                )
                for service in incident_services
            ]
        found = []
        for service, per in metrics.items():
            for metric, points in per.items():
                anomaly = score_series(service, metric, points, normal, anomalous)
                if anomaly is None:
                    continue
                if anomaly.belief >= 0.5 or service in incident_services:
                    found.append(anomaly)
        found.sort(key=lambda a: (a.service not in incident_services, -a.belief, -a.z, a.service, a.metric))
        evidence = [
            Evidence(
                source="prometheus",
                service=a.service,
                kind="anomaly" if a.belief >= 0.5 else "normal",
                summary=a.summary(),
                value=a.incident_value,
                score=round(a.belief, 3),
            )
            for a in found[:MAX_EVIDENCE]
        ]
        evidence += [
            Evidence(source="prometheus", service="*", kind="telemetry_degraded", summary=reason[:2000])
            for reason in reasons
        ]
        return evidence


def build_telemetry_activities(
    settings: Settings, http: httpx.AsyncClient | None = None
) -> TelemetryActivities:
    """Activities from settings; an invalid topology file raises TopologyError naming it."""
    topology = Topology.load(settings.topology_file) if settings.topology_file else None
    client = http or httpx.AsyncClient()
    timeout = settings.signals_timeout_seconds
    traces: TraceSource | None = None
    if settings.trace_source == "jaeger":
        traces = JaegerSource(client, settings.trace_url, timeout)
    elif settings.trace_source == "tempo":
        traces = TempoSource(client, settings.trace_url, timeout)
    logs: LogSource | None = None
    if settings.log_source == "loki":
        logs = LokiSource(client, settings.log_url, timeout, settings.log_service_label)
    elif settings.log_source == "opensearch":
        logs = ElasticsearchSource(
            client, settings.log_url, settings.log_index, timeout, service_field=settings.log_service_label
        )
    return TelemetryActivities(
        client,
        TelemetryConfig.from_settings(settings),
        topology,
        traces=traces,
        logs=logs,
        signals_normal_seconds=settings.signals_normal_seconds,
    )
