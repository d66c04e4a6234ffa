"""The evaluation harness: rank every scenario, then check against truth.json.

AC@k is the share of scenarios whose true root cause is among the top k; Avg@5 is the
mean of AC@1..AC@5. The same numbers are computed for two baselines, so a number for
the ranking always comes with what a naive method gets on the same scenarios:

- most_anomalous: services by their strongest z-score, topology ignored;
- symptom: the symptom service, then what it depends on, nearest first.

And two published-method floors (`evals.rca.baselines`): a BARO-style change point + robust
scorer, and a PageRank random walk on the call graph.

Scores are reported per group (dataset/system, from sources.json, else the folder that
holds the scenario), per fault kind within each group, and for robustness variants of every
scenario (`variants`): the incident window shifted, the symptom moved off the root cause's
call path, and one signal removed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from evals.rca.baselines import rank_baro, rank_pagerank
from evals.rca.scenario import Scenario, Truth, load_scenario, load_truth
from models.rca import LEAD_IN_SECONDS, Candidate, Symptom
from rca.ranking import rank_most_anomalous, rank_root_causes, rank_symptom_first
from rca.series import Kind, Point, metric_info

METHODS = ("rca", "most_anomalous", "symptom", "baro", "pagerank")
BASELINES = ("most_anomalous", "symptom")
FLOORS = ("baro", "pagerank")
SHIFTS_MINUTES = (-15, -5, 5, 15)
NORMAL_GAP = 60.0  # a shifted normal window ends this long before the shifted incident window


def position(ranking: Sequence[str], truth: str) -> int | None:
    """1-based rank of the truth in a ranking, None when it is absent."""
    try:
        return ranking.index(truth) + 1
    except ValueError:
        return None


def accuracy_at(positions: Sequence[int | None], k: int) -> float:
    if not positions:
        return 0.0
    return sum(1 for p in positions if p is not None and p <= k) / len(positions)


def summarize(positions: Sequence[int | None]) -> dict[str, Any]:
    acs = [accuracy_at(positions, k) for k in range(1, 6)]
    return {
        "n": len(positions),
        "ac1": round(acs[0], 4),
        "ac3": round(acs[2], 4),
        "avg5": round(sum(acs) / 5, 4),
    }


@dataclass
class CaseResult:
    name: str
    fault: str
    root_cause: str
    positions: dict[str, int | None]
    top: list[str]
    seconds: float  # load + rank with the ranking (baselines not counted)
    group: str = ""  # dataset/system
    variant: str = "base"
    signals: tuple[str, ...] = ("metrics",)
    window: tuple[float, float] = (0.0, 0.0)  # the incident window ranked
    # A shifted window can hold another recorded fault; its root cause ranked first here.
    first_is_other_fault: bool = False


def _summaries(cases: Sequence[CaseResult], name: str) -> dict[str, Any]:
    out = summarize([c.positions[name] for c in cases])
    kinds = sorted({c.fault for c in cases})
    out["per_kind"] = {
        kind: summarize([c.positions[name] for c in cases if c.fault == kind]) for kind in kinds
    }
    return out


@dataclass
class Report:
    cases: list[CaseResult] = field(default_factory=list)  # the scenarios as recorded
    variants: list[CaseResult] = field(default_factory=list)  # robustness runs

    def method(self, name: str) -> dict[str, Any]:
        return _summaries(self.cases, name)

    def groups(self) -> list[str]:
        return sorted({c.group for c in self.cases})

    def to_json(self) -> dict[str, Any]:
        out = self.method("rca")
        out["baselines"] = {name: self.method(name) for name in BASELINES}
        out["floors"] = {name: self.method(name) for name in FLOORS}
        seconds = [c.seconds for c in self.cases]
        out["seconds_per_scenario"] = round(sum(seconds) / len(seconds), 4) if seconds else 0.0
        out["seconds_max"] = round(max(seconds), 4) if seconds else 0.0
        out["per_group"] = {}
        for group in self.groups():
            cases = [c for c in self.cases if c.group == group]
            out["per_group"][group] = {m: _summaries(cases, m) for m in METHODS}
            # A system scored on what its cases record: a dataset missing traces or logs for
            # some cases says so here, not only in the pooled number.
            out["per_group"][group]["per_signals"] = {
                "+".join(signals): {
                    m: summarize([c.positions[m] for c in cases if c.signals == signals]) for m in METHODS
                }
                for signals in sorted({c.signals for c in cases}, key=lambda s: (len(s), s))
            }
            out["per_group"][group]["seconds_per_scenario"] = round(
                sum(c.seconds for c in cases) / len(cases), 4
            )
        if self.variants:
            robustness: dict[str, dict[str, Any]] = {}
            for variant in sorted({c.variant for c in self.variants}, key=_variant_order):
                robustness[variant] = {}
                for group in self.groups():
                    cases = [c for c in self.variants if c.variant == variant and c.group == group]
                    if cases:
                        robustness[variant][group] = {
                            m: summarize([c.positions[m] for c in cases]) for m in METHODS
                        }
                        robustness[variant][group]["rca"]["first_is_other_fault"] = sum(
                            c.first_is_other_fault for c in cases
                        )
            out["robustness"] = robustness
        return out


def _variant_order(name: str) -> tuple[int, int, str]:
    if name.startswith("shift"):
        return (0, int(name.removeprefix("shift").removesuffix("m")), name)
    return (1, 0, name)


def rank_candidates(scenario: Scenario, limit: int | None = None) -> list[Candidate]:
    """The ranker's candidates for one scenario, on every signal it has (no truth involved)."""
    return rank_root_causes(
        scenario.topology,
        scenario.metrics,
        scenario.symptom,
        scenario.normal,
        scenario.anomalous,
        alerts=scenario.alerts,
        limit=limit,
        traces=scenario.traces,
        logs=scenario.logs,
        log_pairs=scenario.log_pairs,
        trace_normal=scenario.baseline("traces"),
        log_normal=scenario.baseline("logs"),
    )


