"""The PetShop converter (tools/, not runtime) on a tiny raw tree in PetShop's own layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.rca.evaluate import evaluate
from evals.rca.scenario import find_scenarios, load_scenario, load_truth
from tools.petshop_convert import convert, main
from tools.wide_csv import ConvertError

NODES = ["PetSite", "PetSearch_AWS::ECS::Fargate", "petInfo_AWS::DynamoDB::Table"]
COLUMNS = [(n, m, s) for n in NODES for m, s in (("latency", "Average"), ("availability", "Average"))]
SEARCH_DELAY = "aws ssm put-parameter --name '/petstore/searchdelay' --value '1000' --overwrite"


def _metrics(
    path: Path, start: int, rows: int, delayed_from: int | None, columns: list[tuple[str, str, str]] = COLUMNS
) -> None:
    """PetShop's wide file: four header rows, a row per 5-minute step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        ",".join(["microservice", *(c[0] for c in columns)]),
        ",".join(["metric", *(c[1] for c in columns)]),
        ",".join(["statistic", *(c[2] for c in columns)]),
        "unix_timestamp" + "," * len(columns),
    ]
    for i in range(rows):
        delayed = delayed_from is not None and i >= delayed_from
        values = []
        for node, metric, _ in columns:
            if metric == "availability":
                values.append("100.0")
            elif node == "petInfo_AWS::DynamoDB::Table" and i % 7 == 0:
                values.append("")  # a gap: no request in that step
            else:
                base = {"PetSite": 0.09, "PetSearch_AWS::ECS::Fargate": 0.02}.get(node, 0.005)
                slow = 1.0 if delayed and node != "petInfo_AWS::DynamoDB::Table" else 0.0
                values.append(f"{base + slow + 0.001 * (i % 5)}")
        lines.append(f"{float(start + 300 * i)}," + ",".join(values))
    path.write_text("\n".join(lines) + "\n")


def _target(path: Path, root_cause: str = "PetSearch_AWS::ECS::Fargate", command: str = SEARCH_DELAY) -> None:
    target = {
        "target": {"node": "PetSite", "metric": "latency", "agg": "Average", "timestamp": 1_681_350_548},
        "root_cause": {"node": root_cause, "metric": None},
        "metadata": {"reproducibility": {"command": command}},
    }
    path.write_text(json.dumps(target))


def _graph(path: Path) -> None:
    """Adjacency matrix: the row's node calls the column's node."""
    path.parent.mkdir(parents=True, exist_ok=True)
    calls = {
        ("PetSite", "PetSearch_AWS::ECS::Fargate"),
        ("PetSearch_AWS::ECS::Fargate", "petInfo_AWS::DynamoDB::Table"),
    }
    lines = ["," + ",".join(NODES)]
    lines += [",".join([a, *("1.0" if (a, b) in calls else "0.0" for b in NODES)]) for a in NODES]
    path.write_text("\n".join(lines) + "\n")


def _raw(root: Path) -> Path:
    traffic = root / "dataset" / "high_traffic"
    _graph(traffic / "graph.csv")
    _metrics(traffic / "noissue" / "metrics.csv", 1_693_922_400, rows=100, delayed_from=None)
    _metrics(traffic / "train" / "issue_0" / "metrics.csv", 1_681_350_000, rows=5, delayed_from=2)
    _target(traffic / "train" / "issue_0" / "target.json")
    # temporal_traffic1's fault-free file is over 4 MiB, absent from the copy available here.
    temporal = root / "dataset" / "temporal_traffic1"
    _graph(temporal / "graph.csv")
    _metrics(temporal / "test" / "issue_0" / "metrics.csv", 1_681_360_000, rows=5, delayed_from=2)
    _target(temporal / "test" / "issue_0" / "target.json")
    return root


def test_each_issue_becomes_a_scenario_with_its_targets_truth(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert convert(_raw(tmp_path / "raw"), out, normal_hours=2.0) == 1
    assert not (out / "temporal-traffic1").exists()
    paths = find_scenarios([out / "high-traffic"])
    assert [p.name for p in paths] == ["train-issue_0"]
    scenario, truth = load_scenario(paths[0]), load_truth(paths[0])
    assert (truth.root_cause, truth.fault) == ("PetSearch_AWS::ECS::Fargate", "delay")
    assert (scenario.symptom.service, scenario.symptom.metric) == ("PetSite", "latency_avg")
    assert scenario.topology.dependencies("PetSite") == ["PetSearch_AWS::ECS::Fargate"]
    assert scenario.anomalous == (1_681_350_000, 1_681_351_200)
    assert scenario.alert_at == 1_681_350_548  # the target's alert time, for the from-alert variants
    # The last two fault-free hours, re-timed to end one step before the incident.
    assert scenario.normal == (1_681_350_000 - 300 - 2 * 3600 + 300, 1_681_350_000 - 300)
    latency = scenario.metrics["PetSearch_AWS::ECS::Fargate"]["latency_avg"]
    assert len([t for t, _ in latency if scenario.normal[0] <= t <= scenario.normal[1]]) == 24
    assert {v for _, v in scenario.metrics["PetSite"]["availability_avg"]} == {1.0}  # percent -> ratio
    sources = json.loads((paths[0] / "sources.json").read_text())
    assert sources["normal_recorded"][1] == 1_693_922_400 + 300 * 99
    report = evaluate(paths).to_json()
    assert report["per_group"]["petshop/high-traffic"]["rca"]["ac1"] == 1.0  # a 1 s delay at the root


def test_bad_raw_data_is_refused_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConvertError, match="no dataset/"):
        convert(tmp_path, tmp_path / "out")
    raw = _raw(tmp_path / "raw")
    issue = raw / "dataset" / "high_traffic" / "train" / "issue_0"
    _target(issue / "target.json", command="kubectl delete pod petsearch")
    with pytest.raises(ConvertError, match=r"issue_0/target.json: metadata.reproducibility.command"):
        convert(raw, tmp_path / "out")
    (issue / "target.json").write_text(json.dumps({"target": {"node": "PetSite"}}))
    with pytest.raises(ConvertError, match=r"issue_0/target.json: target.metric is missing"):
        convert(raw, tmp_path / "out")
    _target(issue / "target.json")
    _metrics(issue / "metrics.csv", 1_681_350_000, 5, 2, [*COLUMNS, ("PetSite", "cpu", "Maximum")])
    with pytest.raises(
        ConvertError, match=r"issue_0/metrics.csv: column 8: metric 'cpu' / statistic 'Maximum'"
    ):
        convert(raw, tmp_path / "out")
    with pytest.raises(SystemExit):
        main([str(raw), str(tmp_path / "out")])
