"""Regression floors on real incidents: the committed Nezha scenarios (datasets/nezha/).

Floors are the numbers measured (`firebreak rca eval datasets/nezha/online-boutique
datasets/nezha/train-ticket`) minus a margin of 0.05, one pair per system and the same rule
for both; nothing is fitted per case. A floor is never lowered: where a later measurement
minus the margin came out below an earlier floor, the earlier floor stays. A change that
helps one system and hurts the other fails here.

    measured                          AC@1    AC@3
    online-boutique (56 faults)       0.839   0.893   (0.839 / 0.857 before a service that stops
                                                       calling its dependencies while still called
                                                       was trace evidence; AC@1 0.750 before the
                                                       third round's graph and metric changes)
    train-ticket (45 faults)          0.867   0.956   (0.844 / 0.933 before a service no traced
                                                       request reached was off their path; with
                                                       logpairs.csv: a line that stops following
                                                       its predecessor in a trace)
    window opened 5 / 15 min early (AC@1):
    online-boutique                   0.857 / 0.804   (15 min early floored at 0.786 before, main
                                                       measured 0.804 before the sixth round;
                                                       0.821 / 0.768 before the fan-out evidence)
    train-ticket                      0.778 / 0.778   (0.756 / 0.756 before one window above the
        normal range stopped ending the head of own time, two in a row now mark the onset;
        0.733 / 0.733 before own time left out the
        window's leading minutes within the normal range; 0.711 / 0.711 before the off-path prior
        for services no traced request reached; 0.667 / 0.667 before logs were also scored
        over the window's latest two minutes, the stronger per service; lowered once before,
        from 0.689 / 0.733, with logpairs.csv)
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from evals.rca.evaluate import FLOORS, evaluate, rank_candidates, variants
from evals.rca.scenario import load_scenario, load_truth
from tests.realdata import MARGIN, Committed, assert_floors, committed_report, variant_ac1
from tools.nezha_convert import METRIC_COLUMNS

ROOT = Path(__file__).resolve().parents[2] / "datasets" / "nezha"
MEASURED = {
    "nezha/online-boutique": {"ac1": 0.839, "ac3": 0.893},
    "nezha/train-ticket": {"ac1": 0.867, "ac3": 0.956},
}
# An earlier alert opened the incident: the window starts 5 or 15 minutes before the fault.
MEASURED_SHIFTED = {
    "shift-5m": {"nezha/online-boutique": 0.857, "nezha/train-ticket": 0.778},
    "shift-15m": {"nezha/online-boutique": 0.804, "nezha/train-ticket": 0.778},
}
# Every metric under an exporter's name and unit (`ResponseTimeP90(ms)`, `SuccessRateAvg(%)`):
# AC@1 as under ours (0.804 and 0.733 before names were read word by word).
MEASURED_EXPORTER_NAMES = {"nezha/online-boutique": 0.839, "nezha/train-ticket": 0.867}
SYSTEMS = {"nezha/online-boutique": 56, "nezha/train-ticket": 45}


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return committed_report(ROOT, SYSTEMS)


@pytest.fixture(scope="module")
def committed() -> Committed:
    return Committed(ROOT, SYSTEMS)


def test_every_system_keeps_its_floor(report: dict[str, Any]) -> None:
    assert_floors(report, SYSTEMS, MEASURED)


def test_a_window_opened_early_keeps_its_floor(committed: Committed) -> None:
    """The production window opens at the first alert, not at the fault: AC@1 with the
    window starting 5 or 15 minutes early stays within the margin of its measured value.
    (Windows opened late are reported by the eval, not floored: Nezha's faults last about
    four minutes and come every five to nine, so a late window holds the next fault.)"""
    for (shift, group), ac1 in variant_ac1(committed, tuple(MEASURED_SHIFTED)).items():
        floor = MEASURED_SHIFTED[shift][group] - MARGIN
        assert ac1 >= floor, f"{group} {shift} AC@1 {ac1:.3f} fell below {floor:.3f}"


def test_metrics_under_an_exporters_names_keep_their_floor(committed: Committed) -> None:
    for (_, group), ac1 in variant_ac1(committed, ("exporter_names",)).items():
        floor = MEASURED_EXPORTER_NAMES[group] - MARGIN
        assert ac1 >= floor, f"{group} under exporter names: AC@1 {ac1:.3f} fell below {floor:.3f}"


def test_nezhas_own_column_names_and_units_rank_as_ours(committed: Committed) -> None:
    """A converter that keeps Nezha's columns (`PodServerLatencyP90(s)`, `PodSuccessRate(%)` in
    percent, `CpuUsageRate(%)`, `PodWorkload(Ops)`) gives the same top five in every case (before
    names were read word by word: 10 of 56 and 7 of 45, AC@1 0.804 and 0.733)."""
    ours_to_raw = {ours: (raw, scale) for raw, (ours, scale) in METRIC_COLUMNS.items()}
    for path, scenario, _ in committed.each():
        raw = {
            service: {
                ours_to_raw[m][0]: [(t, v / ours_to_raw[m][1]) for t, v in points]
                for m, points in per.items()
            }
            for service, per in scenario.metrics.items()
        }
        assert scenario.symptom.metric is not None
        symptom = scenario.symptom.model_copy(update={"metric": ours_to_raw[scenario.symptom.metric][0]})
        as_raw = rank_candidates(replace(scenario, metrics=raw, symptom=symptom), limit=5)
        assert [c.service for c in as_raw] == [c.service for c in rank_candidates(scenario, limit=5)], (
            path.name
        )


def test_ahead_of_the_published_method_floors_on_every_system(report: dict[str, Any]) -> None:
    for group in SYSTEMS:
        per = report["per_group"][group]
        for floor in FLOORS:
            assert per["rca"]["ac1"] > per[floor]["ac1"], (group, floor, per["rca"], per[floor])
            assert per["rca"]["avg5"] > per[floor]["avg5"], (group, floor, per["rca"], per[floor])


def test_truth_is_the_injected_service_from_the_fault_list(committed: Committed) -> None:
    """Ground truth names a service the scenario has data for, and a fault type Nezha injects."""
    for path, scenario, truth in committed.each():
        assert truth.root_cause in scenario.metrics, path.name
        assert truth.root_cause in path.name
        assert truth.fault in {"cpu_contention", "cpu_consumed", "network_delay", "return", "exception"}


def test_robustness_variants_shift_the_window_move_the_symptom_and_drop_signals() -> None:
    path = ROOT / "train-ticket" / "2023-01-30T14-00-16-ts-security-service-network_delay"
    scenario, truth = load_scenario(path), load_truth(path)
    made = dict(variants(scenario, truth))
    assert list(made) == [
        "shift-15m", "shift-5m", "shift+5m", "shift+15m", "off_path", "symptom_service", "exporter_names",
        "no_traces", "no_logs", "metrics_only",
    ]  # fmt: skip
    start, end = scenario.anomalous
    assert made["shift-5m"].anomalous == (start - 300, end)  # an earlier alert: a longer window
    assert made["shift+15m"].anomalous == (start + 900, start + 900 + (end - start))  # a late one
    assert made["shift+15m"].normal[1] == start + 900 - 60
    moved = made["off_path"].symptom.service
    assert moved != truth.root_cause and moved not in scenario.topology.blast_radius(truth.root_cause)
    as_alerted = made["symptom_service"].symptom
    assert as_alerted.service == scenario.symptom.service and as_alerted.metric is None
    renamed = made["exporter_names"]
    assert renamed.symptom.metric == "ResponseTimeP90(ms)" and scenario.symptom.metric == "latency_p90"
    ours, theirs = scenario.metrics[scenario.symptom.service], renamed.metrics[scenario.symptom.service]
    assert theirs["ResponseTimeP90(ms)"][0][1] == ours["latency_p90"][0][1] * 1000
    assert not made["no_traces"].traces and made["no_traces"].logs
    assert not made["no_logs"].logs and made["no_logs"].traces
    only = made["metrics_only"]
    assert not (only.traces or only.logs or only.log_pairs) and only.metrics == scenario.metrics
    report = evaluate([path], robustness=True).to_json()
    assert set(report["robustness"]) == set(made)
    assert report["robustness"]["no_traces"]["nezha/train-ticket"]["rca"]["n"] == 1
