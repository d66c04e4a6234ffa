"""Traces and logs in the shape diagnosis works on, and how anomalous each service is in them.

Traces arrive aggregated per time window and per caller -> callee edge (`TraceStat`): calls,
errors (None when the spans carry no status), latency percentiles of the callee's
invocations, and its *self time* (the invocation's duration minus the time spent waiting on
the services it called). Logs arrive per window, per service and per Drain template
(`LogStat`). Both compare an incident window with a normal one, like metrics.

Why self time: a slow database makes every caller slow, but only the database's own time
grows; callers' self time stays flat. The service whose self time or errors grew is the
one that changed; latency alone travels up the call graph.

Why gaps: a network fault at a service delays every call into and out of it, outside any of
its spans; the caller's client span grows while the callee's server span does not. The
service all of whose edges' gaps grew is the one whose network changed. A gap is timed by
the caller, so what all of a caller's calls grew alike (a caller starved of CPU) is the
caller's, and is taken off each callee's share.

Why templates as *shares* of a service's log volume: traffic moves every count; a template
that appears, or whose share of the service's lines jumps, says the code took another path.
A normal-path line that stops while traces show the service still called as often says the
code now leaves that path early (an exception thrown before the line is reached).
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median

from rca.series import parse_time
from rca.topology import ServiceSpec, Topology

Window = tuple[float, float]


class SignalFileError(ValueError):
    """traces.csv or logs.csv does not parse; the message names the file and the line."""


@dataclass(frozen=True)
class TraceStat:
    timestamp: float  # window start, unix seconds
    caller: str  # "" for requests entering the system
    callee: str
    calls: int
    errors: int | None
    latency_p50: float
    latency_p90: float
    latency_p99: float
    self_p50: float
    self_p90: float
    gap_p50: float = math.nan  # caller's client span minus the callee's span: network, queueing
    gap_p90: float = math.nan


@dataclass(frozen=True)
class LogStat:
    timestamp: float
    service: str
    template_id: str
    level: str  # error | warn | info
    count: int
    template: str


END = "END"  # a pair's second event when the service logged nothing more in that trace


@dataclass(frozen=True)
class LogPairStat:
    """How often, within one trace, a service's line of `template_id` was followed by its next line
    of `next_id` (`END`: by none), counted in the window of the first line."""

    timestamp: float
    service: str
    template_id: str
    next_id: str
    count: int


# --- files -----------------------------------------------------------------------------------


def _open_text(path: Path) -> io.StringIO:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SignalFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise SignalFileError(f"{path}: not a gzip file: {exc}") from None
    return io.StringIO(raw.decode("utf-8", errors="replace"))


def find_file(directory: Path, stem: str) -> Path | None:
    """`<stem>.csv` or `<stem>.csv.gz` in a scenario directory."""
    for name in (f"{stem}.csv", f"{stem}.csv.gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def _rows(path: Path, required: Sequence[str]) -> Iterable[tuple[int, dict[str, str]]]:
    reader = csv.DictReader(_open_text(path))
    missing = [c for c in required if c not in (reader.fieldnames or [])]
    if missing:
        raise SignalFileError(f"{path}: header lacks {', '.join(missing)}")
    yield from enumerate(reader, start=2)


def _num(row: dict[str, str], key: str, path: Path, line: int) -> float:
    text = (row.get(key) or "").strip()
    if not text:
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise SignalFileError(f"{path}:{line}: {key}: not a number: {text[:40]!r}") from None


def load_traces_csv(path: Path) -> list[TraceStat]:
    out: list[TraceStat] = []
    for line, row in _rows(path, ("timestamp", "caller", "callee", "calls")):
        try:
            ts = parse_time(row["timestamp"])
        except ValueError as exc:
            raise SignalFileError(f"{path}:{line}: {exc}") from None
        calls = _num(row, "calls", path, line)
        errors = _num(row, "errors", path, line)
        if not math.isfinite(calls) or calls < 0:
            raise SignalFileError(f"{path}:{line}: calls must be a count >= 0")
        out.append(
            TraceStat(
                timestamp=ts,
                caller=row["caller"].strip(),
                callee=row["callee"].strip(),
                calls=int(calls),
                errors=None if math.isnan(errors) else int(errors),
                latency_p50=_num(row, "latency_p50", path, line),
                latency_p90=_num(row, "latency_p90", path, line),
                latency_p99=_num(row, "latency_p99", path, line),
                self_p50=_num(row, "self_p50", path, line),
                self_p90=_num(row, "self_p90", path, line),
                gap_p50=_num(row, "gap_p50", path, line),
                gap_p90=_num(row, "gap_p90", path, line),
            )
        )
    return out


def load_logs_csv(path: Path) -> list[LogStat]:
    out: list[LogStat] = []
    for line, row in _rows(path, ("timestamp", "service", "template_id", "count")):
        try:
            ts = parse_time(row["timestamp"])
        except ValueError as exc:
            raise SignalFileError(f"{path}:{line}: {exc}") from None
        count = _num(row, "count", path, line)
        if not math.isfinite(count) or count < 0:
            raise SignalFileError(f"{path}:{line}: count must be a count >= 0")
        level = (row.get("level") or "info").strip().lower()
        out.append(
            LogStat(
                timestamp=ts,
                service=row["service"].strip(),
                template_id=row["template_id"].strip(),
                level=level if level in ("error", "warn") else "info",
                count=int(count),
                template=(row.get("template") or "")[:300],
            )
        )
    return out


def load_log_pairs_csv(path: Path) -> list[LogPairStat]:
    out: list[LogPairStat] = []
    for line, row in _rows(path, ("timestamp", "service", "template_id", "next_id", "count")):
        try:
            ts = parse_time(row["timestamp"])
        except ValueError as exc:
            raise SignalFileError(f"{path}:{line}: {exc}") from None
        count = _num(row, "count", path, line)
        if not math.isfinite(count) or count < 0:
            raise SignalFileError(f"{path}:{line}: count must be a count >= 0")
        out.append(
            LogPairStat(
                timestamp=ts,
                service=row["service"].strip(),
                template_id=row["template_id"].strip(),
                next_id=row["next_id"].strip(),
                count=int(count),
            )
        )
    return out


def trace_edges(stats: Iterable[TraceStat]) -> set[tuple[str, str]]:
    """The call graph the traces show: (caller, callee), entry requests left out."""
    return {(s.caller, s.callee) for s in stats if s.caller and s.caller != s.callee}


# --- scoring ---------------------------------------------------------------------------------

# A service's own time growing by this factor is as likely a fault as not; the sigmoid's
# slope is per doubling. 1 ms keeps microsecond-level self times from turning jitter into
# a ratio of 10.
SELF_RATIO_CENTER = 2.0
SELF_SLOPE = 3.0
TIME_FLOOR = 0.001
TRAFFIC_RATIO_CENTER = 3.0  # calls into a service changing this much (either way)
ERROR_FLOOR = 0.01  # 1 point of error ratio is the least we call a change
LOG_SHARE_CENTER = 3.0  # a template's share of its service's lines growing this much
LOG_NEW_MIN = 3  # lines of an unseen template before it counts
# Windows in a row above the normal range that mark a fault's onset inside an early window:
# the metrics' rule that a level must hold for two points (one spike is not an incident).
ONSET_RUN = 2
# Info lines record normal operation: against a short normal window a "new" info template
# mostly means another request mix (Nezha's busiest services show several in every
# incident), while a new error template means a code path that fails.
LEVEL_WEIGHT = {"error": 1.0, "warn": 0.8, "info": 0.2}


def _sigmoid(x: float) -> float:
    if x < -60:
        return 0.0
    return 1.0 / (1.0 + math.exp(-x))


@dataclass
class SignalAnomaly:
    """One service's anomaly in one signal: a belief in [0, 1], an intensity, and why."""

    service: str
    signal: str  # traces | logs
    belief: float
    intensity: float  # comparable to a metric z-score: log2 ratio x 4
    findings: list[str] = field(default_factory=list)  # strongest first


