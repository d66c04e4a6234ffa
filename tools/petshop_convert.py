"""Convert the public PetShop dataset (amazon-science/petshop-root-cause-analysis) into Firebreak scenarios.

Tooling, not runtime: the worker never imports this. Usage:

    python -m tools.petshop_convert RAW_DIR datasets/petshop [--normal-hours 6]

RAW_DIR is a checkout of https://github.com/amazon-science/petshop-root-cause-analysis
(Hardt et al., *The PetShop Dataset — Finding Causes of Performance Issues across
Microservices*, arXiv:2311.04806), commit `1c5992dc46a02c988a027e2219036d59e8158a91`, kept
outside the repo. The dataset is licensed CC-BY-4.0 (`LICENSE_DATASET`; the code there is
Apache-2.0 and none of it is used here). It was measured on the AWS "one observability"
pet adoption application (41 components: ECS containers, Lambda functions, DynamoDB, SQS,
load balancers...) with CloudWatch / X-Ray metrics every 5 minutes, while performance issues
were injected (delays, error modes, a DynamoDB request flood).

Its `dataset/<traffic>/` holds `graph.csv` (the call graph as an adjacency matrix, caller
rows, callee columns), `noissue/metrics.csv` (about two days without an injected issue) and
`{train,test}/issue_<n>/` with `metrics.csv` (25 minutes around one issue) and `target.json`
(the alerting node and metric, the root-cause node, the command that injected it). The
metric files are wide, with four header rows: microservice, metric, statistic,
unix_timestamp. Traffic scenarios whose `noissue/metrics.csv` is absent are skipped with a
warning (the copy available here lacks files over 4 MiB: both temporal_traffic ones).

One scenario per issue, `<traffic>/<split>-<issue>/`. Ground truth is `target.json`'s
root-cause node (the dataset's own node names are the service names) and a fault kind read
from its injection command (`FAULTS`); nothing comes from a ranker. The symptom is the
target's node and metric. As the dataset's own evaluation does, each issue is compared with
the `noissue` recording: its last `--normal-hours` are the normal period, re-timed (values
untouched) to end one 5-minute step before the issue's first point, so the normal period
precedes the incident as in production; `sources.json` keeps the original times. Incident:
the issue file's whole span (its first two points usually precede the injection). Values
keep 5 significant digits; availability, a percentage in the dataset, becomes a ratio.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import logging
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tools.wide_csv import ConvertError, open_csv, timed_rows

logger = logging.getLogger("petshop_convert")

DATASET = "petshop"
STEP_SECONDS = 300  # CloudWatch period of every metric in the dataset
HEADER_ROWS = ("microservice", "metric", "statistic", "unix_timestamp")
KINDS = {"latency": "latency", "requests": "requests", "availability": "availability"}
STATS = {"Average": "avg", "p50": "p50", "p90": "p90", "p95": "p95", "p99": "p99", "Sum": "sum"}
# Substring of target.json's injection command -> fault kind (the dataset has no fault field).
FAULTS = {
    "/petstore/searchdelay": "delay",
    "/petstore/delaymode": "delay",
    "sleep(": "delay",  # a sleep in the status-updater Lambda's code, redeployed
    "/petstore/searcherrorpercent": "errors",
    "/petstore/petlisterrorpercent": "errors",
    "/petstore/errormode": "errors",
    "inject = true": "errors",  # the status-updater Lambda's error switch, redeployed
    "issue_dynamo_db_requests": "request_overload",
}


@dataclass(frozen=True)
class Series:
    """One metric file in the long format, with the times it covers."""

    times: list[float]
    rows: list[tuple[float, str, str, str]]  # (timestamp, service, metric, value)


def _metric_name(path: Path, column: int, kind: str, stat: str) -> str:
    if kind not in KINDS or stat not in STATS:
        raise ConvertError(
            f"{path}: column {column + 1}: metric {kind!r} / statistic {stat!r} is not one of "
            f"{sorted(KINDS)} / {sorted(STATS)}"
        )
    return f"{KINDS[kind]}_{STATS[stat]}"


def _value(path: Path, line_no: int, kind: str, text: str) -> str:
    try:
        value = float(text)
    except ValueError:
        raise ConvertError(f"{path}:{line_no}: value {text!r} is not a number") from None
    if kind == "availability":
        value /= 100.0  # the dataset's percentage -> the ratio Firebreak's metrics use
    return f"{value:.5g}"


def read_metrics(path: Path) -> Series:
    """A PetShop metrics.csv (four header rows, one column per node/metric/statistic)."""
    reader = open_csv(path)
    header = [next(reader, None) for _ in HEADER_ROWS]
    for line_no, (row, label) in enumerate(zip(header, HEADER_ROWS, strict=True), start=1):
        if not row or row[0] != label:
            raise ConvertError(f"{path}:{line_no}: expected a header row starting {label!r}")
    nodes, kinds, stats = header[0] or [], header[1] or [], header[2] or []
    if not len(nodes) == len(kinds) == len(stats):
        raise ConvertError(f"{path}: the three header rows differ in length")
    columns = [(nodes[i], kinds[i], _metric_name(path, i, kinds[i], stats[i])) for i in range(1, len(nodes))]
    times: list[float] = []
    rows: list[tuple[float, str, str, str]] = []
    for line_no, ts, cells in timed_rows(reader, path, len(nodes), first_line=len(HEADER_ROWS) + 1):
        times.append(ts)
        rows.extend(
            (ts, node, metric, _value(path, line_no, kind, text))
            for (node, kind, metric), text in zip(columns, cells, strict=True)
            if text != ""
        )
    if not times:
        raise ConvertError(f"{path}: no rows")
    return Series(times=times, rows=rows)


def read_graph(path: Path) -> dict[str, list[str]]:
    """graph.csv: an adjacency matrix, 1.0 where the row's node calls the column's node."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            table = list(csv.reader(handle))
    except OSError as exc:
        raise ConvertError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not table or not table[0]:
        raise ConvertError(f"{path}: empty")
    callees = table[0][1:]
    graph: dict[str, list[str]] = {}
    for line_no, row in enumerate(table[1:], start=2):
        if len(row) != len(callees) + 1:
            raise ConvertError(f"{path}:{line_no}: expected {len(callees) + 1} columns, got {len(row)}")
        try:
            calls = [float(cell) != 0.0 for cell in row[1:]]
        except ValueError:
            raise ConvertError(f"{path}:{line_no}: cells must be 0 or 1") from None
        graph[row[0]] = sorted(c for c, called in zip(callees, calls, strict=True) if called)
    return graph


