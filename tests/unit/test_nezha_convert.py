"""The Nezha converter (tools/, not runtime) on a tiny raw tree in Nezha's own file layout."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

from evals.rca.scenario import find_scenarios, load_scenario, load_truth
from rca.signals import END, score_logs, score_traces
from tools.nezha_convert import convert_system, service_of

DAY, OTHER = "2023-01-29", "2023-01-30"
INJECT = "2023-01-29 09:00:30"  # the telemetry's clock; inject_timestamp below is 8 h off, as in Nezha
PODS = {
    "ts-ui-dashboard": "ts-ui-dashboard-5477b965f-2chkr",
    "ts-order-service": "ts-order-service-5b67c48447-mv5hb",
}


def _t(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp())


def _write(path: Path, header: list[str], rows: list[list[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _traces(path: Path, start: int, slow: bool) -> None:
    """ui -> (client span) -> order; during the fault the call into order waits 500 ms longer."""
    rows: list[list[object]] = []
    for i in range(20):
        t0 = (start + 3 * i) * 10**9
        delay = 500_000_000 if slow else 0
        ui, client, order = f"a{i:015x}", f"b{i:015x}", f"c{i:015x}"
        end = t0 + 30_000_000 + delay
        rows += [
            [f"t{i}", ui, "root", PODS["ts-ui-dashboard"], "GET /", t0, end, 0],
            [f"t{i}", client, ui, PODS["ts-ui-dashboard"], "HTTP POST", t0 + 1_000_000, end - 1_000_000, 0],
            [
                f"t{i}",
                order,
                client,
                PODS["ts-order-service"],
                "/order",
                t0 + 2_000_000 + delay,
                t0 + 12_000_000 + delay,
                0,
            ],
        ]
    header = [
        "TraceID",
        "SpanID",
        "ParentID",
        "PodName",
        "OperationName",
        "StartTimeUnixNano",
        "EndTimeUnixNano",
        "Duration",
    ]
    _write(path, header, rows)


def _logs(path: Path, start: int, fault: bool) -> None:
    rows: list[list[object]] = []
    for i in range(30):
        ts = (start + 2 * i) * 10**9
        lines = [
            f"09:00:{i % 60:02d}.1 INFO o.s.OrderServiceImpl#96 [create][Order Create Success][Order {i}]"
        ]
        if fault:
            lines.append(
                f"09:00:{i % 60:02d}.2 ERROR o.s.OrderServiceImpl#120 [create][Order {i} failed: no seat]"
            )
        for line in lines:
            body = json.dumps({"log": line + "\n", "stream": "stdout"})
            trace = f"{start:x}{i:04x}"
            rows.append(["", ts, "node", PODS["ts-order-service"], "server", trace, "", body])
    _write(
        path, ["Timestamp", "TimeUnixNano", "Node", "PodName", "Container", "TraceID", "SpanID", "Log"], rows
    )


def make_raw(root: Path) -> Path:
    inject = _t(INJECT)
    faults = {"09": [{"inject_time": INJECT, "inject_timestamp": str(inject - 28740),
                      "inject_pod": PODS["ts-order-service"], "inject_type": "network_delay"}]}  # fmt: skip
    (root / "rca_data" / DAY).mkdir(parents=True)
    (root / "rca_data" / DAY / f"{DAY}-fault_list.json").write_text(json.dumps(faults))
    for day in (DAY, OTHER):
        (root / "rca_data" / day).mkdir(parents=True, exist_ok=True)
        if day == OTHER:
            (root / "rca_data" / day / f"{day}-fault_list.json").write_text("{}")
    header = ["Time", "TimeStamp", "PodName", "CpuUsageRate(%)", "PodServerLatencyP90(s)", "PodWorkload(Ops)"]
    for service, pod in PODS.items():
        rows: list[list[object]] = []
        for minute in range(-40, 25):
            ts = inject + 60 * minute
            text = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S.000 +0000 UTC")
            latency = (
                0.6 if (service == "ts-order-service" and 0 <= minute < 3) else 0.05 + 0.001 * (minute % 3)
            )
            # A bogus TimeStamp, as one Nezha file has: the Time text must win.
            rows.append([text, ts + 200_000_000, pod, 10 + minute % 2, latency, 5])
        _write(root / "rca_data" / DAY / "metric" / f"{pod}_metric.csv", header, rows)
    for offset in (0, 1, 2):  # files named by the minute they end in
        minute_end = inject - 30 + 60 * offset + 60
        name = datetime.fromtimestamp(minute_end, UTC).strftime("%H_%M")
        _traces(root / "rca_data" / DAY / "trace" / f"{name}_trace.csv", minute_end - 60, slow=offset > 0)
        _logs(root / "rca_data" / DAY / "log" / f"{name}_log.csv", minute_end - 60, fault=offset > 0)
    # Nezha's fault-free minute for this day is 08_50: the baseline for traces and logs.
    _traces(root / "construct_data" / DAY / "trace" / "08_50_trace.csv", _t(f"{DAY} 08:49:00"), slow=False)
    _logs(root / "construct_data" / DAY / "log" / "08_50_log.csv", _t(f"{DAY} 08:49:00"), fault=False)
    return root


def test_converted_case_keeps_truth_windows_and_all_three_signals(tmp_path: Path) -> None:
    raw = make_raw(tmp_path / "raw")
    assert convert_system(raw, tmp_path / "out", "train-ticket") == 1
    [case] = find_scenarios([tmp_path / "out" / "train-ticket"])
    truth = load_truth(case)
    assert (truth.root_cause, truth.fault) == ("ts-order-service", "network_delay")
    scenario = load_scenario(case)
    assert scenario.anomalous[0] == _t(INJECT)  # inject_time, not the 8-hour-off inject_timestamp
    assert scenario.normal[1] < scenario.anomalous[0]
    # Metric rows are timed by their Time text (the TimeStamp column was 200,000,000 s off).
    order_latency = scenario.metrics["ts-order-service"]["latency_p90"]
    assert any(scenario.anomalous[0] <= t <= scenario.anomalous[1] for t, _ in order_latency)
    assert ("ts-ui-dashboard", "ts-order-service") in scenario.topology.graph.edges  # from the traces
    traces = score_traces(scenario.traces, scenario.baseline("traces"), scenario.anomalous)
    assert traces["ts-order-service"].belief > 0.9  # the wait outside its span: the network
    # The caller's client span grew too (with one callee, its own egress is indistinguishable),
    # but the calls *into* order-service count in full and the caller's own time stayed flat.
    assert traces["ts-order-service"].intensity > traces["ts-ui-dashboard"].intensity
    assert "own time p90 2.0 ms vs normal 2.0 ms" in " ".join(traces["ts-ui-dashboard"].findings)
    found = score_logs(scenario.logs, scenario.baseline("logs"), scenario.anomalous)
    assert found["ts-order-service"].findings[0].startswith("new error template")
    assert "<NUM>" in found["ts-order-service"].findings[0]  # ids masked before mining
    # Within each trace the error line now follows the create line, which ended traces before.
    ids = {s.level: s.template_id for s in scenario.logs}
    start = scenario.anomalous[0]
    normal = {(p.template_id, p.next_id) for p in scenario.log_pairs if p.timestamp < start}
    incident = {(p.template_id, p.next_id) for p in scenario.log_pairs if p.timestamp >= start}
    assert normal == {(ids["info"], END)}
    assert {(ids["info"], ids["error"]), (ids["error"], END)} <= incident
    sources = json.loads((case / "sources.json").read_text())
    assert sources["signals"] == ["metrics", "traces", "logs"]


def test_pod_names_map_to_services() -> None:
    assert service_of("cartservice-579f59597d-wc2lz") == "cartservice"
    assert service_of("ts-ui-dashboard-5477b965f-2chkr") == "ts-ui-dashboard"
    assert service_of("redis") == "redis"