def rank_scenario(scenario: Scenario, methods: Sequence[str] = METHODS) -> dict[str, list[str]]:
    """The ranking and the baselines for one scenario (no truth involved)."""
    out: dict[str, list[str]] = {}
    if "rca" in methods:
        out["rca"] = [c.service for c in rank_candidates(scenario)]
    services = list(scenario.topology.services)
    if "most_anomalous" in methods:
        out["most_anomalous"] = rank_most_anomalous(
            scenario.metrics, scenario.normal, scenario.anomalous, services=services
        )
    if "symptom" in methods:
        out["symptom"] = rank_symptom_first(scenario.topology, scenario.symptom.service)
    if "baro" in methods:
        out["baro"] = rank_baro(scenario.metrics, scenario.normal, scenario.anomalous, services)
    if "pagerank" in methods:
        out["pagerank"] = rank_pagerank(
            scenario.topology, scenario.metrics, scenario.normal, scenario.anomalous
        )
    return out


def _group(path: Path) -> str:
    sources = path / "sources.json"
    if sources.is_file():
        try:
            raw = json.loads(sources.read_text(encoding="utf-8"))
            return f"{raw.get('dataset', '?')}/{raw.get('system', '?')}"
        except (OSError, json.JSONDecodeError, AttributeError):
            pass
    return path.parent.name or "."


def _signals(scenario: Scenario) -> tuple[str, ...]:
    return ("metrics",) + (("traces",) if scenario.traces else ()) + (("logs",) if scenario.logs else ())


