"""Convert the public Nezha dataset (IntelligentDDS/Nezha, MIT) into Firebreak scenarios.

Tooling, not runtime: the worker never imports this. Usage:

    python -m tools.nezha_convert RAW_DIR datasets/nezha

RAW_DIR is a checkout of https://github.com/IntelligentDDS/Nezha (kept outside the repo).
Files missing from RAW_DIR (the mirror available here lacks files over 4 MiB: most
OnlineBoutique logs and about 40% of its trace minutes) are skipped and each scenario
records in `sources.json` which signals it has.

Log lines keep their `TraceID`, so each case with logs also gets `logpairs.csv.gz` (a
service's consecutive templates within one trace, rca.logmining).

One scenario per injected fault. Ground truth is the fault list's injected pod mapped to its
service (the pod name without its ReplicaSet and pod hash), never anything a ranker says.

Times: the fault lists' `inject_time` is read as UTC, the clock of the telemetry. For
OnlineBoutique it equals `inject_timestamp`; for TrainTicket `inject_timestamp` is 7h59m
earlier than the telemetry's own clock (a time-zone slip in the dataset), so it is not used.
Metric rows are timed by their `Time` text for the same reason (see `_row_time`).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import logging
import math
import re
import shutil
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from models.rca import LogLine, Span
from rca.logmining import LogMiner
from rca.spans import aggregate_spans

logger = logging.getLogger("nezha_convert")

SYSTEMS = {
    "online-boutique": {"days": ["2022-08-22", "2022-08-23"], "entry": "frontend"},
    "train-ticket": {"days": ["2023-01-29", "2023-01-30"], "entry": "ts-ui-dashboard"},
}
# Nezha's own fault-free minute per day (main.py's normal_time list).
NORMAL_MINUTE = {
    "2022-08-22": "03_51",
    "2022-08-23": "17_00",
    "2023-01-29": "08_50",
    "2023-01-30": "11_39",
}
BEFORE = 30 * 60  # metrics kept before the fault: the normal period and a -15 min shift
AFTER = 20 * 60  # metrics kept after it: room for a +15 min shift
NORMAL_GAP = 60  # the normal period ends this long before the fault
INCIDENT = 180  # the incident window: the fault minute and the two after it (Nezha's files)
WINDOW = 30  # trace and log aggregation step, seconds

# Nezha column -> Firebreak metric name (<kind>_<stat>) and a scale to SI / ratios.
METRIC_COLUMNS = {
    "CpuUsageRate(%)": ("cpu_avg", 0.01),
    "MemoryUsageRate(%)": ("memory_avg", 0.01),
    "PodServerLatencyP90(s)": ("latency_p90", 1.0),
    "PodServerLatencyP99(s)": ("latency_p99", 1.0),
    "PodClientLatencyP90(s)": ("clientlatency_p90", 1.0),
    "PodWorkload(Ops)": ("requests_avg", 1.0),
    "PodSuccessRate(%)": ("availability_avg", 0.01),
    "NetworkReceiveBytes": ("netrx_avg", 1.0),
    "NetworkTransmitBytes": ("nettx_avg", 1.0),
}
_TRACE_NOISE = re.compile(r"(TraceID|SpanID):\s*\S+")


def service_of(pod: str) -> str:
    """`cartservice-579f59597d-wc2lz` -> `cartservice` (Deployment pod: name-rshash-podhash)."""
    parts = pod.split("-")
    return "-".join(parts[:-2]) if len(parts) > 2 else pod


def _utc(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()


def _g(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.4g}"


# --- faults ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    day: str
    at: float
    pod: str
    service: str
    kind: str

    @property
    def name(self) -> str:
        stamp = datetime.fromtimestamp(self.at, UTC).strftime("%Y-%m-%dT%H-%M-%S")
        return f"{stamp}-{self.service}-{self.kind}"


def load_faults(raw: Path, day: str) -> list[Fault]:
    data = json.loads((raw / "rca_data" / day / f"{day}-fault_list.json").read_text())
    out: list[Fault] = []
    for items in data.values():
        for item in items:
            out.append(
                Fault(
                    day=day,
                    at=_utc(item["inject_time"]),
                    pod=item["inject_pod"],
                    service=service_of(item["inject_pod"]),
                    kind=item["inject_type"],
                )
            )
    return sorted(out, key=lambda f: f.at)


# --- metrics -----------------------------------------------------------------------------------


def _row_time(row: dict[str, str]) -> float:
    """The row's time from its `Time` text: one file (adservice, 2022-08-22) has `TimeStamp`
    values 200,000,000 s in the future while its `Time` column is right."""
    text = (row.get("Time") or "")[:19]
    try:
        return _utc(text)
    except ValueError:
        return float(row["TimeStamp"])


def load_day_metrics(raw: Path, day: str) -> dict[str, list[tuple[float, dict[str, float]]]]:
    """Per service, the day's rows (unix seconds, Firebreak metric -> value)."""
    out: dict[str, list[tuple[float, dict[str, float]]]] = {}
    for path in sorted((raw / "rca_data" / day / "metric").glob("*_metric.csv")):
        rows: list[tuple[float, dict[str, float]]] = []
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                values: dict[str, float] = {}
                for column, (name, scale) in METRIC_COLUMNS.items():
                    text = (row.get(column) or "").strip()
                    try:
                        values[name] = float(text) * scale
                    except ValueError:
                        values[name] = math.nan
                rows.append((_row_time(row), values))
        out[service_of(path.name.removesuffix("_metric.csv"))] = rows
    return out


