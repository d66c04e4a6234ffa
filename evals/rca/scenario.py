"""A diagnosis scenario on disk, as the evaluation harness and `firebreak simulate` share it.

    topology.yaml   optional: services with depends_on (edges point from caller to callee);
                    without it the services are those with data, the edges the traces' calls
    metrics.csv     timestamp,service,metric,value (normal period and incident; metric names
                    `<kind>_<stat>` as in rca.series, or an exporter's own, read word by word:
                    `ResponseTimeP90(ms)`; latency in seconds unless the name says ms;
                    availability and errors ratios unless the name says percent)
    incident.json   {"symptom": {"service": .., "metric": ..}, "normal": [t0, t1], "anomalous": [t2, t3],
                     "baselines": {"traces": [t0, t1], "logs": [t0, t1]}, "alert_at": t}
                    (baselines optional; alert_at optional: when the first alert fired, for the
                    robustness variants that open the window where the live path would)
    traces.csv      optional, per window and caller->callee edge:
                    timestamp,caller,callee,calls,errors,latency_p50,latency_p90,latency_p99,self_p50,self_p90
                    (timestamp = window start; caller "" = requests entering the system; errors
                    empty when the spans carry no status; latency = the callee's invocation
                    duration, self = that minus time spent in the services it called; seconds)
    logs.csv        optional, per window, service and log template (Drain, trained on the normal window):
                    timestamp,service,template_id,level,count,template   (level: error | warn | info)
    logpairs.csv    optional, with logs.csv: per window (of the first line), service and pair of
                    its templates that followed each other within one trace (next_id "END":
                    the service's last line in that trace):
                    timestamp,service,template_id,next_id,count
    alerts.json     optional: Alertmanager alerts seen during the incident
    sources.json    optional: provenance (dataset, signals present); never read by ranking
    truth.json      {"root_cause": "<service>", "fault": "<kind>"}  (read only by the evaluator)

Any of the CSV files may be gzipped (`metrics.csv.gz`). Times are unix seconds (or epoch
milli-, micro- or nanoseconds, told apart by size) or ISO-8601 strings (UTC when they name no
zone). `baselines` gives a signal its own normal window when its fault-free data was recorded
elsewhere than the metrics' normal period (Nezha's traces and logs); otherwise each
signal uses `normal`. When topology.yaml lists services without any edge and traces are
present, the call graph is taken from the traces.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from models.alert import Alert, AlertmanagerAlert
from models.rca import Symptom
from rca.series import load_metrics_csv, parse_time
from rca.signals import (
    LogPairStat,
    LogStat,
    SignalFileError,
    TraceStat,
    find_file,
    load_log_pairs_csv,
    load_logs_csv,
    load_traces_csv,
    with_trace_edges,
)
from rca.topology import Topology


class ScenarioError(ValueError):
    """A scenario directory is incomplete or malformed; the message names the file."""


@dataclass
class Scenario:
    name: str
    path: Path
    topology: Topology
    metrics: dict[str, dict[str, list[tuple[float, float]]]]
    symptom: Symptom
    normal: tuple[float, float]
    anomalous: tuple[float, float]
    alerts: list[Alert] = field(default_factory=list)
    traces: list[TraceStat] = field(default_factory=list)
    logs: list[LogStat] = field(default_factory=list)
    log_pairs: list[LogPairStat] = field(default_factory=list)
    baselines: dict[str, tuple[float, float]] = field(default_factory=dict)
    alert_at: float | None = None  # when the first alert fired, where the dataset records it

    def baseline(self, signal: str) -> tuple[float, float]:
        return self.baselines.get(signal, self.normal)


@dataclass(frozen=True)
class Truth:
    root_cause: str
    fault: str


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"{path}: not valid JSON: {exc}") from None


def _window(raw: Any, path: Path, key: str) -> tuple[float, float]:
    if not isinstance(raw, list | tuple) or len(raw) != 2:
        raise ScenarioError(f"{path}: {key} must be [start, end]")
    try:
        start, end = (parse_time(v) for v in raw)
    except (ValueError, TypeError) as exc:
        raise ScenarioError(f"{path}: {key}: {exc}") from None
    if end < start:
        raise ScenarioError(f"{path}: {key} ends before it starts")
    return start, end


def parse_alerts(raw: Any, source: str) -> list[Alert]:
    """Alerts from a webhook payload, a list of webhook alerts, or Alertmanager API v2 alerts."""
    items = raw.get("alerts") if isinstance(raw, dict) else raw
    if not isinstance(items, list):
        raise ScenarioError(f"{source}: expected a list of alerts or a webhook payload")
    alerts: list[Alert] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise ScenarioError(f"{source}: alerts[{index}] is not an object")
        status = item.get("status", "firing")
        if isinstance(status, dict):  # API v2: {"state": "active" | "suppressed" | "unprocessed"}
            status = "firing" if status.get("state", "active") != "resolved" else "resolved"
        try:
            alerts.append(AlertmanagerAlert.model_validate({**item, "status": status}).to_alert())
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ScenarioError(f"{source}: alerts[{index}].{where}: {first['msg']}") from None
    return alerts


def load_scenario(path: Path) -> Scenario:
    """Everything the ranking may see; never the truth."""
    if not path.is_dir():
        raise ScenarioError(f"{path}: not a scenario directory")
    topology_path = path / "topology.yaml"
    topology = Topology.load(topology_path) if topology_path.exists() else None
    incident_path = path / "incident.json"
    incident = _read_json(incident_path)
    if not isinstance(incident, dict):
        raise ScenarioError(f"{incident_path}: expected an object")
    try:
        symptom = Symptom.model_validate(incident.get("symptom"))
    except ValidationError as exc:
        raise ScenarioError(f"{incident_path}: symptom: {exc.errors(include_url=False)[0]['msg']}") from None
    try:
        metrics = load_metrics_csv(find_file(path, "metrics") or path / "metrics.csv")
        traces_path, logs_path = find_file(path, "traces"), find_file(path, "logs")
        traces = load_traces_csv(traces_path) if traces_path else []
        logs = load_logs_csv(logs_path) if logs_path else []
        pairs_path = find_file(path, "logpairs")
        log_pairs = load_log_pairs_csv(pairs_path) if pairs_path else []
    except (ValueError, SignalFileError) as exc:
        raise ScenarioError(str(exc)) from None
    raw_baselines = incident.get("baselines") or {}
    if not isinstance(raw_baselines, dict):
        raise ScenarioError(f"{incident_path}: baselines must be an object of signal -> [start, end]")
    baselines = {
        str(k): _window(v, incident_path, f"baselines.{k}")
        for k, v in raw_baselines.items()
        if k in ("traces", "logs")
    }
    if topology is None:
        # No dependency graph known: the services are those with data (the traces, when
        # present, give the edges below); the ranking then leans on anomaly and signals alone.
        services = set(metrics) | {s.callee for s in traces} | {s.caller for s in traces if s.caller}
        topology = Topology.from_data({"services": {name: {} for name in sorted(services)}}, source=str(path))
    if traces and topology.graph.number_of_edges() == 0:
        topology = with_trace_edges(topology, traces)
    raw_alert_at = incident.get("alert_at")
    alert_at: float | None = None
    if raw_alert_at is not None:
        if isinstance(raw_alert_at, bool) or not isinstance(raw_alert_at, str | int | float):
            raise ScenarioError(f"{incident_path}: alert_at must be unix seconds or an ISO-8601 time")
        try:
            alert_at = parse_time(raw_alert_at)
        except ValueError as exc:
            raise ScenarioError(f"{incident_path}: alert_at: {exc}") from None
    alerts_path = path / "alerts.json"
    alerts = parse_alerts(_read_json(alerts_path), str(alerts_path)) if alerts_path.exists() else []
    return Scenario(
        name=path.name,
        path=path,
        topology=topology,
        metrics=metrics,
        symptom=symptom,
        normal=_window(incident.get("normal"), incident_path, "normal"),
        anomalous=_window(incident.get("anomalous"), incident_path, "anomalous"),
        alerts=alerts,
        traces=traces,
        logs=logs,
        log_pairs=log_pairs,
        baselines=baselines,
        alert_at=alert_at,
    )


def load_truth(path: Path) -> Truth:
    truth_path = path / "truth.json"
    raw = _read_json(truth_path)
    if not isinstance(raw, dict) or not isinstance(raw.get("root_cause"), str):
        raise ScenarioError(f'{truth_path}: expected {{"root_cause": "<service>"}}')
    fault = raw.get("fault") or raw.get("fault_kind") or raw.get("kind") or "unknown"
    return Truth(root_cause=raw["root_cause"], fault=str(fault))


def find_scenarios(paths: list[Path]) -> list[Path]:
    """Scenario directories named directly, or found one level below a named directory."""
    found: list[Path] = []
    for path in paths:
        if (path / "incident.json").is_file():
            found.append(path)
        elif path.is_dir():
            found.extend(sorted(p.parent for p in path.glob("*/incident.json")))
        else:
            raise ScenarioError(f"{path}: no such scenario directory")
    return found
