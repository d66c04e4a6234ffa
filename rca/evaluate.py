"""The evaluation harness: rank every scenario, then check against truth.json.

AC@k is the share of scenarios whose true root cause is among the top k; Avg@5 is the
mean of AC@1..AC@5. The same numbers are computed for two baselines, so a number for
the ranking always comes with what a naive method gets on the same scenarios:

- most_anomalous: services by their strongest z-score, topology ignored;
- symptom: the symptom service, then what it depends on, nearest first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rca.ranking import rank_most_anomalous, rank_root_causes, rank_symptom_first
from rca.scenario import Scenario, load_scenario, load_truth

METHODS = ("rca", "most_anomalous", "symptom")
BASELINES = ("most_anomalous", "symptom")


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
    seconds: float


@dataclass
class Report:
    cases: list[CaseResult] = field(default_factory=list)

    def method(self, name: str) -> dict[str, Any]:
        out = summarize([c.positions[name] for c in self.cases])
        kinds = sorted({c.fault for c in self.cases})
        out["per_kind"] = {
            kind: summarize([c.positions[name] for c in self.cases if c.fault == kind]) for kind in kinds
        }
        return out

    def to_json(self) -> dict[str, Any]:
        out = self.method("rca")
        out["baselines"] = {name: self.method(name) for name in BASELINES}
        seconds = [c.seconds for c in self.cases]
        out["seconds_per_scenario"] = round(sum(seconds) / len(seconds), 4) if seconds else 0.0
        return out


def rank_scenario(scenario: Scenario) -> dict[str, list[str]]:
    """The ranking and both baselines for one scenario (no truth involved)."""
    candidates = rank_root_causes(
        scenario.topology,
        scenario.metrics,
        scenario.symptom,
        scenario.normal,
        scenario.anomalous,
        alerts=scenario.alerts,
        limit=None,
    )
    return {
        "rca": [c.service for c in candidates],
        "most_anomalous": rank_most_anomalous(
            scenario.metrics, scenario.normal, scenario.anomalous, services=scenario.topology.services
        ),
        "symptom": rank_symptom_first(scenario.topology, scenario.symptom.service),
    }


def evaluate(paths: Sequence[Path], progress: Callable[[CaseResult], None] | None = None) -> Report:
    report = Report()
    for path in paths:
        started = time.perf_counter()
        scenario = load_scenario(path)
        rankings = rank_scenario(scenario)
        seconds = time.perf_counter() - started
        truth = load_truth(path)  # only now, after ranking
        case = CaseResult(
            name=scenario.name,
            fault=truth.fault,
            root_cause=truth.root_cause,
            positions={m: position(rankings[m], truth.root_cause) for m in METHODS},
            top=rankings["rca"][:5],
            seconds=seconds,
        )
        report.cases.append(case)
        if progress is not None:
            progress(case)
    return report


def render(report: Report) -> str:
    """A plain-text table: overall and per fault kind, the ranking beside the baselines."""
    data = report.to_json()
    header = f"{'':<22}{'n':>5}  " + "  ".join(f"{m:^22}" for m in METHODS)
    sub = f"{'':<22}{'':>5}  " + "  ".join(f"{'AC@1':>6}{'AC@3':>8}{'Avg@5':>8}" for _ in METHODS)
    lines = [header, sub]

    def row(label: str, per_method: dict[str, dict[str, Any]]) -> str:
        n = per_method["rca"]["n"]
        cells = "  ".join(
            f"{per_method[m]['ac1']:>6.3f}{per_method[m]['ac3']:>8.3f}{per_method[m]['avg5']:>8.3f}"
            for m in METHODS
        )
        return f"{label:<22}{n:>5}  {cells}"

    methods = {"rca": data, **data["baselines"]}
    lines.append(row("overall", methods))
    for kind in data["per_kind"]:
        lines.append(row(kind, {m: methods[m]["per_kind"][kind] for m in METHODS}))
    lines.append(f"ranking time per scenario: {data['seconds_per_scenario'] * 1000:.1f} ms (load + rank)")
    return "\n".join(lines)