def topology(graph: dict[str, list[str]], services: set[str]) -> dict[str, Any]:
    names = set(graph) | {c for deps in graph.values() for c in deps} | services
    return {
        "services": {s: {"depends_on": graph[s]} if graph.get(s) else {} for s in sorted(names)},
    }


def fault_kind(path: Path, target: dict[str, Any]) -> str:
    command = str(target.get("metadata", {}).get("reproducibility", {}).get("command", ""))
    kinds = {kind for marker, kind in FAULTS.items() if marker in command}
    if len(kinds) != 1:
        raise ConvertError(f"{path}: metadata.reproducibility.command {command[:80]!r} names no known fault")
    return kinds.pop()


def read_target(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConvertError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ConvertError(f"{path}: not valid JSON: {exc}") from None
    for field in ("target.node", "target.metric", "target.agg", "root_cause.node"):
        section, _, key = field.partition(".")
        value = raw.get(section, {}).get(key) if isinstance(raw, dict) else None
        if not isinstance(value, str) or not value:
            raise ConvertError(f"{path}: {field} is missing")
    if raw["target"]["metric"] not in KINDS or raw["target"]["agg"] not in STATS:
        raise ConvertError(
            f"{path}: target.metric / target.agg {raw['target']['metric']!r} / {raw['target']['agg']!r} "
            f"is not one of {sorted(KINDS)} / {sorted(STATS)}"
        )
    return dict(raw)


def _write_metrics(path: Path, normal: list[tuple[float, str, str, str]], incident: Series) -> None:
    # mtime 0: converting again gives the same bytes, so a regenerated tree diffs clean.
    with (
        path.open("wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as packed,
        io.TextIOWrapper(packed, encoding="utf-8", newline="") as handle,
    ):
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "service", "metric", "value"])
        writer.writerows((int(t), s, m, v) for t, s, m, v in normal)
        writer.writerows((int(t), s, m, v) for t, s, m, v in incident.rows)