# --- traces ------------------------------------------------------------------------------------


def _read_csv(path: Path) -> Iterator[dict[str, str]]:
    # Some Nezha files carry NUL bytes or odd encodings in log bodies.
    text = path.read_bytes().replace(b"\0", b"").decode("utf-8", errors="replace")
    yield from csv.DictReader(io.StringIO(text))


def read_spans(paths: Iterable[Path]) -> list[Span]:
    out: list[Span] = []
    for path in paths:
        for row in _read_csv(path):
            try:
                out.append(
                    Span(
                        trace_id=row["TraceID"],
                        span_id=row["SpanID"],
                        parent_id=row["ParentID"],
                        service=service_of(row["PodName"]),
                        start_ns=int(row["StartTimeUnixNano"]),
                        end_ns=int(row["EndTimeUnixNano"]),
                    )
                )
            except (KeyError, ValueError):
                continue
    return out


def trace_rows(paths: Iterable[Path]) -> list[list[str]]:
    """Per-window, per caller->callee rows, aggregated by the runtime's own code (rca.spans)."""
    return [
        [
            str(int(s.timestamp)),
            s.caller,
            s.callee,
            str(s.calls),
            "" if s.errors is None else str(s.errors),  # Nezha's spans carry no status
            *(_g(v) for v in (s.latency_p50, s.latency_p90, s.latency_p99, s.self_p50, s.self_p90)),
            _g(s.gap_p50),
            _g(s.gap_p90),
        ]
        for s in aggregate_spans(read_spans(paths), WINDOW)
    ]


TRACE_HEADER = [
    "timestamp", "caller", "callee", "calls", "errors",
    "latency_p50", "latency_p90", "latency_p99", "self_p50", "self_p90", "gap_p50", "gap_p90",
]  # fmt: skip


# --- logs --------------------------------------------------------------------------------------


def _log_text(raw_field: str) -> str:
    try:
        body = json.loads(raw_field)
    except json.JSONDecodeError:
        return raw_field.strip()
    if isinstance(body, dict):
        return str(body.get("log") or body.get("message") or body).strip()
    return str(body).strip()