def variants(scenario: Scenario, truth: Truth) -> Iterator[tuple[str, Scenario]]:
    """Robustness variants of one scenario.

    - shift<N>m: the incident window starts N minutes off (negative: an earlier alert opened
      the incident; positive: the first alert came late) and ends at "now", at least as late
      as the recorded window's end; the normal window keeps its length and ends one minute
      before the shifted start (so after a late alert the fault's onset can fall inside it).
    - off_path: the symptom is a service that does not depend on the root cause (the first
      such service by name), where the topology has one. Uses the truth only to build the case.
    - symptom_service: the symptom as an alert gives it, the service without its series (the
      ranking infers the series, as on the live path), where the scenario names one.
    - exporter_names: every metric under a name and unit an exporter might give it instead of
      the `<kind>_<stat>` convention (`ResponseTimeP90(ms)` in milliseconds, `ErrorRateAvg(%)`
      and `SuccessRateAvg(%)` in percent, `CpuUsageAvg(%)` x100), the symptom's series renamed
      alike: the ranking must read them as the same quantities.
    - no_traces, no_logs: that signal removed, for scenarios that have it.
    - metrics_only: traces and logs both removed, for scenarios that have either.
    - from_alert, from_alert_lead: where the scenario records when its alert fired, the window
      opens there (what an incident opened by that alert sees), and LEAD_IN_SECONDS before it
      (where the live path opens it); the normal window as recorded.
    """
    length = scenario.anomalous[1] - scenario.anomalous[0]
    normal_len = scenario.normal[1] - scenario.normal[0]
    for minutes in SHIFTS_MINUTES:
        start = scenario.anomalous[0] + minutes * 60.0
        end = max(scenario.anomalous[1], start + length)
        normal = (start - NORMAL_GAP - normal_len, start - NORMAL_GAP)
        yield f"shift{minutes:+d}m", replace(scenario, anomalous=(start, end), normal=normal)
    topo = scenario.topology
    if truth.root_cause in topo:
        upstream = topo.blast_radius(truth.root_cause) | {truth.root_cause}
        off = sorted(s for s in topo.services if s not in upstream and s in scenario.metrics)
        if off:
            yield (
                "off_path",
                replace(scenario, symptom=Symptom(service=off[0], metric=scenario.symptom.metric)),
            )
    if scenario.symptom.metric is not None:
        yield "symptom_service", replace(scenario, symptom=Symptom(service=scenario.symptom.service))
    renamed = {
        service: dict(exporter_named(metric, points) for metric, points in per.items())
        for service, per in scenario.metrics.items()
    }
    symptom_metric = scenario.symptom.metric
    if symptom_metric is not None:
        symptom_metric = exporter_named(symptom_metric, [])[0]
    yield (
        "exporter_names",
        replace(
            scenario,
            metrics=renamed,
            symptom=Symptom(service=scenario.symptom.service, metric=symptom_metric),
        ),
    )
    if scenario.traces:
        yield "no_traces", replace(scenario, traces=[])
    if scenario.logs:
        yield "no_logs", replace(scenario, logs=[], log_pairs=[])
    if scenario.traces or scenario.logs:
        # Many deployments (and public datasets) have metrics alone.
        yield "metrics_only", replace(scenario, traces=[], logs=[], log_pairs=[])
    if scenario.alert_at is not None and scenario.alert_at < scenario.anomalous[1]:
        end = scenario.anomalous[1]
        yield "from_alert", replace(scenario, anomalous=(scenario.alert_at, end))
        opened = max(scenario.normal[1], scenario.alert_at - LEAD_IN_SECONDS)
        yield "from_alert_lead", replace(scenario, anomalous=(opened, end))


# Kind -> (name before the statistic, unit suffix, factor from our unit to it).
_EXPORTER_NAMES = {
    Kind.LATENCY: ("ResponseTime", "(ms)", 1000.0),
    Kind.ERRORS: ("ErrorRate", "(%)", 100.0),
    Kind.AVAILABILITY: ("SuccessRate", "(%)", 100.0),
    Kind.REQUESTS: ("Throughput", "", 1.0),
    Kind.CPU: ("CpuUsage", "(%)", 100.0),
    Kind.MEMORY: ("MemoryUsage", "", 1.0),
}


def exporter_named(metric: str, points: Sequence[Point]) -> tuple[str, list[Point]]:
    """A metric as an exporter might name it, in that name's unit (OTHER kinds unchanged)."""
    info = metric_info(metric)
    if info.kind not in _EXPORTER_NAMES:
        return metric, list(points)
    stem, unit, factor = _EXPORTER_NAMES[info.kind]
    name = f"{stem}{(info.stat or '').capitalize()}{unit}"
    return name, [(t, v * factor) for t, v in points]


