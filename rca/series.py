"""Metric names, their meaning, and time series in the shape diagnosis works on.

Names are `<kind>_<stat>`: `latency_p99`, `errors_avg`, `availability_min`. The kind says
what the number means and which way is bad; the stat is how it was aggregated.

    Metrics = {service: {metric: [(unix_seconds, value), ...]}}

A value may be NaN (a gap). A service may be missing entirely (no data at all).
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

Point = tuple[float, float]
Metrics = Mapping[str, Mapping[str, Sequence[Point]]]


class Kind(StrEnum):
    LATENCY = "latency"
    ERRORS = "errors"
    AVAILABILITY = "availability"
    REQUESTS = "requests"
    CPU = "cpu"
    MEMORY = "memory"
    SATURATION = "saturation"
    OTHER = "other"


class Direction(StrEnum):
    UP_IS_BAD = "up"
    DOWN_IS_BAD = "down"
    BOTH = "both"


STATS = ("avg", "p50", "p90", "p95", "p99", "sum", "min", "max")


@dataclass(frozen=True)
class MetricInfo:
    name: str
    kind: Kind
    stat: str | None
    direction: Direction
    # Smallest change worth calling a change, in the metric's own unit, for series that
    # are flat in the normal period (an error ratio of exactly 0 must not turn 0.001 into
    # an infinite z-score). None: use only the relative floor.
    absolute_floor: float | None
    # Resource kinds point at the service itself; the others also move when a dependency
    # misbehaves, so they say less about where a fault started.
    is_resource: bool
    # The unit the name declares ("ms", "us", "percent"), None when it declares none or the
    # canonical one (seconds, ratios); see with_canonical_units.
    unit: str | None = None


_DIRECTION = {
    Kind.LATENCY: Direction.UP_IS_BAD,
    Kind.ERRORS: Direction.UP_IS_BAD,
    Kind.AVAILABILITY: Direction.DOWN_IS_BAD,
    # Traffic moves both ways in a failure: it drops behind a broken caller, and it jumps
    # with retries. Seasonal traffic moves it too, hence its low weight in ranking.
    Kind.REQUESTS: Direction.BOTH,
    Kind.CPU: Direction.UP_IS_BAD,
    Kind.MEMORY: Direction.UP_IS_BAD,
    Kind.SATURATION: Direction.UP_IS_BAD,
    Kind.OTHER: Direction.BOTH,
}
_FLOOR = {
    Kind.ERRORS: 0.002,  # ratios: 0.2 percentage points
    Kind.AVAILABILITY: 0.002,
    Kind.LATENCY: 0.001,  # seconds
    Kind.SATURATION: 0.01,
}

# Exporters and datasets name the same quantities their own way (`ResponseTimeP90(ms)`,
# `http_server_duration_seconds_p99`, `PodSuccessRate(%)`, `http_requests_total`). A name off
# the `<kind>_<stat>` convention is read word by word: its statistic, its unit, and words that
# qualify without changing the quantity are set aside, and what remains must be one of these
# phrases exactly. A qualifier that does change it stays and makes the name OTHER: a client
# latency includes the network and the client's queueing, not the service's own answer.
_KIND_WORDS = {
    Kind.LATENCY: "latency duration rt responsetime elapsed",
    Kind.ERRORS: "error errors fault faults failure failures failed 5xx",
    Kind.AVAILABILITY: "availability success successful succeeded",
    Kind.REQUESTS: "request requests throughput qps rps tps calls workload traffic hits",
    Kind.CPU: "cpu",
    Kind.MEMORY: "memory mem rss",
    Kind.SATURATION: "saturation",
}
_KIND_PHRASES: dict[tuple[str, ...], Kind] = {
    **{(word,): kind for kind, words in _KIND_WORDS.items() for word in words.split()},
    ("response", "time"): Kind.LATENCY,
}
_STAT_WORDS = {
    **{s: s for s in STATS},
    "mean": "avg",
    "average": "avg",
    "median": "p50",
    "minimum": "min",
    "maximum": "max",
    # Percentiles written as a number (`latency-90`, `latency_99th`, `latency_percentile_95`).
    **{f"{q}{suffix}": f"p{q}" for q in (50, 90, 95, 99) for suffix in ("", "th")},
}
_UNIT_WORDS = {
    "s": None,
    "sec": None,
    "secs": None,
    "second": None,
    "seconds": None,
    "ratio": None,
    "ms": "ms",
    "msec": "ms",
    "millis": "ms",
    "millisecond": "ms",
    "milliseconds": "ms",
    "us": "us",
    "microseconds": "us",
    "percent": "percent",
    "percentage": "percent",
    "pct": "percent",
}
# Words that say where or how a quantity was counted, not what it is. Not `total`: a Prometheus
# counter (`http_requests_total`) read raw only ever grows, and stays OTHER.
_QUALIFIERS = frozenset(
    (
        *("pod", "container", "service", "server", "http", "grpc", "usage", "utilization", "utilisation"),
        *("used", "rate", "count", "per", "ops", "bytes", "value", "percentile", "quantile"),
    )
)


def _words(name: str) -> list[str]:
    # Camel case and acronyms apart: "PodSuccessRate" -> Pod Success Rate, "HTTPRequest" -> HTTP Request.
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).replace("%", "_percent_")
    return [w for w in re.split(r"[^a-z0-9]+", spaced.lower()) if w]


def _read_name(name: str) -> tuple[Kind, str | None, str | None]:
    """(kind, stat, declared unit) of a metric name; OTHER when the name is not understood."""
    kind_part, _, stat = name.rpartition("_")
    if stat in STATS and kind_part in Kind.__members__.values():
        return Kind(kind_part), stat, None
    if name in Kind.__members__.values():
        return Kind(name), None, None
    stat_found: str | None = None
    unit: str | None = None
    rest: list[str] = []
    for word in _words(name):
        if word in _STAT_WORDS and stat_found is None:
            stat_found = _STAT_WORDS[word]
        elif word in _UNIT_WORDS:
            unit = _UNIT_WORDS[word] or unit
        elif word not in _QUALIFIERS:
            rest.append(word)
    kind = _KIND_PHRASES.get(tuple(rest), Kind.OTHER)
    return kind, stat_found, (unit if kind != Kind.OTHER else None)


@lru_cache(maxsize=4096)
def metric_info(name: str) -> MetricInfo:
    """Interpret a metric name; names that are not understood are OTHER."""
    kind, stat, unit = _read_name(name)
    return MetricInfo(
        name=name,
        kind=kind,
        stat=stat,
        direction=_DIRECTION[kind],
        absolute_floor=_FLOOR.get(kind),
        is_resource=kind in (Kind.CPU, Kind.MEMORY, Kind.SATURATION),
        unit=unit,
    )


PERCENT_ABOVE = 2.0
# Availability is not here: its values tell (below), and a ratio mislabelled percent would
# otherwise sit near 0.01, where no dip shows. An error ratio of 0.5 could be either.
_TO_CANONICAL = {
    (Kind.LATENCY, "ms"): 1e-3,
    (Kind.LATENCY, "us"): 1e-6,
    (Kind.ERRORS, "percent"): 1e-2,
}


def _to_canonical(metric: str, points: Sequence[Point]) -> float:
    """The factor that brings a series to seconds and ratios (1.0: already there, or unknown)."""
    info = metric_info(metric)
    factor = _TO_CANONICAL.get((info.kind, info.unit or ""), 1.0)
    if info.kind == Kind.AVAILABILITY and any(v > PERCENT_ABOVE for _, v in points):
        # Whatever the name says, a value above 2 cannot be a ratio (noise puts a ratio a
        # little over 1, never twice it); one that never reaches 2 % is down either way.
        factor = 1e-2
    return factor


def with_canonical_units(metrics: Metrics) -> Metrics:
    """The same metrics with latencies in seconds and availability and error series as ratios.

    The ranking's floors (a millisecond, 0.2 percentage points) and the error budget
    (1 - availability) assume those units: read as a ratio, a 99.5 % series has a budget of
    -98.5 and no dip in it would ever count. A latency's or an error series' unit comes from
    its name (`_ms`, `(%)`); availability is percent when a value is above 2, whatever the name
    says. Names are kept, so a symptom
    names its series as before. Series in other units (a latency in ms whose name does not
    say so, an error count) are as given: nothing in the data tells.
    """
    out: dict[str, Mapping[str, Sequence[Point]]] = {}
    for service, per in metrics.items():
        scaled = {
            metric: [(t, v * factor) for t, v in points]
            for metric, points in per.items()
            if (factor := _to_canonical(metric, points)) != 1.0
        }
        out[service] = {**per, **scaled} if scaled else per
    return out


class MetricsFileError(ValueError):
    """metrics.csv does not parse; the message names the file and the line."""


# Epoch numbers past this are not seconds (it is the year 5138): milliseconds (CSV exports,
# JavaScript, X-Ray), microseconds (Jaeger) or nanoseconds (Loki, OpenTelemetry).
_EPOCH_SECONDS_BELOW = 1e11


def _epoch_seconds(value: float) -> float:
    while math.isfinite(value) and abs(value) >= _EPOCH_SECONDS_BELOW:
        value /= 1000.0
    return value


def parse_time(value: str | float | int, *, where: str = "") -> float:
    """Unix seconds from a number (seconds, or epoch milli-, micro- or nanoseconds, told apart
    by size) or an ISO-8601 timestamp (UTC when it names no zone)."""
    if isinstance(value, int | float):
        return _epoch_seconds(float(value))
    text = value.strip()
    try:
        return _epoch_seconds(float(text))
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{where}bad timestamp {value!r}: expected unix seconds or ISO-8601") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def load_metrics_csv(path: Path) -> dict[str, dict[str, list[Point]]]:
    """Read the long format `timestamp,service,metric,value`; an empty value is a gap."""
    out: dict[str, dict[str, list[Point]]] = {}
    try:
        # Closed by the `with handle` below; gzip for compact committed scenarios.
        handle = (
            io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")  # noqa: SIM115
            if path.suffix == ".gz"
            else path.open(newline="", encoding="utf-8")
        )
    except OSError as exc:
        raise MetricsFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    with handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            return out
        columns = [h.strip().lower() for h in header]
        try:
            i_t, i_s, i_m, i_v = (columns.index(c) for c in ("timestamp", "service", "metric", "value"))
        except ValueError:
            raise MetricsFileError(
                f"{path}: header must name timestamp,service,metric,value; got {header}"
            ) from None
        width = max(i_t, i_s, i_m, i_v) + 1
        # Every series shares the same few timestamps: each distinct one is parsed once.
        times: dict[str, float] = {}
        for line_no, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) < width:
                raise MetricsFileError(f"{path}:{line_no}: expected {width} columns, got {len(row)}")
            try:
                ts = times.get(row[i_t])
                if ts is None:
                    ts = times[row[i_t]] = parse_time(row[i_t])
                raw = row[i_v].strip()
                value = float(raw) if raw and raw.lower() not in ("nan", "null", "none") else math.nan
            except ValueError as exc:
                raise MetricsFileError(f"{path}:{line_no}: {exc}") from None
            out.setdefault(row[i_s].strip(), {}).setdefault(row[i_m].strip(), []).append((ts, value))
    for per_service in out.values():
        for points in per_service.values():
            points.sort(key=lambda p: p[0])
    return out


def write_metrics_csv(path: Path, metrics: Metrics) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "service", "metric", "value"])
        rows = [
            (ts, service, metric, value)
            for service, per in metrics.items()
            for metric, points in per.items()
            for ts, value in points
        ]
        rows.sort(key=lambda r: (r[0], r[1], r[2]))
        for ts, service, metric, value in rows:
            writer.writerow(
                [
                    f"{ts:.0f}" if ts == int(ts) else f"{ts:.3f}",
                    service,
                    metric,
                    "" if math.isnan(value) else f"{value:.6g}",
                ]
            )
