"""Convert RCD's public Sock Shop incidents (azamikram/rcd) into Firebreak scenarios.

Tooling, not runtime: the worker never imports this. Usage:

    python -m tools.rcd_convert RAW_DIR OUT_DIR

RAW_DIR is a checkout of https://github.com/azamikram/rcd (Ikram et al., *Root Cause
Analysis of Failures in Microservices through Causal Discovery*, NeurIPS 2022), kept
outside the repo. Its `sock-shop-data/<service>-<fault>/<run>/` holds `normal.csv` and
`anomalous.csv`: one row per second, one column per `<service>_<metric>` (CPU, memory,
load, latency percentiles), about five minutes each, recorded before and while a CPU or
memory hog ran in `<service>`. Metrics only: no traces, no logs.

The repository ships no licence, so the converted scenarios are not committed: convert
them locally and run `firebreak rca eval OUT_DIR`. Ground truth is the folder's service and
fault, named by the dataset's authors, never anything a ranker says.

The topology is Sock Shop's published architecture (microservices-demo): which service
calls which. The symptom is the front end, the service users reach; the data has no
front-end latency series, so it names the alerting service, as a user-facing alert would.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import logging
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tools.wide_csv import ConvertError, open_csv, timed_rows

logger = logging.getLogger("rcd_convert")

SYSTEM = "sock-shop"
ENTRY = "front-end"
# RCD column suffix -> Firebreak metric name (<kind>_<stat>); units are kept (seconds, bytes).
METRICS = {
    "cpu": "cpu_avg",
    "mem": "memory_avg",
    "lod": "requests_avg",
    "lat_50": "latency_p50",
    "lat_90": "latency_p90",
    "lat_99": "latency_p99",
}
# Sock Shop (github.com/microservices-demo): caller -> the services it calls.
DEPENDS_ON: dict[str, list[str]] = {
    "front-end": ["carts", "catalogue", "orders", "user"],
    "orders": ["carts", "orders-db", "payment", "shipping", "user"],
    "carts": ["carts-db"],
    "catalogue": ["catalogue-db"],
    "user": ["user-db"],
    "shipping": ["rabbitmq"],
    "queue-master": ["rabbitmq"],
}


@dataclass(frozen=True)
class Case:
    service: str
    fault: str
    run: str
    path: Path

    @property
    def name(self) -> str:
        return f"{self.service}-{self.fault}-{self.run}"


def find_cases(raw: Path) -> list[Case]:
    root = raw / "sock-shop-data"
    if not root.is_dir():
        raise ConvertError(f"{raw}: no sock-shop-data/ (expected a checkout of azamikram/rcd)")
    cases = []
    for run_dir in sorted(p for p in root.glob("*/*") if p.is_dir()):
        service, sep, fault = run_dir.parent.name.rpartition("-")
        if not sep or not service:
            raise ConvertError(f"{run_dir.parent}: expected a folder named <service>-<fault>")
        cases.append(Case(service=service, fault=fault, run=run_dir.name, path=run_dir))
    return cases


def read_series(path: Path) -> tuple[tuple[float, float], list[list[str]]]:
    """Rows of the long format (timestamp, service, metric, value) and the file's time span."""
    rows: list[list[str]] = []
    times: list[float] = []
    reader = open_csv(path)
    header = next(reader, None)
    if not header or header[0].strip().lower() != "time":
        raise ConvertError(f"{path}: the first column must be time; got {header[:1] if header else []}")
    columns: list[tuple[str, str]] = []
    for column in header[1:]:
        service, sep, metric = column.partition("_")
        if not sep or metric not in METRICS:
            raise ConvertError(f"{path}: column {column!r} is not <service>_<{'|'.join(METRICS)}>")
        columns.append((service, METRICS[metric]))
    for _, ts, cells in timed_rows(reader, path, len(header), first_line=2):
        times.append(ts)
        stamp = str(int(ts))
        rows.extend([stamp, s, m, v] for (s, m), v in zip(columns, cells, strict=True) if v != "")
    if not times:
        raise ConvertError(f"{path}: no rows")
    return (min(times), max(times)), rows


def topology() -> dict[str, Any]:
    services = set(DEPENDS_ON) | {d for deps in DEPENDS_ON.values() for d in deps}
    return {
        "services": {
            s: {"depends_on": sorted(DEPENDS_ON[s])} if s in DEPENDS_ON else {} for s in sorted(services)
        }
    }


def convert(raw: Path, out: Path) -> int:
    target = out / SYSTEM
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    topo_text = yaml.safe_dump(topology(), sort_keys=True)
    cases = find_cases(raw)
    for case in cases:
        normal, normal_rows = read_series(case.path / "normal.csv")
        anomalous, incident_rows = read_series(case.path / "anomalous.csv")
        # Usually recorded first, but not always (orders-mem/5 recorded it after the fault).
        if normal[0] <= anomalous[1] and anomalous[0] <= normal[1]:
            raise ConvertError(f"{case.path}: normal.csv and anomalous.csv overlap in time")
        scenario = target / case.name
        scenario.mkdir()
        with gzip.open(scenario / "metrics.csv.gz", "wt", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["timestamp", "service", "metric", "value"])
            writer.writerows(normal_rows)
            writer.writerows(incident_rows)
        (scenario / "topology.yaml").write_text(topo_text)
        incident = {
            "symptom": {"service": ENTRY, "metric": "latency_p90"},
            "normal": list(normal),
            "anomalous": list(anomalous),
        }
        (scenario / "incident.json").write_text(json.dumps(incident, indent=1) + "\n")
        sources = {
            "dataset": "rcd",
            "system": SYSTEM,
            "signals": ["metrics"],
            "files": [f"{case.path.relative_to(raw)}/{n}" for n in ("normal.csv", "anomalous.csv")],
        }
        (scenario / "sources.json").write_text(json.dumps(sources, indent=1) + "\n")
        truth = {"root_cause": case.service, "fault": case.fault}
        (scenario / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
        logger.info("%s/%s", SYSTEM, case.name)
    return len(cases)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("raw", type=Path, help="a checkout of azamikram/rcd")
    parser.add_argument("out", type=Path, help="where to write sock-shop/<case>/ (outside the repo)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        count = convert(args.raw, args.out)
    except ConvertError as exc:
        parser.error(str(exc))
    logger.info("%s: %d scenarios in %s", SYSTEM, count, args.out / SYSTEM)
    return 0


if __name__ == "__main__":
    sys.exit(main())
