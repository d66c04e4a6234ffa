"""The RCD Sock Shop converter (tools/, not runtime) on a tiny raw tree in RCD's own layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from evals.rca.evaluate import evaluate
from evals.rca.scenario import find_scenarios, load_scenario, load_truth
from tools.rcd_convert import convert, main
from tools.wide_csv import ConvertError

HEADER = "time,carts_cpu,user_cpu,front-end_cpu,carts_lod,carts_lat_90"


def _write(path: Path, start: int, hog: bool, header: str = HEADER) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [header]
    for i in range(120):
        carts = 90.0 if hog else 2.0 + 0.1 * (i % 3)
        lines.append(f"{start + i},{carts},{1.0 + 0.05 * (i % 4)},{10 + 0.2 * (i % 5)},4.4,0.27")
    path.write_text("\n".join(lines) + "\n")


def _raw(root: Path) -> Path:
    run = root / "sock-shop-data" / "carts-cpu" / "1"
    _write(run / "normal.csv", 1_000_000, hog=False)
    _write(run / "anomalous.csv", 1_100_000, hog=True)
    # Recorded the other way round, as RCD's orders-mem/5 is: the normal run after the fault.
    late = root / "sock-shop-data" / "carts-mem" / "5"
    _write(late / "normal.csv", 1_300_000, hog=False)
    _write(late / "anomalous.csv", 1_200_000, hog=True)
    return root


def test_each_run_becomes_a_scenario_with_the_folders_truth(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert convert(_raw(tmp_path / "raw"), out) == 2
    paths = find_scenarios([out / "sock-shop"])
    assert [p.name for p in paths] == ["carts-cpu-1", "carts-mem-5"]
    scenario, truth = load_scenario(paths[0]), load_truth(paths[0])
    assert (truth.root_cause, truth.fault) == ("carts", "cpu")
    assert scenario.normal == (1_000_000, 1_000_119) and scenario.anomalous == (1_100_000, 1_100_119)
    assert set(scenario.metrics["carts"]) == {"cpu_avg", "requests_avg", "latency_p90"}
    assert scenario.symptom.service == "front-end"
    assert "carts" in scenario.topology.dependencies("front-end")
    assert not scenario.traces and not scenario.logs
    late = load_scenario(paths[1])
    assert late.normal[0] > late.anomalous[1]
    report = evaluate(paths).to_json()
    assert report["per_group"]["rcd/sock-shop"]["rca"]["n"] == 2
    assert report["per_group"]["rcd/sock-shop"]["rca"]["ac1"] == 1.0  # a x40 CPU hog


def test_bad_raw_data_is_refused_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConvertError, match="no sock-shop-data/"):
        convert(tmp_path, tmp_path / "out")
    raw = _raw(tmp_path / "raw")
    normal = raw / "sock-shop-data" / "carts-cpu" / "1" / "normal.csv"
    _write(normal, 1_000_000, False, HEADER + ",carts_disk")
    with pytest.raises(ConvertError, match=r"carts-cpu/1/normal.csv: column 'carts_disk'"):
        convert(raw, tmp_path / "out")
    _write(normal, 1_100_060, hog=False)
    with pytest.raises(ConvertError, match="overlap in time"):
        convert(raw, tmp_path / "out")
    with pytest.raises(SystemExit):
        main([str(raw), str(tmp_path / "out")])