def convert_traffic(raw: Path, traffic: Path, out: Path, normal_hours: float) -> int:
    system = traffic.name.replace("_", "-")
    noissue_path = traffic / "noissue" / "metrics.csv"
    if not noissue_path.is_file():
        logger.warning("%s: missing, so %s is skipped (no fault-free recording)", noissue_path, system)
        return 0
    graph = read_graph(traffic / "graph.csv")
    noissue = read_metrics(noissue_path)
    kept_from = noissue.times[-1] - normal_hours * 3600.0 + STEP_SECONDS
    kept = [r for r in noissue.rows if r[0] >= kept_from]
    kept_span = (min(t for t in noissue.times if t >= kept_from), noissue.times[-1])
    target_dir = out / system
    if target_dir.exists():
        shutil.rmtree(target_dir)
    target_dir.mkdir(parents=True)
    issues = sorted(p for p in traffic.glob("*/issue_*") if p.is_dir())
    if not issues:
        raise ConvertError(f"{traffic}: no <split>/issue_<n>/ folders")
    for issue in issues:
        target = read_target(issue / "target.json")
        incident = read_metrics(issue / "metrics.csv")
        start, end = min(incident.times), max(incident.times)
        offset = (start - STEP_SECONDS) - kept_span[1]
        normal = [(t + offset, s, m, v) for t, s, m, v in kept]
        scenario = target_dir / f"{issue.parent.name}-{issue.name}"
        scenario.mkdir()
        _write_metrics(scenario / "metrics.csv.gz", normal, incident)
        services = {r[1] for r in kept} | {r[1] for r in incident.rows}
        (scenario / "topology.yaml").write_text(yaml.safe_dump(topology(graph, services), sort_keys=True))
        symptom = target["target"]
        incident_json = {
            "symptom": {
                "service": symptom["node"],
                "metric": f"{KINDS[symptom['metric']]}_{STATS[symptom['agg']]}",
            },
            "normal": [kept_span[0] + offset, kept_span[1] + offset],
            "anomalous": [start, end],
        }
        if symptom.get("timestamp") is not None:
            # When the alert fired: the live incident window opens here (less the lead-in).
            incident_json["alert_at"] = symptom["timestamp"]
        (scenario / "incident.json").write_text(json.dumps(incident_json, indent=1) + "\n")
        sources = {
            "dataset": DATASET,
            "system": system,
            "signals": ["metrics"],
            "files": [
                str(p.relative_to(raw)) for p in (noissue_path, issue / "metrics.csv", issue / "target.json")
            ],
            "normal_recorded": list(kept_span),
            "normal_shifted_by_seconds": offset,
            "alert_timestamp": symptom.get("timestamp"),
            "injection": target.get("metadata", {}).get("reproducibility", {}).get("command"),
        }
        (scenario / "sources.json").write_text(json.dumps(sources, indent=1) + "\n")
        truth = {
            "root_cause": target["root_cause"]["node"],
            "fault": fault_kind(issue / "target.json", target),
        }
        (scenario / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
        logger.info("%s/%s", system, scenario.name)
    return len(issues)


def convert(raw: Path, out: Path, normal_hours: float = 6.0) -> int:
    root = raw / "dataset"
    if not root.is_dir():
        raise ConvertError(
            f"{raw}: no dataset/ (expected a checkout of amazon-science/petshop-root-cause-analysis)"
        )
    if normal_hours * 3600.0 < STEP_SECONDS:
        raise ConvertError(f"--normal-hours {normal_hours}: must cover at least one {STEP_SECONDS} s step")
    traffics = sorted(p for p in root.iterdir() if (p / "graph.csv").is_file())
    if not traffics:
        raise ConvertError(f"{root}: no <traffic>/graph.csv")
    return sum(convert_traffic(raw, traffic, out, normal_hours) for traffic in traffics)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("raw", type=Path, help="a checkout of amazon-science/petshop-root-cause-analysis")
    parser.add_argument("out", type=Path, help="where to write <traffic>/<case>/ (e.g. datasets/petshop)")
    parser.add_argument("--normal-hours", type=float, default=6.0, help="fault-free hours kept per case")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        count = convert(args.raw, args.out, args.normal_hours)
    except ConvertError as exc:
        parser.error(str(exc))
    logger.info("%d scenarios in %s", count, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