def _in(ts: float, window: Window) -> bool:
    return window[0] <= ts <= window[1]


def _sustained(values: Sequence[float], normal: Sequence[float] = ()) -> float:
    """The k-th highest with k a third of the values, as for metrics: one outlier is not an incident.

    With `normal` (the same statistic per window over the normal period) and `values` in
    time order, the minutes before the fault that a window opened early holds are left out:
    the head ends where the statistic leaves the normal range (above the normal period's
    highest window) for ONSET_RUN windows in a row, since one window above it is a spike,
    not an onset. k is then a third of the windows after the head (never fewer than two once
    the whole window holds four, as for metrics), unless fewer than k remain, when none is
    left out.
    """
    if not values:
        return math.nan

    def rank(windows: Sequence[float]) -> int:
        return max(1, math.ceil(len(windows) / 3), 2 if len(values) >= 4 else 1)

    rest = values
    ceiling = max((v for v in normal if math.isfinite(v)), default=math.nan)
    if math.isfinite(ceiling):
        head = next(
            (
                i
                for i in range(len(values) - ONSET_RUN + 1)
                if all(v > ceiling for v in values[i : i + ONSET_RUN])
            ),
            len(values),
        )
        if len(values) - head >= rank(values[head:]):
            rest = values[head:]
    return sorted(rest, reverse=True)[rank(rest) - 1]