def evaluate(
    paths: Sequence[Path],
    progress: Callable[[CaseResult], None] | None = None,
    *,
    robustness: bool = False,
    methods: Sequence[str] = METHODS,
) -> Report:
    report = Report()
    for path in paths:
        started = time.perf_counter()
        scenario = load_scenario(path)
        rankings = rank_scenario(scenario, ("rca",))
        seconds = time.perf_counter() - started
        rankings.update(rank_scenario(scenario, [m for m in methods if m != "rca"]))
        truth = load_truth(path)  # only now, after ranking
        group = _group(path)
        case = CaseResult(
            name=scenario.name,
            fault=truth.fault,
            root_cause=truth.root_cause,
            positions={m: position(rankings.get(m, []), truth.root_cause) for m in METHODS},
            top=rankings["rca"][:5],
            seconds=seconds,
            group=group,
            signals=_signals(scenario),
            window=scenario.anomalous,
        )
        report.cases.append(case)
        if progress is not None:
            progress(case)
        if robustness:
            for name, variant in variants(scenario, truth):
                ranked = rank_scenario(variant, methods)
                report.variants.append(
                    replace(
                        case,
                        variant=name,
                        positions={m: position(ranked.get(m, []), truth.root_cause) for m in METHODS},
                        top=ranked["rca"][:5],
                        signals=_signals(variant),
                        window=variant.anomalous,
                    )
                )
    _mark_other_faults(report)
    return report


def _mark_other_faults(report: Report) -> None:
    """Flag shifted windows whose first candidate is the root cause of another recorded fault
    of the same system whose own incident window overlaps this one (a window opened early
    can hold the previous injection). Such a miss names a real fault, just not this one."""
    by_group: dict[str, list[CaseResult]] = {}
    for case in report.cases:
        by_group.setdefault(case.group, []).append(case)
    for case in report.variants:
        if not case.variant.startswith("shift") or not case.top or case.positions["rca"] == 1:
            continue
        start, end = case.window
        others = {
            other.root_cause
            for other in by_group.get(case.group, [])
            if other.name != case.name and other.window[0] < end and other.window[1] > start
        }
        case.first_is_other_fault = case.top[0] in others - {case.root_cause}


def render(report: Report) -> str:
    """Plain-text tables: per group and per fault kind, the ranking beside the baselines;
    then the robustness variants, then pooled (pooled numbers hide per-system failures)."""
    data = report.to_json()
    header = f"{'':<24}{'n':>5}  " + "  ".join(f"{m:^20}" for m in METHODS)
    sub = f"{'':<24}{'':>5}  " + "  ".join(f"{'AC@1':>6}{'AC@3':>7}{'Avg@5':>7}" for _ in METHODS)
    lines: list[str] = []

    def row(label: str, per_method: dict[str, dict[str, Any]]) -> str:
        n = per_method["rca"]["n"]
        cells = "  ".join(
            f"{per_method[m]['ac1']:>6.3f}{per_method[m]['ac3']:>7.3f}{per_method[m]['avg5']:>7.3f}"
            for m in METHODS
        )
        return f"{label[:24]:<24}{n:>5}  {cells}"

    for group, per in data["per_group"].items():
        lines += [f"== {group}", header, sub, row("all faults", per)]
        for kind in per["rca"]["per_kind"]:
            lines.append(row(kind, {m: per[m]["per_kind"][kind] for m in METHODS}))
        if len(per["per_signals"]) > 1:
            for signals, by_method in per["per_signals"].items():
                lines.append(row(f"with {signals}", by_method))
        lines.append(f"ranking time per scenario: {per['seconds_per_scenario'] * 1000:.1f} ms (load + rank)")
        lines.append("")
    if data.get("robustness"):
        lines += ["== robustness (variant, system)", header, sub]
        for variant, per_group in data["robustness"].items():
            for group, per in per_group.items():
                lines.append(row(f"{variant} {group.split('/')[-1]}", per))
        other = [
            f"{variant} {group.split('/')[-1]} {per['rca']['first_is_other_fault']}"
            for variant, per_group in data["robustness"].items()
            for group, per in per_group.items()
            if per["rca"].get("first_is_other_fault")
        ]
        if other:
            lines.append(
                "shifted-window misses whose first candidate is the root cause of another recorded "
                "fault overlapping that window: " + ", ".join(other)
            )
        lines.append("")
    methods = {"rca": data, **data["baselines"], **data["floors"]}
    lines += ["== pooled", header, sub, row("overall", methods)]
    if len(data["per_group"]) <= 1:
        for kind in data["per_kind"]:
            lines.append(row(kind, {m: methods[m]["per_kind"][kind] for m in METHODS}))
    lines.append(
        f"ranking time per scenario: {data['seconds_per_scenario'] * 1000:.1f} ms mean, "
        f"{data['seconds_max'] * 1000:.1f} ms max (load + rank)"
    )
    return "\n".join(lines)
