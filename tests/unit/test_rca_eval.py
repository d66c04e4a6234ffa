"""The evaluation harness: metric math on a toy set, scenario files, the CLI, and the floors."""

from __future__ import annotations

import csv
import gzip
import json
import shutil
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cli.main import app
from evals.rca.evaluate import (
    METHODS,
    CaseResult,
    Report,
    _mark_other_faults,
    accuracy_at,
    evaluate,
    position,
    rank_candidates,
    render,
    summarize,
)
from evals.rca.scenario import ScenarioError, find_scenarios, load_scenario, load_truth
from evals.rca.simulate import FAULTS, simulate
from rca.series import parse_time

SEED = 2026  # not a seed the ranking was tuned on (0 and 1 were)
PER_FAULT = 10


def test_position_and_accuracy_math_on_a_toy_set() -> None:
    assert position(["a", "b", "c"], "b") == 2
    assert position(["a", "b"], "z") is None
    positions = [1, 2, None, 4]
    assert accuracy_at(positions, 1) == 0.25
    assert accuracy_at(positions, 3) == 0.5
    assert accuracy_at(positions, 5) == 0.75
    summary = summarize(positions)
    # Avg@5 = mean(AC@1..AC@5) = mean(0.25, 0.5, 0.5, 0.75, 0.75)
    assert summary == {"n": 4, "ac1": 0.25, "ac3": 0.5, "avg5": 0.55}
    assert summarize([]) == {"n": 0, "ac1": 0.0, "ac3": 0.0, "avg5": 0.0}


def test_a_shifted_window_that_names_another_overlapping_fault_is_reported_as_such() -> None:
    """A window opened early can hold the previous injection: a miss that names that fault's
    root cause is counted apart (it names a real fault), one that names anything else is not."""

    def case(
        name: str,
        root: str,
        window: tuple[float, float],
        top: list[str],
        variant: str = "base",
        group: str = "d/s",
    ) -> CaseResult:
        positions: dict[str, int | None] = dict.fromkeys(METHODS)
        positions["rca"] = top.index(root) + 1 if root in top else None
        return CaseResult(
            name=name,
            fault="f",
            root_cause=root,
            positions=positions,
            top=top,
            seconds=0.0,
            group=group,
            variant=variant,
            window=window,
        )

    report = Report(
        cases=[
            case("a", "db", (0.0, 100.0), ["db"]),
            case("b", "api", (200.0, 300.0), ["api"]),
            case("c", "cache", (150.0, 250.0), ["cache"], group="d/other"),
        ]
    )
    report.variants = [
        case("b", "api", (50.0, 300.0), ["db", "api"], "shift-15m"),  # holds a's window
        case("b", "api", (150.0, 300.0), ["db", "api"], "shift-5m"),  # a's window ended before
        case("a", "db", (0.0, 300.0), ["cache", "db"], "shift+5m"),  # cache: another system's
        case("a", "db", (0.0, 300.0), ["db"], "off_path"),
    ]
    _mark_other_faults(report)
    assert [c.first_is_other_fault for c in report.variants] == [True, False, False, False]
    robustness = report.to_json()["robustness"]
    assert robustness["shift-15m"]["d/s"]["rca"]["first_is_other_fault"] == 1
    assert robustness["shift-5m"]["d/s"]["rca"]["first_is_other_fault"] == 0


def test_a_system_is_also_scored_per_set_of_signals_its_cases_record() -> None:
    """A dataset that lost traces for some cases (Nezha's OnlineBoutique mirror) must show
    what that costs, not hide it in the system's one number."""

    def case(name: str, signals: tuple[str, ...], right: bool, group: str = "d/s") -> CaseResult:
        positions: dict[str, int | None] = dict.fromkeys(METHODS)
        positions["rca"] = 1 if right else 3
        return CaseResult(
            name=name,
            fault="f",
            root_cause="x",
            positions=positions,
            top=[],
            seconds=0.0,
            group=group,
            signals=signals,
        )

    both = ("metrics", "traces")
    report = Report(
        cases=[
            case("a", ("metrics",), False),
            case("b", both, True),
            case("c", both, True),
            case("d", both, False),
            case("e", ("metrics",), True, group="d/one-set"),
        ]
    )
    data = report.to_json()
    per_signals = data["per_group"]["d/s"]["per_signals"]
    assert list(per_signals) == ["metrics", "metrics+traces"]
    assert per_signals["metrics"]["rca"] == {"n": 1, "ac1": 0.0, "ac3": 1.0, "avg5": 0.6}
    assert per_signals["metrics+traces"]["rca"]["n"] == 3
    assert per_signals["metrics+traces"]["rca"]["ac1"] == pytest.approx(2 / 3, abs=1e-4)
    text = render(report)
    assert "with metrics+traces" in text.split("== d/s")[1]
    # A system whose cases all record the same signals gets no such rows.
    assert "with metrics" not in text.split("== d/one-set")[1].split("== d/s")[0]