def score_traces(stats: Sequence[TraceStat], normal: Window, anomalous: Window) -> dict[str, SignalAnomaly]:
    """Per callee: self time, errors and incoming calls in the incident against normal."""
    per: dict[str, dict[str, dict[float, list[TraceStat]]]] = defaultdict(lambda: {"n": {}, "a": {}})
    for s in stats:
        side = "n" if _in(s.timestamp, normal) else "a" if _in(s.timestamp, anomalous) else None
        if side:
            per[s.callee][side].setdefault(s.timestamp, []).append(s)
    network = _network(stats, normal, anomalous)
    fan_out = _fan_out_drop(stats, normal, anomalous)
    out: dict[str, SignalAnomaly] = {}
    for service, sides in per.items():
        if not sides["n"] or not sides["a"]:
            continue
        findings: list[tuple[float, str]] = []

        def weighted(rows: list[TraceStat], attr: str) -> float:
            # The busiest edge's value dominates: a rare caller's slow path is not the service.
            pairs = [(getattr(r, attr), r.calls) for r in rows if math.isfinite(getattr(r, attr)) and r.calls]
            total = sum(c for _, c in pairs)
            return sum(v * c for v, c in pairs) / total if total else math.nan

        # In time order: a window opened early starts with minutes that still look normal.
        normal_self = [weighted(rows, "self_p90") for _, rows in sorted(sides["n"].items())]
        incident_self = [weighted(rows, "self_p90") for _, rows in sorted(sides["a"].items())]
        base_self = median(normal_self)
        cur_self = _sustained(incident_self, normal_self)
        base_lat = median(weighted(r, "latency_p90") for r in sides["n"].values())
        cur_lat = _sustained([weighted(r, "latency_p90") for r in sides["a"].values()])
        intensity = 0.0
        belief = 0.0
        if math.isfinite(base_self) and math.isfinite(cur_self):
            ratio = (cur_self + TIME_FLOOR) / (base_self + TIME_FLOOR)
            b = _sigmoid(SELF_SLOPE * (math.log2(ratio) - math.log2(SELF_RATIO_CENTER)))
            belief = max(belief, b)
            intensity = max(intensity, 4.0 * max(0.0, math.log2(ratio)))
            findings.append(
                (
                    b,
                    f"own time p90 {cur_self * 1000:.1f} ms vs normal {base_self * 1000:.1f} ms "
                    f"(x{ratio:.1f})",
                )
            )
        if math.isfinite(base_lat) and math.isfinite(cur_lat):
            ratio = (cur_lat + TIME_FLOOR) / (base_lat + TIME_FLOOR)
            findings.append(
                (
                    0.0,
                    f"latency p90 {cur_lat * 1000:.1f} ms vs normal {base_lat * 1000:.1f} ms (x{ratio:.1f})",
                )
            )
        errs_n = [(r.errors, r.calls) for rows in sides["n"].values() for r in rows if r.errors is not None]
        errs_a = [(r.errors, r.calls) for rows in sides["a"].values() for r in rows if r.errors is not None]
        if errs_n and errs_a:
            rate_n = sum(e for e, _ in errs_n) / max(1, sum(c for _, c in errs_n))
            rate_a = sum(e for e, _ in errs_a) / max(1, sum(c for _, c in errs_a))
            z = (rate_a - rate_n) / max(ERROR_FLOOR, 0.05 * rate_n)
            b = _sigmoid(z - 4.0)
            belief = max(belief, b)
            intensity = max(intensity, z)
            findings.append((b, f"errors {rate_a:.1%} of calls vs normal {rate_n:.1%}"))
        # Windows are of equal length, so calls per window compare as rates.
        calls_n = median(sum(r.calls for r in rows) for rows in sides["n"].values())
        calls_a = median(sum(r.calls for r in rows) for rows in sides["a"].values())
        if calls_n > 0:
            ratio = max(calls_a, 1e-9) / calls_n
            drift = abs(math.log(max(ratio, 1e-3)))
            b = _sigmoid(2.0 * (drift - math.log(TRAFFIC_RATIO_CENTER)))
            findings.append((b * 0.5, f"calls x{ratio:.2f} of normal"))
        drop = fan_out.get(service)
        if drop is not None and drop > 0:
            b = _sigmoid(SELF_SLOPE * (drop - math.log2(SELF_RATIO_CENTER)))
            belief = max(belief, b)
            intensity = max(intensity, 4.0 * drop)
            findings.append(
                (
                    b,
                    f"calls it makes per request x{2**-drop:.2f} of normal: answers without its dependencies",
                )
            )
        net = network.get(service)
        if net is not None:
            b, growth, edges = net
            belief = max(belief, b)
            intensity = max(intensity, 4.0 * growth)
            findings.append(
                (b, f"network: its calls wait x{2**growth:.1f} longer outside the spans ({edges} edges)")
            )
        findings.sort(key=lambda f: -f[0])
        out[service] = SignalAnomaly(
            service=service,
            signal="traces",
            belief=belief,
            intensity=intensity,
            findings=[text for _, text in findings],
        )
    return out