def read_log_lines(paths: Iterable[Path]) -> list[LogLine]:
    out: list[LogLine] = []
    for path in paths:
        for row in _read_csv(path):
            try:
                ts = int(row["TimeUnixNano"]) / 1e9
                service = service_of(row["PodName"])
            except (KeyError, ValueError):
                continue
            text = _TRACE_NOISE.sub("", _log_text(row.get("Log", "")))
            out.append(LogLine(ts, service, text, trace_id=(row.get("TraceID") or "").strip()))
    return out


def log_rows(
    miner: LogMiner, paths: Iterable[Path], *, learn: bool
) -> tuple[list[list[str]], list[list[str]]]:
    """Per window, per service, per Drain template; and per consecutive pair of a service's
    templates within a trace (rca.logmining, as at run time)."""
    stats, pairs = miner.mine(read_log_lines(paths), learn=learn, window_seconds=WINDOW)
    return (
        [[str(int(s.timestamp)), s.service, s.template_id, s.level, str(s.count), s.template] for s in stats],
        [[str(int(p.timestamp)), p.service, p.template_id, p.next_id, str(p.count)] for p in pairs],
    )


LOG_HEADER = ["timestamp", "service", "template_id", "level", "count", "template"]
PAIR_HEADER = ["timestamp", "service", "template_id", "next_id", "count"]


# --- writing -----------------------------------------------------------------------------------