def write_scenario(root: Path, name: str, culprit: str, fault: str) -> Path:
    """A hand-made scenario: api -> db; `culprit` gets slow, the other stays flat."""
    path = root / name
    path.mkdir()
    (path / "topology.yaml").write_text(
        yaml.safe_dump({"services": {"api": {"depends_on": ["db"]}, "db": {"kind": "database"}}})
    )
    rows = ["timestamp,service,metric,value"]
    for t in range(0, 3000, 60):
        for service in ("api", "db"):
            slow = t >= 2400 and (service == culprit or service == "api")
            value = (0.5 if slow else 0.05) * (1 + 0.01 * ((t // 60) % 5))
            rows.append(f"{t},{service},latency_p99,{'' if t == 600 else value}")
    (path / "metrics.csv").write_text("\n".join(rows) + "\n")
    (path / "incident.json").write_text(
        json.dumps(
            {
                "symptom": {"service": "api", "metric": "latency_p99"},
                "normal": [0, 2000],
                "anomalous": ["1970-01-01T00:40:00Z", 3000],
            }
        )
    )
    (path / "truth.json").write_text(json.dumps({"root_cause": culprit, "fault": fault}))
    return path


def test_evaluate_hand_made_scenarios_per_kind_and_baselines(tmp_path: Path) -> None:
    write_scenario(tmp_path, "one", "db", "latency_injection")
    write_scenario(tmp_path, "two", "api", "cpu_saturation")
    report = evaluate(find_scenarios([tmp_path])).to_json()
    assert report["n"] == 2
    assert report["ac1"] == 1.0
    assert report["per_kind"]["latency_injection"] == {"n": 1, "ac1": 1.0, "ac3": 1.0, "avg5": 1.0}
    assert set(report["baselines"]) == {"most_anomalous", "symptom"}
    # the symptom baseline always says "api": right once, and db is its second guess
    assert report["baselines"]["symptom"]["ac1"] == 0.5
    assert report["baselines"]["symptom"]["avg5"] == pytest.approx((0.5 + 1 + 1 + 1 + 1) / 5)


def test_scenario_errors_name_the_file(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, "s", "db", "x")
    (path / "incident.json").write_text(
        '{"symptom": {"service": "api"}, "normal": [5, 1], "anomalous": [6, 7]}'
    )
    with pytest.raises(ScenarioError, match=r"incident.json: normal ends before it starts"):
        load_scenario(path)
    (path / "incident.json").write_text("{not json")
    with pytest.raises(ScenarioError, match=r"incident.json: not valid JSON"):
        load_scenario(path)
    (path / "truth.json").write_text("{}")
    with pytest.raises(ScenarioError, match=r"truth.json: expected"):
        load_truth(path)
    with pytest.raises(ScenarioError, match="no such scenario directory"):
        find_scenarios([tmp_path / "missing"])


def test_alert_at_is_read_and_a_bad_one_is_refused_naming_the_field(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, "s", "db", "x")
    incident = json.loads((path / "incident.json").read_text())
    assert load_scenario(path).alert_at is None
    (path / "incident.json").write_text(json.dumps({**incident, "alert_at": "1970-01-01T00:41:00Z"}))
    assert load_scenario(path).alert_at == 2460.0
    for bad in ("soon", [1, 2], True):
        (path / "incident.json").write_text(json.dumps({**incident, "alert_at": bad}))
        with pytest.raises(ScenarioError, match=r"incident.json: alert_at"):
            load_scenario(path)


def test_scenario_loader_never_needs_the_truth(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, "s", "db", "x")
    (path / "truth.json").unlink()
    loaded = load_scenario(path)
    assert loaded.anomalous == (2400.0, 3000.0)
    assert (
        loaded.metrics["api"]["latency_p99"][10][1] != loaded.metrics["api"]["latency_p99"][10][1]
    )  # NaN gap


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("simulated")
    simulate(out, PER_FAULT * len(FAULTS), seed=SEED)
    return out


def test_simulated_scenarios_have_the_documented_shape(simulated: Path) -> None:
    paths = find_scenarios([simulated])
    assert len(paths) == PER_FAULT * len(FAULTS)
    kinds = {load_truth(p).fault for p in paths}
    assert kinds == set(FAULTS)
    sample = load_scenario(paths[0])
    assert {"lb", "database"} <= {s.kind.value for s in sample.topology.services.values()}
    names = {m for per in sample.metrics.values() for m in per}
    assert {"latency_avg", "errors_avg", "requests_sum", "cpu_avg"} <= names
    assert all(n.split("_")[-1] in {"avg", "p50", "p90", "p95", "p99", "sum", "min", "max"} for n in names)


def test_cli_eval_json_and_the_accuracy_floors(simulated: Path) -> None:
    result = CliRunner().invoke(app, ["rca", "eval", str(simulated), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {"n", "ac1", "ac3", "avg5", "per_kind", "baselines"} <= set(report)
    assert report["n"] == PER_FAULT * len(FAULTS)
    assert set(report["per_kind"]) == set(FAULTS)
    assert report["ac1"] >= 0.8, report
    assert report["ac3"] >= 0.95, report
    for baseline in report["baselines"].values():
        assert report["ac1"] > baseline["ac1"], report
        assert report["avg5"] > baseline["avg5"], report


def test_cli_text_rank_and_topology(simulated: Path) -> None:
    runner = CliRunner()
    # The table's shape, not accuracy (the JSON test above scores all of them): one scenario
    # of each fault kind, named directly, as a user may.
    one_each = {load_truth(p).fault: p for p in find_scenarios([simulated])}
    table = runner.invoke(app, ["rca", "eval", *map(str, one_each.values())])
    assert table.exit_code == 0, table.output
    assert "AC@1" in table.stdout and "most_anomalous" in table.stdout and "overall" in table.stdout
    assert all(kind in table.stdout for kind in FAULTS)
    first = find_scenarios([simulated])[0]
    ranked = runner.invoke(app, ["rca", "rank", str(first), "--top", "3"])
    assert ranked.exit_code == 0, ranked.output
    assert ranked.stdout.count("confidence") == 3
    checked = runner.invoke(app, ["rca", "topology", str(first / "topology.yaml")])
    assert checked.exit_code == 0 and "services" in checked.stdout
    missing = runner.invoke(app, ["rca", "eval", str(simulated / "nope")])
    assert missing.exit_code == 2


def _with_epoch_unit(source: Path, target: Path, factor: float) -> Path:
    """A copy of a scenario whose every timestamp (CSV columns and incident.json) is in epoch
    milliseconds, microseconds or nanoseconds, as exporters and other converters write them."""
    target.mkdir()
    for path in source.iterdir():
        if path.name == "incident.json":
            incident = json.loads(path.read_text())
            for key in ("normal", "anomalous"):
                incident[key] = [int(t * factor) for t in incident[key]]
            for key, window in incident.get("baselines", {}).items():
                incident["baselines"][key] = [int(t * factor) for t in window]
            if "alert_at" in incident:
                incident["alert_at"] = int(incident["alert_at"] * factor)
            (target / path.name).write_text(json.dumps(incident))
        elif ".csv" in path.name:
            with gzip.open(path, "rt") if path.suffix == ".gz" else path.open() as handle:
                rows = list(csv.reader(handle))
            at = rows[0].index("timestamp")
            for row in rows[1:]:
                row[at] = str(int(float(row[at]) * factor))
            with (target / path.name.removesuffix(".gz")).open("w", newline="") as handle:
                csv.writer(handle).writerows(rows)
        else:
            shutil.copy(path, target / path.name)
    return target


@pytest.mark.parametrize(
    "case",
    [
        "petshop/high-traffic/test-issue_0",
        "petshop/low-traffic/test-issue_10",
        "nezha/train-ticket/2023-01-30T14-00-16-ts-security-service-network_delay",  # traces, logs
    ],
)
def test_timestamps_in_epoch_milli_micro_or_nanoseconds_rank_as_seconds(tmp_path: Path, case: str) -> None:
    source = Path(__file__).resolve().parents[2] / "datasets" / case
    as_seconds = load_scenario(source)
    expected = [(c.service, c.score) for c in rank_candidates(as_seconds)]
    for name, factor in (("ms", 1e3), ("us", 1e6), ("ns", 1e9)):
        scenario = load_scenario(_with_epoch_unit(source, tmp_path / name, factor))
        assert scenario.anomalous == pytest.approx(as_seconds.anomalous, abs=1e-3), name
        assert [(c.service, c.score) for c in rank_candidates(scenario)] == expected, name


def test_a_timestamp_without_a_zone_is_utc_whatever_the_machine_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    try:
        assert parse_time("2023-04-13T01:49:08") == parse_time("2023-04-13T01:49:08Z") == 1_681_350_548
    finally:
        monkeypatch.undo()
        time.tzset()