def _fan_out_drop(stats: Sequence[TraceStat], normal: Window, anomalous: Window) -> dict[str, float]:
    """Per service: log2 of how much fewer calls it made per call it received (normal / incident).

    A service that returns early (an exception, a bad return value) still answers every
    request but stops calling the services after that point; its callers and callees keep
    their own time, so neither self time nor errors may show it.
    """
    received: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    made: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for s in stats:
        side = 0 if _in(s.timestamp, normal) else 1 if _in(s.timestamp, anomalous) else None
        if side is None:
            continue
        received[s.callee][side] += s.calls
        if s.caller and s.caller != s.callee:
            made[s.caller][side] += s.calls
    out: dict[str, float] = {}
    for service, (made_n, made_a) in made.items():
        got_n, got_a = received.get(service, [0, 0])
        if made_n and got_n and got_a:
            out[service] = math.log2((made_n / got_n) / max(made_a / got_a, made_n / got_n / 1000))
    return out


def _network(
    stats: Sequence[TraceStat], normal: Window, anomalous: Window
) -> dict[str, tuple[float, float, int]]:
    """Per service: (belief, median log2 growth, edges) of the gaps on every edge it is on."""
    per_edge: dict[tuple[str, str], tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for s in stats:
        if not s.caller or not math.isfinite(s.gap_p90):
            continue
        if _in(s.timestamp, normal):
            per_edge[(s.caller, s.callee)][0].append(s.gap_p90)
        elif _in(s.timestamp, anomalous):
            per_edge[(s.caller, s.callee)][1].append(s.gap_p90)
    edge_growth: dict[tuple[str, str], float] = {
        edge: math.log2((_sustained(cur) + TIME_FLOOR) / (median(base) + TIME_FLOOR))
        for edge, (base, cur) in per_edge.items()
        if base and cur
    }
    sent: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for (caller, callee), g in edge_growth.items():
        sent[caller].append((callee, g))
    into: dict[str, list[float]] = defaultdict(list)
    out_of: dict[str, list[float]] = defaultdict(list)
    for (caller, callee), g in edge_growth.items():
        out_of[caller].append(g)
        # A gap is measured from the caller's side: a caller starved of CPU waits longer on
        # every call it makes. What every one of its other calls grew too (the least of
        # them) is the caller's, not this callee's network.
        others = [h for other, h in sent[caller] if other != callee]
        into[callee].append(g - max(0.0, min(others)) if others else g)
    out: dict[str, tuple[float, float, int]] = {}
    for service in set(into) | set(out_of):
        # Calls into the faulty service wait (ingress delay), or all its own calls do (egress).
        # A caller of it has one slow edge among its calls, so outgoing growth counts half.
        growth = max(
            median(into[service]) if into.get(service) else 0.0,
            0.5 * median(out_of[service]) if out_of.get(service) else 0.0,
        )
        belief = _sigmoid(SELF_SLOPE * (growth - math.log2(SELF_RATIO_CENTER)))
        out[service] = (belief, max(0.0, growth), len(into.get(service, [])) + len(out_of.get(service, [])))
    return out


def score_logs(
    stats: Sequence[LogStat],
    normal: Window,
    anomalous: Window,
    invocations: dict[str, tuple[int, int]] | None = None,
    pairs: Sequence[LogPairStat] = (),
) -> dict[str, SignalAnomaly]:
    """Per service: templates never seen in the normal window, whose share of lines surged, or that vanished.

    `invocations` gives each service's calls received (normal, incident) over the same
    windows, from traces; without it a template's disappearance is not scored, since fewer
    requests reaching the service explain it as well as a failure in it does.
    """
    counts: dict[str, dict[str, dict[str, int]]] = defaultdict(
        lambda: {"n": defaultdict(int), "a": defaultdict(int)}
    )
    meta: dict[tuple[str, str], LogStat] = {}
    for s in stats:
        side = "n" if _in(s.timestamp, normal) else "a" if _in(s.timestamp, anomalous) else None
        if side:
            counts[s.service][side][s.template_id] += s.count
            meta.setdefault((s.service, s.template_id), s)
    # How many services log each template (ids are shared: one Drain model mines every
    # service). A message many services print, like a web framework's "request failed", is
    # how a failure travels rather than where it started; like IDF in text retrieval, it
    # weighs 1/sqrt(services).
    spread: dict[str, int] = defaultdict(int)
    for _, template_id in meta:
        spread[template_id] += 1
    # service -> (first, next) -> [normal, incident] pair counts
    steps: dict[str, dict[tuple[str, str], list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for p in pairs:
        side_index = 0 if _in(p.timestamp, normal) else 1 if _in(p.timestamp, anomalous) else None
        if side_index is not None:
            steps[p.service][(p.template_id, p.next_id)][side_index] += p.count
    out: dict[str, SignalAnomaly] = {}
    for service, sides in counts.items():
        total_n, total_a = sum(sides["n"].values()), sum(sides["a"].values())
        if total_a == 0:
            continue
        scored: list[tuple[float, float, str]] = []
        calls = (invocations or {}).get(service)
        if total_n and calls is not None and calls[0] > 0:
            # The service must have been asked as often, and have logged as much, for the
            # line to be due: the smaller of the two growths sets what is expected.
            growth = min(total_a / total_n, calls[1] / calls[0])
            scored.extend(_vanished(sides["n"], sides["a"], growth, meta, service, spread))
        scored.extend(_broken_steps(steps.get(service, {}), meta, service, spread))
        for template_id, n_a in sides["a"].items():
            info = meta[(service, template_id)]
            weight = LEVEL_WEIGHT[info.level] / math.sqrt(spread[template_id])
            n_n = sides["n"].get(template_id, 0)
            if n_n == 0:
                if n_a < LOG_NEW_MIN and info.level == "info":
                    continue
                b = weight * (1.0 - math.exp(-n_a / LOG_NEW_MIN))
                intensity = weight * 4.0 * math.log2(1 + n_a)
                scored.append((b, intensity, f"new {info.level} template x{n_a}: {info.template}"))
            elif total_n:
                share_ratio = (n_a / total_a) / (n_n / total_n)
                if share_ratio <= 1.0:
                    continue
                b = weight * _sigmoid(3.0 * (math.log2(share_ratio) - math.log2(LOG_SHARE_CENTER)))
                intensity = weight * 4.0 * math.log2(share_ratio)
                scored.append(
                    (
                        b,
                        intensity,
                        f"{info.level} template share x{share_ratio:.1f} ({n_a} lines): {info.template}",
                    )
                )
        if not scored:
            out[service] = SignalAnomaly(service=service, signal="logs", belief=0.0, intensity=0.0)
            continue
        scored.sort(key=lambda s: (-s[0], -s[1]))
        calm = math.prod(1.0 - b for b, _, _ in scored[:3])
        out[service] = SignalAnomaly(
            service=service,
            signal="logs",
            belief=1.0 - calm,
            intensity=max(i for _, i, _ in scored),
            findings=[text for _, _, text in scored[:5]],
        )
    return out


def invocations(stats: Sequence[TraceStat], normal: Window, anomalous: Window) -> dict[str, tuple[int, int]]:
    """Per service: calls it received in the normal and in the incident window (the traces' edges into it)."""
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for s in stats:
        if _in(s.timestamp, normal):
            out[s.callee][0] += s.calls
        elif _in(s.timestamp, anomalous):
            out[s.callee][1] += s.calls
    return {service: (n, a) for service, (n, a) in out.items()}


def _vanished(
    normal: dict[str, int],
    incident: dict[str, int],
    growth: float,
    meta: dict[tuple[str, str], LogStat],
    service: str,
    spread: dict[str, int],
) -> list[tuple[float, float, str]]:
    """Templates the service printed in the normal window that it stopped printing while still serving.

    A line on the normal path that is no longer reached, while requests keep arriving and
    the service keeps logging its other lines, says the code now leaves that path early
    (an exception thrown before it). Scored like a surge, on the ratio of expected to
    observed lines (+1 each, so a template expected once is no evidence). Only info lines,
    the normal path, and not discounted as new info lines are: a vanished one is that path
    breaking, not a new request mix (fewer requests are ruled out by `growth`).
    """
    out: list[tuple[float, float, str]] = []
    for template_id, n_n in normal.items():
        expected = n_n * growth
        ratio = (expected + LOG_NEW_MIN) / (incident.get(template_id, 0) + LOG_NEW_MIN)
        if ratio <= 1.0:
            continue
        info = meta[(service, template_id)]
        if info.level != "info":
            continue  # an error or warning no longer printed is a failure gone, not one started
        weight = 1.0 / math.sqrt(spread[template_id])
        b = weight * _sigmoid(3.0 * (math.log2(ratio) - math.log2(LOG_SHARE_CENTER)))
        intensity = weight * 4.0 * math.log2(ratio)
        seen = incident.get(template_id, 0)
        finding = f"info template fell to {seen} lines of {expected:.0f} expected: {info.template}"
        out.append((b, intensity, finding))
    return out


def _broken_steps(
    steps: dict[tuple[str, str], list[int]],
    meta: dict[tuple[str, str], LogStat],
    service: str,
    spread: dict[str, int],
) -> list[tuple[float, float, str]]:
    """Normal-path steps (line A, then the service's next line B in the same trace) that stopped.

    A is still reached, as often as the incident says, but B follows it less often than in
    the normal window: the code now leaves the path between them (an exception thrown after
    A). Expected B-after-A is A's incident count times the normal rate of B after A; scored
    like a vanished line. Only info B (the normal path), for the reason `_vanished` gives.
    Needs no traces: A's own count is the traffic that reached the step.
    """
    first_n: dict[str, int] = defaultdict(int)
    first_a: dict[str, int] = defaultdict(int)
    for (first, _), (n_n, n_a) in steps.items():
        first_n[first] += n_n
        first_a[first] += n_a
    out: list[tuple[float, float, str]] = []
    for (first, then), (n_n, n_a) in steps.items():
        if then == END or n_n == 0 or first_a[first] == 0:
            continue
        info = meta.get((service, then))
        if info is None or info.level != "info":
            continue
        expected = first_a[first] * n_n / first_n[first]
        ratio = (expected + LOG_NEW_MIN) / (n_a + LOG_NEW_MIN)
        if ratio <= 1.0:
            continue
        weight = 1.0 / math.sqrt(spread[then])
        b = weight * _sigmoid(3.0 * (math.log2(ratio) - math.log2(LOG_SHARE_CENTER)))
        intensity = weight * 4.0 * math.log2(ratio)
        before = meta.get((service, first))
        finding = (
            f"info line followed its predecessor {n_a} times of {expected:.0f} expected: "
            f"{info.template} (after: {before.template if before else first})"
        )
        out.append((b, intensity, finding))
    return out


def with_trace_edges(topology: Topology, traces: list[TraceStat]) -> Topology:
    """The topology's services plus the call graph the traces show (no CMDB edges given)."""
    deps: dict[str, set[str]] = {name: set(spec.depends_on) for name, spec in topology.services.items()}
    for caller, callee in trace_edges(traces):
        deps.setdefault(caller, set()).add(callee)
        deps.setdefault(callee, set())
    specs = [
        topology.services[name].model_copy(update={"depends_on": tuple(sorted(d))})
        if name in topology.services
        else ServiceSpec(name=name, depends_on=tuple(sorted(d)))
        for name, d in sorted(deps.items())
    ]
    return Topology(specs, source=topology.source, allow_cycles=True)


def with_latest_stretch(
    score: Callable[[Window], dict[str, SignalAnomaly]],
    times: Iterable[float],
    anomalous: Window,
    stretch_seconds: float,
) -> dict[str, SignalAnomaly]:
    """Each service's anomaly over the whole window or over its latest stretch, the stronger.

    A window opened minutes before the fault (the first alert was an unrelated one) is
    mostly normal data: counted over all of it, a line that vanished for the fault's three
    minutes is a mild dip, where over the last `stretch_seconds` of the signal's data (what
    is happening now, when the diagnosis runs) it is the whole story. Both are scored, since
    a fault can also fade before the window ends; per service the stronger anomaly (belief
    x intensity) is kept. Only these two, not every stretch: the best of many stretches
    would flatter every service's noise. A window no longer than one stretch is scored once.
    `times` are the starts of the signal's aggregation windows.
    """
    starts = sorted({t for t in times if _in(t, anomalous)})
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    if not gaps or starts[-1] + median(gaps) - starts[0] <= stretch_seconds:
        return score(anomalous)
    # The latest window start from which a full stretch of data follows.
    latest = max(t for t in starts if t + stretch_seconds <= starts[-1] + median(gaps))
    out = score(anomalous)
    for service, found in score((latest, anomalous[1])).items():
        kept = out.get(service)
        if kept is None or found.belief * found.intensity > kept.belief * kept.intensity:
            out[service] = found
    return out