def _write_gz(path: Path, header: list[str], rows: Iterable[list[str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    # mtime=0: the same data gives the same bytes, so re-running the converter is a no-op in git.
    with gzip.GzipFile(path, "wb", mtime=0, compresslevel=9) as handle:
        handle.write(buffer.getvalue().encode())


def _minute_files(directory: Path, suffix: str, start: float, end: float) -> list[Path]:
    """Nezha's per-minute files (HH_MM_<suffix>.csv, named by the minute they end in) in [start, end]."""
    out: list[Path] = []
    if not directory.is_dir():
        return out
    for path in sorted(directory.glob(f"*_{suffix}.csv")):
        hh, mm = path.name.split("_")[:2]
        day = directory.parent.name
        t = _utc(f"{day} {hh}:{mm}:00")
        if start - 60 <= t <= end + 60:
            out.append(path)
    return out


def _baseline_dir(raw: Path, system: str, day: str, signal: str) -> tuple[str, Path] | None:
    """The fault-free minute for a signal: this day's, else the other day's of the same system."""
    for other in [day] + [d for d in SYSTEMS[system]["days"] if d != day]:
        path = raw / "construct_data" / other / signal / f"{NORMAL_MINUTE[other]}_{signal}.csv"
        if path.is_file():
            return other, path
    return None


def convert_system(raw: Path, out: Path, system: str) -> int:
    spec = SYSTEMS[system]
    target = out / system
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    count = 0
    for day in spec["days"]:
        metrics = load_day_metrics(raw, day)
        services = sorted(metrics)
        faults = load_faults(raw, day)
        topology = _topology(raw, day, services)
        base_traces = _baseline_dir(raw, system, day, "trace")
        base_logs = _baseline_dir(raw, system, day, "log")
        trace_base_rows = trace_rows([base_traces[1]]) if base_traces else []
        miner = LogMiner()
        log_base_rows, pair_base_rows = log_rows(miner, [base_logs[1]], learn=True) if base_logs else ([], [])
        state = miner.snapshot()  # the normal-period model, restored for every fault
        for fault in faults:
            if fault.service not in services:
                logger.warning("%s: %s has no metrics; skipped", fault.name, fault.service)
                continue
            case = target / fault.name
            case.mkdir()
            rows: list[list[str]] = []
            for service in services:
                for ts, values in metrics[service]:
                    if fault.at - BEFORE <= ts <= fault.at + AFTER:
                        rows.extend([str(int(ts)), service, name, _g(v)] for name, v in values.items())
            _write_gz(case / "metrics.csv.gz", ["timestamp", "service", "metric", "value"], rows)
            (case / "topology.yaml").write_text(yaml.safe_dump(topology, sort_keys=True))
            sources: dict[str, Any] = {
                "dataset": "nezha",
                "system": system,
                "day": day,
                "signals": ["metrics"],
            }
            incident: dict[str, Any] = {
                "symptom": {"service": spec["entry"], "metric": "latency_p90"},
                "normal": [fault.at - BEFORE, fault.at - NORMAL_GAP],
                "anomalous": [fault.at, fault.at + INCIDENT],
                "baselines": {},
            }
            trace_files = _minute_files(
                raw / "rca_data" / day / "trace", "trace", fault.at, fault.at + INCIDENT
            )
            if trace_files and base_traces:
                _write_gz(case / "traces.csv.gz", TRACE_HEADER, trace_base_rows + trace_rows(trace_files))
                incident["baselines"]["traces"] = _minute_window(
                    base_traces[0], NORMAL_MINUTE[base_traces[0]]
                )
                sources["signals"].append("traces")
                sources["trace_files"] = [p.name for p in trace_files]
            log_files = _minute_files(raw / "rca_data" / day / "log", "log", fault.at, fault.at + INCIDENT)
            if log_files and base_logs:
                miner.restore(state)
                incident_rows, incident_pairs = log_rows(miner, log_files, learn=False)
                _write_gz(case / "logs.csv.gz", LOG_HEADER, log_base_rows + incident_rows)
                if pair_base_rows or incident_pairs:
                    _write_gz(case / "logpairs.csv.gz", PAIR_HEADER, pair_base_rows + incident_pairs)
                incident["baselines"]["logs"] = _minute_window(base_logs[0], NORMAL_MINUTE[base_logs[0]])
                sources["signals"].append("logs")
                sources["log_files"] = [p.name for p in log_files]
            (case / "incident.json").write_text(json.dumps(incident, indent=1) + "\n")
            (case / "sources.json").write_text(json.dumps(sources, indent=1) + "\n")
            truth = {
                "root_cause": fault.service,
                "fault": fault.kind,
                "pod": fault.pod,
                "injected_at": fault.at,
            }
            (case / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
            count += 1
            logger.info("%s/%s: %s", system, fault.name, ",".join(sources["signals"]))
    return count


def _minute_window(day: str, minute: str) -> list[float]:
    hh, mm = minute.split("_")
    end = _utc(f"{day} {hh}:{mm}:00") + 60
    return [end - 120, end]  # the file named HH_MM holds about the minute before HH_MM plus a few seconds


def _topology(raw: Path, day: str, services: list[str]) -> dict[str, Any]:
    """The dataset's own dependency list where it ships one (OnlineBoutique); else services only,
    and diagnosis derives the call graph from the traces."""
    deps: dict[str, set[str]] = {s: set() for s in services}
    path = raw / "rca_data" / day / "metric" / "dependency.csv"
    if path.is_file():
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                src, dst = row["Source"].strip(), row["Target"].strip()
                deps.setdefault(src, set())
                deps.setdefault(dst, set())
                if src != dst:
                    deps[src].add(dst)
    return {
        "allow_cycles": True,
        "services": {s: {"depends_on": sorted(d)} if d else {} for s, d in sorted(deps.items())},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("raw", type=Path, help="a checkout of IntelligentDDS/Nezha")
    parser.add_argument("out", type=Path, help="where to write <system>/<case>/ (e.g. datasets/nezha)")
    parser.add_argument("--system", choices=sorted(SYSTEMS), action="append")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not (args.raw / "rca_data").is_dir():
        parser.error(f"raw: {args.raw} has no rca_data/ (expected a checkout of IntelligentDDS/Nezha)")
    for system in args.system or sorted(SYSTEMS):
        n = convert_system(args.raw, args.out, system)
        logger.info("%s: %d scenarios", system, n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
