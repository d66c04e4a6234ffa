"""Regression floors on real incidents: the committed PetShop scenarios (datasets/petshop/).

Floors are the numbers measured (`firebreak rca eval datasets/petshop/high-traffic
datasets/petshop/low-traffic`, 2026-11-30) minus a margin of 0.05, one pair per traffic level,
the same rule as the Nezha floors (tests/unit/test_rca_real_data.py); nothing is fitted per
case. A floor is never lowered.

    measured                       AC@1    AC@3    (BARO-style / PageRank AC@1)
    high-traffic (26 issues)       0.769   0.846   (0.154 / 0.346); 0.654 / 0.731 before an
                                                   anomaly that held while the symptom was
                                                   normal stopped counting as its cause,
                                                   0.385 / 0.615 before a service that stopped
                                                   failing fast lost its latency baseline,
                                                   0.269 / 0.577 before failed requests had to
                                                   start where requests fail
    low-traffic (26 issues)        0.923   0.962   (0.192 / 0.385); 0.885 / 0.962 before a
                                                   mild symptom held for minutes told its quiet
                                                   times (2026-12-01), 0.846 / 0.962 before

High traffic is low because its fault-free recording (September 2023) comes from another
deployment state than its issue files (April 2023): the price-check Lambda steps ran ~0.38 s
there against 1.5-3 s in every issue file, and lead the ranking in all 19 high-traffic
misses before the failed-requests prior (README, "PetShop"); they had failed every request,
fast, in that recording. PageRank's AC@3 (0.885) is still ahead there, so no "ahead of the
baselines" check is made here.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from evals.rca.evaluate import rank_candidates, variants
from evals.rca.scenario import Scenario
from models.rca import LEAD_IN_SECONDS
from tests.realdata import MARGIN, Committed, assert_floors, committed_report, variant_ac1

ROOT = Path(__file__).resolve().parents[2] / "datasets" / "petshop"
MEASURED = {
    "petshop/high-traffic": {"ac1": 0.769, "ac3": 0.846},
    "petshop/low-traffic": {"ac1": 0.923, "ac3": 0.962},
}
SYSTEMS = {"petshop/high-traffic": 26, "petshop/low-traffic": 26}
# The window as the live path opens it, LEAD_IN_SECONDS before the alert fired, and at the alert
# itself (AC@1; at the alert 0.577 and 0.615 before the ranking opened the window back to the
# symptom's onset; low traffic 0.654 before a mild symptom held for minutes told its quiet times).
MEASURED_FROM_ALERT = {"petshop/high-traffic": 0.654, "petshop/low-traffic": 0.692}
# With the lead-in, 0.692 and 0.808 before the symptom's quiet times were read since the normal
# period, not only in the window; low traffic 0.846 before a mild symptom told its quiet times.
MEASURED_FROM_ALERT_LEAD = {"petshop/high-traffic": 0.731, "petshop/low-traffic": 0.885}
# The symptom as an alert names it, the service without its series (AC@1; high traffic was
# 0.692 while the inferred series was the strongest, not the failing one).
MEASURED_SYMPTOM_SERVICE = {"petshop/high-traffic": 0.769, "petshop/low-traffic": 0.885}


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return committed_report(ROOT, SYSTEMS)


@pytest.fixture(scope="module")
def committed() -> Committed:
    return Committed(ROOT, SYSTEMS)


def test_every_traffic_level_keeps_its_floor(report: dict[str, Any]) -> None:
    assert_floors(report, SYSTEMS, MEASURED)


def test_truth_is_the_root_cause_node_of_the_issue_target(committed: Committed) -> None:
    """Ground truth names a node the scenario has data for and its topology holds, and one of
    the three kinds of issue PetShop injects."""
    for path, scenario, truth in committed.each():
        assert truth.root_cause in scenario.metrics and truth.root_cause in scenario.topology, path
        assert truth.fault in {"delay", "errors", "request_overload"}, path
        assert scenario.normal[1] < scenario.anomalous[0], path


def test_the_window_the_live_path_would_open_keeps_its_floor(committed: Committed) -> None:
    """Each issue records when its alert fired. An incident opened by that alert opens its
    window the lead-in before it (the fault began before the alert: the alarm waits for its
    condition to hold); a window opened at the alert itself is opened back to the symptom's
    onset by the ranking. AC@1 on both stays within the margin of its measured value."""

    def window_shapes(scenario: Scenario, made: dict[str, Scenario]) -> None:
        assert scenario.alert_at is not None and scenario.anomalous[0] < scenario.alert_at, scenario.path
        assert made["from_alert"].anomalous == (scenario.alert_at, scenario.anomalous[1])
        lead = made["from_alert_lead"]
        assert lead.anomalous == (scenario.alert_at - LEAD_IN_SECONDS, scenario.anomalous[1])
        assert lead.normal == scenario.normal

    measured = {"from_alert": MEASURED_FROM_ALERT, "from_alert_lead": MEASURED_FROM_ALERT_LEAD}
    for (name, group), ac1 in variant_ac1(committed, tuple(measured), window_shapes).items():
        floor = measured[name][group] - MARGIN
        assert ac1 >= floor, f"{group} {name}: AC@1 {ac1:.3f} fell below {floor:.3f}"


def test_a_symptom_named_as_an_alert_names_it_keeps_its_floor(committed: Committed) -> None:
    """An alert names a service, not a series: the ranking infers the series (a failing one
    before a slow one), and AC@1 stays within the margin of its measured value."""
    for (_, group), ac1 in variant_ac1(committed, ("symptom_service",)).items():
        floor = MEASURED_SYMPTOM_SERVICE[group] - MARGIN
        assert ac1 >= floor, f"{group} with the symptom's service only: AC@1 {ac1:.3f} fell below {floor:.3f}"


def test_availability_in_percent_ranks_as_a_ratio(committed: Committed) -> None:
    """PetShop reports availability in percent (the converter divides by 100); another converter,
    or an exporter, may not. The ranking must not depend on which."""
    for path, scenario, _ in committed.each("petshop/high-traffic"):
        percent = {
            service: {
                metric: [(t, v * 100) for t, v in points] if metric.startswith("availability") else points
                for metric, points in per.items()
            }
            for service, per in scenario.metrics.items()
        }
        as_ratio = [c.service for c in rank_candidates(scenario, limit=5)]
        in_percent = [c.service for c in rank_candidates(replace(scenario, metrics=percent), limit=5)]
        assert in_percent == as_ratio, path.name


def test_metrics_under_other_names_and_units_rank_as_under_ours(committed: Committed) -> None:
    """Another converter or exporter names the same series its own way: PetShop's own statistic
    names (`latency_Average`, availability in percent) or an exporter's (`ResponseTimeP90(ms)` in
    milliseconds, `SuccessRateAvg(%)`: the eval's `exporter_names` variant). Each is read as the
    same quantity in the same unit, and the ranking is the same. Before names were read word by
    word, the exporter's names gave AC@1 0.000 on high traffic."""
    native_stat = {"avg": "Average", "sum": "Sum"}
    for path, scenario, truth in committed.each("petshop/high-traffic"):
        as_ours = [c.service for c in rank_candidates(scenario, limit=5)]
        native = {
            service: {
                f"{kind}_{native_stat.get(stat, stat)}": [
                    (t, v * 100 if kind == "availability" else v) for t, v in points
                ]
                for metric, points in per.items()
                for kind, _, stat in [metric.rpartition("_")]
            }
            for service, per in scenario.metrics.items()
        }
        symptom = scenario.symptom
        assert symptom.metric is not None
        kind, _, stat = symptom.metric.rpartition("_")
        renamed = replace(
            scenario,
            metrics=native,
            symptom=symptom.model_copy(update={"metric": f"{kind}_{native_stat.get(stat, stat)}"}),
        )
        assert [c.service for c in rank_candidates(renamed, limit=5)] == as_ours, path.name
        exporter = dict(variants(scenario, truth))["exporter_names"]
        assert exporter.symptom.metric != symptom.metric
        assert [c.service for c in rank_candidates(exporter, limit=5)] == as_ours, path.name
