"""Ranking on small hand-made graphs: robust scoring, direction, gaps, missing data, graph logic."""

from __future__ import annotations

import math
import random
import re
from datetime import UTC, datetime

import pytest

from models.alert import Alert, AlertStatus, Severity
from models.rca import Symptom
from rca.ranking import (
    explanation_score,
    normal_before_incident,
    rank_most_anomalous,
    rank_root_causes,
    rank_symptom_first,
    score_series,
    score_services,
    window_from_symptom_onset,
)
from rca.series import Direction, Kind, metric_info, with_canonical_units
from rca.topology import Topology

STEP = 60.0
NORMAL = (0.0, 59 * STEP)
ANOMALOUS = (70 * STEP, 89 * STEP)

# edge-lb -> frontend -> checkout -> payments -> payments-db ; checkout -> inventory ; frontend -> search
CHAIN = Topology.from_data(
    {
        "services": {
            "edge-lb": {"kind": "lb", "depends_on": ["frontend"]},
            "frontend": {"depends_on": ["checkout", "search"]},
            "checkout": {"depends_on": ["payments", "inventory"]},
            "payments": {"depends_on": ["payments-db"]},
            "payments-db": {"kind": "database"},
            "inventory": {},
            "search": {},
        }
    }
)


def series(
    level: float,
    incident: float | None = None,
    *,
    noise: float = 0.03,
    seed: int = 0,
    step: float = STEP,
    gaps: float = 0.0,
) -> list[tuple[float, float]]:
    """A noisy series at `level` that moves to `incident` during the anomalous window."""
    rng = random.Random(seed)
    points = []
    t = 0.0
    while t <= ANOMALOUS[1]:
        base = incident if incident is not None and t >= ANOMALOUS[0] else level
        value = base * (1 + rng.gauss(0, noise))
        points.append((t, math.nan if rng.random() < gaps else value))
        t += step
    return points


def healthy(seed: int, latency: float = 0.05) -> dict[str, list[tuple[float, float]]]:
    return {
        "latency_p99": series(latency, seed=seed),
        "errors_avg": series(0.002, seed=seed + 1),
        "cpu_avg": series(0.5, seed=seed + 2),
    }


def test_metric_names_carry_kind_stat_and_direction() -> None:
    assert metric_info("latency_p99").kind == Kind.LATENCY
    assert metric_info("latency_p99").stat == "p99"
    assert metric_info("availability_min").direction == Direction.DOWN_IS_BAD
    assert metric_info("requests_sum").direction == Direction.BOTH
    assert metric_info("saturation_max").is_resource
    assert metric_info("queue_lag").kind == Kind.OTHER  # unknown names are tolerated


@pytest.mark.parametrize(
    ("name", "kind", "stat", "unit"),
    [
        ("latency_p90", Kind.LATENCY, "p90", None),
        ("latency_Average", Kind.LATENCY, "avg", None),  # PetShop's own statistic names
        ("PodServerLatencyP90(s)", Kind.LATENCY, "p90", None),  # Nezha's own names
        ("PodSuccessRate(%)", Kind.AVAILABILITY, None, "percent"),
        ("PodWorkload(Ops)", Kind.REQUESTS, None, None),
        ("CpuUsageRate(%)", Kind.CPU, None, "percent"),
        ("ResponseTimeP90(ms)", Kind.LATENCY, "p90", "ms"),
        ("http_server_duration_seconds_p99", Kind.LATENCY, "p99", None),
        ("error_rate", Kind.ERRORS, None, None),
        ("memory_usage_bytes", Kind.MEMORY, None, None),
        ("HTTPRequestRate", Kind.REQUESTS, None, None),
        ("latency-90", Kind.LATENCY, "p90", None),  # RCAEval's columns, the service cut off
        ("latency_percentile_99th", Kind.LATENCY, "p99", None),
        ("mem", Kind.MEMORY, None, None),
        # A qualifier that changes the quantity keeps the name OTHER: a client's latency holds
        # the network and its own queueing; a counter read raw only grows.
        ("PodClientLatencyP90(s)", Kind.OTHER, "p90", None),
        ("clientlatency_p90", Kind.OTHER, "p90", None),
        ("http_requests_total", Kind.OTHER, None, None),
        ("NetworkReceiveBytes", Kind.OTHER, None, None),
    ],
)
def test_metric_names_of_exporters_and_datasets_are_read_word_by_word(
    name: str, kind: Kind, stat: str | None, unit: str | None
) -> None:
    info = metric_info(name)
    assert (info.kind, info.stat, info.unit) == (kind, stat, unit)


def test_series_in_milliseconds_and_percent_are_ranked_in_seconds_and_ratios() -> None:
    metrics = {
        "api": {"ResponseTimeP99(ms)": [(0.0, 250.0)], "ErrorRate(%)": [(0.0, 5.0)], "cpu_avg": [(0.0, 40.0)]}
    }
    canonical = with_canonical_units(metrics)["api"]
    assert canonical["ResponseTimeP99(ms)"] == [(0.0, 0.25)]
    assert canonical["ErrorRate(%)"] == [(0.0, 0.05)]
    assert canonical["cpu_avg"] == [(0.0, 40.0)]  # resource use is compared with itself only
    # Availability's values tell: percent above 2, whatever the name says, so a ratio under a
    # percent name stays a ratio.
    named = {"api": {"SuccessRate(%)": [(0.0, 99.5)], "Availability(%)": [(0.0, 0.995)]}}
    assert with_canonical_units(named)["api"] == {
        "SuccessRate(%)": [(0.0, 0.995)],
        "Availability(%)": [(0.0, 0.995)],
    }
    # Evidence keeps the exporter's name and says the values are now seconds, not milliseconds.
    slow = rank_root_causes(
        None, {"api": {"ResponseTimeP99(ms)": series(100.0, 900.0, seed=5)}}, "api", NORMAL, ANOMALOUS
    )
    assert re.match(r"ResponseTimeP99\(ms\) 0\.9\d* s vs normal 0\.\d+ s ", slow[0].evidence[0].summary)


def test_robust_z_ignores_a_spike_in_the_normal_period_and_flags_a_shift() -> None:
    points = series(0.1, 0.1, noise=0.02)
    spiked = [(t, v * 50 if i == 10 else v) for i, (t, v) in enumerate(points)]
    quiet = score_series("api", "latency_avg", spiked, NORMAL, ANOMALOUS)
    assert quiet is not None and quiet.belief < 0.1
    shifted = score_series("api", "latency_avg", series(0.1, 0.3, noise=0.02), NORMAL, ANOMALOUS)
    assert shifted is not None and shifted.belief > 0.99
    assert shifted.normal_median == pytest.approx(0.1, rel=0.05)
    assert shifted.incident_value == pytest.approx(0.3, rel=0.1)


def test_one_outlier_in_the_incident_window_is_not_an_incident() -> None:
    points = series(0.1, noise=0.02)
    outlier = [(t, 5.0 if t == ANOMALOUS[0] + 5 * STEP else v) for t, v in points]
    found = score_series("api", "latency_avg", outlier, NORMAL, ANOMALOUS)
    assert found is not None and found.belief < 0.1


def test_flat_zero_error_baseline_does_not_turn_a_blip_into_infinity() -> None:
    flat = [(t, 0.0) for t, _ in series(1.0)]
    blip = [(t, 0.001 if t >= ANOMALOUS[0] else 0.0) for t, _ in flat]
    found = score_series("api", "errors_avg", blip, NORMAL, ANOMALOUS)
    assert found is not None and math.isfinite(found.z) and found.belief < 0.1
    burst = [(t, 0.2 if t >= ANOMALOUS[0] else 0.0) for t, _ in flat]
    found = score_series("api", "errors_avg", burst, NORMAL, ANOMALOUS)
    assert found is not None and found.belief > 0.99


def test_direction_availability_down_is_bad_up_is_not() -> None:
    drop = score_series("api", "availability_avg", series(0.999, 0.9, noise=0.0005), NORMAL, ANOMALOUS)
    rise = score_series("api", "availability_avg", series(0.9, 0.999, noise=0.0005), NORMAL, ANOMALOUS)
    assert drop is not None and drop.belief > 0.99
    assert rise is not None and rise.belief < 0.05
    faster = score_series("api", "latency_avg", series(0.3, 0.1), NORMAL, ANOMALOUS)
    assert faster is not None and faster.belief < 0.05  # getting faster is not a fault
    traffic_drop = score_series("api", "requests_sum", series(1000, 100), NORMAL, ANOMALOUS)
    assert traffic_drop is not None and traffic_drop.belief > 0.99  # traffic counts both ways


def test_cpu_that_follows_traffic_is_load_not_a_fault() -> None:
    metrics = {
        "api": {"requests_sum": series(1000, 2000, seed=1), "cpu_avg": series(0.5, 1.0, seed=2)},
        "hot": {"requests_sum": series(1000, 1000, seed=3), "cpu_avg": series(0.5, 1.0, seed=4)},
    }
    scored = score_services(metrics, NORMAL, ANOMALOUS)
    api_cpu = next(m for m in scored["api"].metrics if m.metric == "cpu_avg")
    hot_cpu = next(m for m in scored["hot"].metrics if m.metric == "cpu_avg")
    assert api_cpu.belief < 0.1
    assert hot_cpu.belief > 0.99


def test_gaps_and_coarse_sampling_still_score() -> None:
    # one point per 5 minutes: 12 normal points, 4 in the incident; and 30% of points missing
    coarse = score_series("api", "latency_p99", series(0.2, 0.8, step=300), NORMAL, ANOMALOUS)
    assert coarse is not None and coarse.incident_points == 4 and coarse.belief > 0.99
    gappy = score_series("api", "latency_p99", series(0.2, 0.8, gaps=0.3, seed=5), NORMAL, ANOMALOUS)
    assert gappy is not None and gappy.belief > 0.99
    assert gappy.normal_points < 60
    empty = score_series("api", "latency_p99", [(t, math.nan) for t, _ in series(1.0)], NORMAL, ANOMALOUS)
    assert empty is None


def scenario(root: str) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """Every service healthy except `root` and its callers (the fault propagates up)."""
    metrics = {name: healthy(i * 10) for i, name in enumerate(sorted(CHAIN.services))}
    affected = [root, *CHAIN.blast_radius(root)]
    for i, name in enumerate(sorted(affected)):
        own = 1.2 if name == root else 0.6  # weaker as it travels up
        metrics[name]["latency_p99"] = series(0.05, 0.05 + own, seed=100 + i)
        metrics[name]["errors_avg"] = series(0.002, 0.08 if name == root else 0.03, seed=200 + i)
    return metrics


@pytest.mark.parametrize("root", ["payments-db", "payments", "checkout", "inventory"])
def test_the_deepest_anomalous_service_with_healthy_dependencies_wins(root: str) -> None:
    candidates = rank_root_causes(CHAIN, scenario(root), "edge-lb", NORMAL, ANOMALOUS)
    assert candidates[0].service == root, [(c.service, c.score) for c in candidates]
    top = candidates[0]
    assert set(top.explains) == CHAIN.blast_radius(root)
    kinds = {e.kind for e in top.evidence}
    assert "anomaly" in kinds and ("explains" in kinds)
    if CHAIN.dependencies(root):
        assert "dependencies_healthy" in kinds
    assert [c.rank for c in candidates] == list(range(1, len(candidates) + 1))
    assert sum(
        c.confidence
        for c in rank_root_causes(CHAIN, scenario(root), "edge-lb", NORMAL, ANOMALOUS, limit=None)
    ) == (pytest.approx(1.0, abs=0.01))


def test_an_anomaly_the_symptom_does_not_depend_on_is_not_the_root_cause() -> None:
    metrics = scenario("payments")
    metrics["search"]["cpu_avg"] = series(0.5, 3.0, seed=77)  # unrelated batch job
    candidates = rank_root_causes(CHAIN, metrics, Symptom(service="checkout"), NORMAL, ANOMALOUS)
    assert candidates[0].service == "payments"
    search = next(
        c
        for c in rank_root_causes(CHAIN, metrics, "checkout", NORMAL, ANOMALOUS, limit=None)
        if c.service == "search"
    )
    assert any(e.kind == "off_path" for e in search.evidence)


def test_a_service_whose_metrics_vanish_is_treated_as_down() -> None:
    metrics = scenario("payments")
    metrics["payments"] = {
        name: [(t, v) for t, v in points if t < ANOMALOUS[0]] for name, points in metrics["payments"].items()
    }
    candidates = rank_root_causes(CHAIN, metrics, "edge-lb", NORMAL, ANOMALOUS)
    assert candidates[0].service == "payments"
    assert any(e.kind == "metrics_vanished" for e in candidates[0].evidence)


def test_services_without_data_are_unknown_not_healthy() -> None:
    metrics = scenario("payments-db")
    del metrics["payments-db"]  # a managed database we have no exporter for
    candidates = rank_root_causes(CHAIN, metrics, "edge-lb", NORMAL, ANOMALOUS, limit=None)
    by_name = {c.service: c for c in candidates}
    assert by_name["payments-db"].anomaly is None
    assert any(e.kind == "no_data" for e in by_name["payments-db"].evidence)
    # payments (anomalous, its only dependency unknown) leads; the silent database stays close
    assert candidates[0].service == "payments"
    assert [c.service for c in candidates[:3]].count("payments-db") == 1


def test_without_a_topology_it_is_anomaly_alone_and_without_metrics_alerts_and_graph() -> None:
    metrics = scenario("payments")
    alone = rank_root_causes(None, metrics, None, NORMAL, ANOMALOUS)
    assert alone[0].service == "payments"
    alert = Alert(
        fingerprint="x",
        status=AlertStatus.FIRING,
        name="HighErrorRate",
        service="payments",
        severity=Severity.P1,
        labels={"alertname": "HighErrorRate", "service": "payments"},
        starts_at=datetime(2026, 1, 1, tzinfo=UTC),
        source="alertmanager",
    )
    blind = rank_root_causes(CHAIN, {}, "checkout", NORMAL, ANOMALOUS, alerts=[alert])
    assert blind[0].service == "payments"
    assert any(e.kind == "alerts_firing" for e in blind[0].evidence)


def test_baselines() -> None:
    metrics = scenario("payments-db")
    assert rank_most_anomalous(metrics, NORMAL, ANOMALOUS)[0] == "payments-db"
    assert rank_symptom_first(CHAIN, "checkout")[:3] == ["checkout", "inventory", "payments"]
    assert set(rank_symptom_first(CHAIN, "checkout")) == set(CHAIN.services)


# frontend -> checkout -> payments ; frontend -> ads ; checkout -> email
SHOP = Topology.from_data(
    {
        "services": {
            "frontend": {"depends_on": ["checkout", "ads"]},
            "checkout": {"depends_on": ["payments", "email"]},
            "payments": {},
            "ads": {},
            "email": {},
        }
    }
)


def shop(**incident: dict[str, tuple[float, float]]) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """Every SHOP service healthy (latency, CPU) except the (normal, incident) levels given."""
    metrics: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for i, name in enumerate(sorted(SHOP.services)):
        moved = incident.get(name, {})
        metrics[name] = {
            metric: series(*moved.get(metric, (default, default)), noise=0.01, seed=300 + 10 * i + j)
            for j, (metric, default) in enumerate((("latency_p90", 0.05), ("cpu_avg", 0.3)))
        }
    return metrics


def test_a_dependency_explains_no_more_latency_than_it_gained_itself() -> None:
    # payments' 50 ms is a larger z than checkout's 1.5 s (a quieter series), but latency adds
    # up along a call path: payments cannot have made checkout 1.5 s slower.
    metrics = shop(
        payments={"latency_p90": (0.010, 0.060)},
        checkout={"latency_p90": (1.0, 2.5)},
        frontend={"latency_p90": (1.2, 2.7)},
    )
    candidates = rank_root_causes(SHOP, metrics, "frontend", NORMAL, ANOMALOUS, limit=None)
    by_name = {c.service: c for c in candidates}
    assert candidates[0].service == "checkout", [(c.service, c.score) for c in candidates]
    assert "checkout" not in by_name["payments"].explains


def test_a_dependency_does_not_explain_its_callers_own_cpu() -> None:
    # checkout burns CPU and is no slower; payments got slower. A slow callee does not burn
    # its caller's CPU, so payments explains nothing in checkout.
    metrics = shop(payments={"latency_p90": (0.010, 0.5)}, checkout={"cpu_avg": (0.3, 0.95)})
    anomalies = score_services(metrics, NORMAL, ANOMALOUS, services=SHOP.services)
    assert anomalies["checkout"].resource_belief > 0.5
    assert (anomalies["checkout"].inheritable_belief or 0.0) < 0.5
    candidates = rank_root_causes(SHOP, metrics, "frontend", NORMAL, ANOMALOUS, limit=None)
    payments = next(c for c in candidates if c.service == "payments")
    assert "checkout" not in payments.explains, payments.explains
    # ...nor, as an anomalous dependency, does it take the blame for that CPU from checkout.
    _, _, competing = explanation_score(SHOP, anomalies, "checkout")
    assert "payments" not in [dep for dep, _, _ in competing], competing


def test_a_service_its_own_metrics_single_out_beats_one_that_only_explains_a_caller() -> None:
    # email saturates its CPU (its caller, checkout, does not notice: mail goes out async); ads
    # is mildly slower and frontend, its caller, a little too. With metrics alone the graph
    # favours ads (it explains an anomalous caller); email's own evidence is far stronger.
    metrics = shop(
        email={"cpu_avg": (0.01, 1.0), "latency_p90": (0.005, 0.45)},
        ads={"latency_p90": (0.05, 0.15)},
        frontend={"latency_p90": (0.5, 0.6)},
    )
    candidates = rank_root_causes(SHOP, metrics, "frontend", NORMAL, ANOMALOUS)
    assert candidates[0].service == "email", [(c.service, c.score) for c in candidates]


def test_a_symptom_the_graph_has_no_edge_for_puts_nothing_off_path() -> None:
    # The alerting proxy is untraced: a node without edges. The graph cannot say what it
    # depends on, so no candidate is "off the symptom's path" because of it.
    proxied = Topology.from_data(
        {
            "services": {
                **{name: {"depends_on": list(CHAIN.dependencies(name))} for name in CHAIN.services},
                "proxy": {},
            }
        }
    )
    candidates = rank_root_causes(proxied, scenario("payments"), "proxy", NORMAL, ANOMALOUS, limit=None)
    assert candidates[0].service == "payments", [(c.service, c.score) for c in candidates]
    assert not any(e.kind == "off_path" for c in candidates for e in c.evidence)


def test_a_nearly_constant_series_does_not_outweigh_a_saturated_cpu() -> None:
    # ads serves a rarely used path whose latency idles at exactly 4.6 ms: its normal spread
    # is nothing, so one slow call is a z of 10^4. email's CPU went from 2% to a full core.
    # Compared as the traces compare theirs (4 x log2 of the move), email's is the stronger.
    metrics = shop(email={"cpu_avg": (0.02, 1.0)})
    metrics["ads"]["latency_p90"] = [
        (t, 18.0 if t >= ANOMALOUS[0] else 0.0046) for t, _ in metrics["ads"]["latency_p90"]
    ]
    anomalies = score_services(metrics, NORMAL, ANOMALOUS, services=SHOP.services)
    slow = anomalies["ads"].metrics[0]
    assert slow.z > 1000 and slow.intensity < 50
    candidates = rank_root_causes(SHOP, metrics, "frontend", NORMAL, ANOMALOUS)
    assert candidates[0].service == "email", [(c.service, c.score) for c in candidates]


def test_traffic_discounts_only_the_resource_growth_it_accounts_for() -> None:
    # payments gets 2.3 times its traffic and burns 20 times its CPU (a hog; the extra calls
    # are retries). That traffic explains about 2.3 times the work, not twenty: most of the
    # "flooded by its callers" discount goes. (Sock Shop's carts CPU hog in RCD's data looks
    # like this: carts ranked 2nd behind a service whose CPU merely doubled, 1st with this.)
    metrics = shop(payments={"cpu_avg": (0.03, 0.6)})
    metrics["payments"]["requests_sum"] = series(100, 230, noise=0.01, seed=7)
    anomalies = score_services(metrics, NORMAL, ANOMALOUS, services=SHOP.services)
    assert anomalies["payments"].load_ratio == pytest.approx(2.3, rel=0.05)
    full = min(0.6, (anomalies["payments"].load_ratio - 1.2) * 0.5)
    assert anomalies["payments"].surge_discount < 0.5 * full
    before, _, _ = explanation_score(SHOP, anomalies, "payments")
    # CPU that only followed the traffic keeps the whole discount: the callers sent that work.
    metrics["payments"]["cpu_avg"] = series(0.03, 0.069, noise=0.01, seed=9)
    followed = score_services(metrics, NORMAL, ANOMALOUS, services=SHOP.services)
    assert followed["payments"].surge_discount == pytest.approx(
        min(0.6, (followed["payments"].load_ratio - 1.2) * 0.5)
    )
    after, _, _ = explanation_score(SHOP, followed, "payments")
    assert after < before  # the hog is the likelier origin than the service that only kept up


def test_failed_requests_start_where_requests_fail() -> None:
    # frontend's availability falls (the symptom). payments' own availability falls with it;
    # ads only got slower (much slower: the larger anomaly) and its availability holds. Slowness
    # is not failure: payments is the likelier origin of failed requests.
    metrics = shop(ads={"latency_p90": (0.05, 2.0)})
    for name, level in (("frontend", 0.99), ("payments", 0.97), ("ads", 1.0)):
        metrics[name]["availability_avg"] = series(1.0, level, noise=0.0005, seed=len(name))
    failing = Symptom(service="frontend", metric="availability_avg")
    candidates = rank_root_causes(SHOP, metrics, failing, NORMAL, ANOMALOUS, limit=None)
    order = [c.service for c in candidates]
    assert order.index("payments") < order.index("ads"), [(c.service, c.score) for c in candidates]
    # A slow symptom says nothing of failures: the prior stays out of it.
    slow = rank_root_causes(
        SHOP, metrics, Symptom(service="frontend", metric="latency_p90"), NORMAL, ANOMALOUS
    )
    by_name = {c.service: c.score for c in slow}
    assert by_name["ads"] > by_name["payments"], by_name


def test_an_alert_names_a_service_and_its_failed_requests_are_the_symptom() -> None:
    # Live, an alert names frontend, not a series. frontend got slower and fails requests:
    # failed requests are the more telling (slowness is all a failure may look like upstream),
    # so the failed-requests reading applies as when that series is named.
    metrics = shop(ads={"latency_p90": (0.05, 2.0)}, frontend={"latency_p90": (0.05, 0.3)})
    for name, level in (("frontend", 0.99), ("payments", 0.97), ("ads", 1.0)):
        metrics[name]["availability_avg"] = series(1.0, level, noise=0.0005, seed=len(name))
    named = rank_root_causes(
        SHOP, metrics, Symptom(service="frontend", metric="availability_avg"), NORMAL, ANOMALOUS, limit=None
    )
    live = rank_root_causes(SHOP, metrics, "frontend", NORMAL, ANOMALOUS, limit=None)
    order = [c.service for c in live]
    assert order.index("payments") < order.index("ads"), [(c.service, c.score) for c in live]
    assert order[:3] == [c.service for c in named][:3]
    # A series named by its kind alone ("availability", where the data has availability_avg)
    # is that kind's series of the service, not a name to ignore.
    kind_only = Symptom(service="frontend", metric="availability")
    by_kind = rank_root_causes(SHOP, metrics, kind_only, NORMAL, ANOMALOUS, limit=None)
    assert [c.service for c in by_kind][:3] == [c.service for c in named][:3]
    # Availability in percent, as many exporters and datasets report it: the same reading
    # (read as a ratio, 99 % would leave an error budget of -98 and no dip would count).
    percent = {
        name: {
            m: [(t, v * 100) for t, v in pts] if m.startswith("availability") else pts
            for m, pts in per.items()
        }
        for name, per in metrics.items()
    }
    in_percent = rank_root_causes(SHOP, percent, "frontend", NORMAL, ANOMALOUS, limit=None)
    assert [(c.service, round(c.score, 6)) for c in in_percent] == [
        (c.service, round(c.score, 6)) for c in live
    ]


def test_a_service_that_stopped_failing_fast_is_not_slower() -> None:
    # In the normal period every request to `lambda` failed, fast (0.4 s); now they succeed at
    # their real cost (1.8 s). That is a recovery, not a slowdown: its latency has no usable
    # baseline. `search` kept serving and got slower: that is.
    metrics = {
        "lambda": {
            "availability_avg": series(0.0, 1.0, noise=0.0, seed=1),
            "latency_avg": series(0.4, 1.8, seed=2),
        },
        "search": {
            "availability_avg": series(1.0, 1.0, noise=0.0, seed=3),
            "latency_avg": series(0.4, 1.8, seed=4),
        },
    }
    scored = score_services(metrics, NORMAL, ANOMALOUS)
    assert [m.kind for m in scored["lambda"].metrics if m.kind == Kind.LATENCY] == []
    assert (scored["lambda"].belief or 0.0) < 0.1
    assert scored["search"].metrics[0].kind == Kind.LATENCY and (scored["search"].belief or 0.0) > 0.9


def episode(level: float, during: float, seed: int, dips: tuple[int, ...] = ()) -> list[tuple[float, float]]:
    """At `level`, except from the window's sixth minute to its fifth-last, at `during` (but
    at the points numbered in `dips`): a symptom's whole episode inside the window."""
    rng = random.Random(seed)
    out = []
    for i, (t, _) in enumerate(series(level)):
        inside = ANOMALOUS[0] + 5 * STEP <= t < ANOMALOUS[1] - 4 * STEP and i not in dips
        out.append((t, (during if inside else level) * (1 + rng.gauss(0, 0.01))))
    return out


def held_decoy(symptom_during: float) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """frontend (the symptom) and payments slow through the same episode; ads slow all along."""
    metrics = shop()
    metrics["frontend"]["latency_p90"] = episode(0.05, symptom_during, seed=1)
    metrics["payments"]["latency_p90"] = episode(0.05, 0.3, seed=2)
    metrics["ads"]["latency_p90"] = series(0.05, 3.0, noise=0.01, seed=3)
    return metrics


def test_an_anomaly_that_held_while_the_symptom_was_normal_is_not_its_cause() -> None:
    # The window holds the symptom's whole episode: frontend was normal for its first and last
    # five minutes and slow in between. payments was slow exactly then. ads was slow all along,
    # far slower than its normal (a path the symptom's requests do not take, or another
    # deployment state): latency reaches callers in the same minute, so ads' level, the same
    # while frontend was normal, is not what frontend shows.
    metrics = held_decoy(symptom_during=0.4)
    slow = Symptom(service="frontend", metric="latency_p90")
    candidates = rank_root_causes(SHOP, metrics, slow, NORMAL, ANOMALOUS, limit=None)
    by_name = {c.service: c for c in candidates}
    assert candidates[0].service == "payments", [(c.service, c.score) for c in candidates]
    assert any(e.kind == "unrelated_to_symptom" for e in by_name["ads"].evidence)
    assert not any(e.kind == "unrelated_to_symptom" for e in by_name["payments"].evidence)
    # Live, an alert names a service and not a series: the series that shows the symptom is
    # the service's strongest anomalous latency, error or availability series, and the same
    # reading follows.
    named = rank_root_causes(SHOP, metrics, "frontend", NORMAL, ANOMALOUS, limit=None)
    assert [c.service for c in named][:2] == [c.service for c in candidates][:2]
    assert any(e.kind == "unrelated_to_symptom" for c in named if c.service == "ads" for e in c.evidence)
    # Slow only while frontend was, ads is a candidate like any other (here the stronger one).
    metrics["ads"]["latency_p90"] = episode(0.05, 3.0, seed=3)
    candidates = rank_root_causes(SHOP, metrics, slow, NORMAL, ANOMALOUS, limit=None)
    assert candidates[0].service == "ads", [(c.service, c.score) for c in candidates]
    assert not any(e.kind == "unrelated_to_symptom" for c in candidates for e in c.evidence)


def test_a_mild_symptom_held_for_minutes_still_tells_when_it_was_normal() -> None:
    # The alert's series dips only a little: frontend's latency rises 16 %, z 2.5-3.3 against a
    # floor-bound spread (as a 0.5 % availability loss does), never the Z_CENTER of 4 in two
    # points running. It still held that level for a stretch with plainly normal minutes around
    # it, so those minutes are its quiet times, and ads, slow all along, is not what it shows.
    metrics = held_decoy(symptom_during=0.058)
    slow = Symptom(service="frontend", metric="latency_p90")
    candidates = rank_root_causes(SHOP, metrics, slow, NORMAL, ANOMALOUS, limit=None)
    assert candidates[0].service == "payments", [(c.service, c.score) for c in candidates]
    assert any(e.kind == "unrelated_to_symptom" for c in candidates if c.service == "ads" for e in c.evidence)
    # A symptom that falls back to normal inside its stretch (it flaps, or it is noise) says
    # nothing about when it was quiet: ads is a candidate like any other again.
    middle = int((ANOMALOUS[0] + 10 * STEP) / STEP)
    metrics["frontend"]["latency_p90"] = episode(0.05, 0.058, seed=1, dips=(middle,))
    candidates = rank_root_causes(SHOP, metrics, slow, NORMAL, ANOMALOUS, limit=None)
    assert not any(e.kind == "unrelated_to_symptom" for c in candidates for e in c.evidence)
    # So does one point at that level alone.
    lone = [(t, 0.058 if t == ANOMALOUS[0] + 8 * STEP else v) for t, v in series(0.05, noise=0.01, seed=1)]
    metrics["frontend"]["latency_p90"] = lone
    candidates = rank_root_causes(SHOP, metrics, slow, NORMAL, ANOMALOUS, limit=None)
    assert not any(e.kind == "unrelated_to_symptom" for c in candidates for e in c.evidence)


def test_the_symptoms_quiet_times_are_read_since_the_normal_period_not_only_in_the_window() -> None:
    # frontend slowed at minute 75 and the alert opened the window at minute 80: inside the
    # window it was never normal. But it was normal from the normal period's end (minute 59,
    # plus the one-minute margin) to minute 75, while ads was already as slow as it is now:
    # ads' anomaly is not what frontend shows. payments slowed with frontend.
    def from_minute(level: float, during: float, onset: float, seed: int) -> list[tuple[float, float]]:
        rng = random.Random(seed)
        return [
            (t, (during if t >= onset * STEP else level) * (1 + rng.gauss(0, 0.01))) for t, _ in series(level)
        ]

    metrics = shop()
    metrics["frontend"]["latency_p90"] = from_minute(0.05, 0.4, 75, seed=1)
    metrics["payments"]["latency_p90"] = from_minute(0.05, 0.3, 75, seed=2)
    metrics["ads"]["latency_p90"] = from_minute(0.05, 3.0, 60, seed=3)
    slow = Symptom(service="frontend", metric="latency_p90")
    at_alert = (80 * STEP, ANOMALOUS[1])
    candidates = rank_root_causes(SHOP, metrics, slow, NORMAL, at_alert, limit=None)
    assert candidates[0].service == "payments", [(c.service, c.score) for c in candidates]
    assert any(e.kind == "unrelated_to_symptom" for c in candidates if c.service == "ads" for e in c.evidence)
    # Slow only since frontend was, ads is a candidate like any other (here the stronger one).
    metrics["ads"]["latency_p90"] = from_minute(0.05, 3.0, 75, seed=3)
    candidates = rank_root_causes(SHOP, metrics, slow, NORMAL, at_alert, limit=None)
    assert candidates[0].service == "ads", [(c.service, c.score) for c in candidates]


def test_a_window_opened_at_the_alert_opens_back_to_the_symptoms_onset() -> None:
    # frontend slowed at minute 64; the alert fired, and the window opened, at minute 70. Its
    # anomalous minutes before that belong to the incident; the normal period (to minute 59)
    # and a minute after it stay out; a normal minute in between ends the walk back.
    metrics = shop(frontend={"latency_p90": (0.05, 0.05)})
    metrics["frontend"]["latency_p90"] = [(t, 0.5 if t >= 64 * STEP else v) for t, v in series(0.05)]
    slow = Symptom(service="frontend", metric="latency_p90")
    assert window_from_symptom_onset(metrics, slow, NORMAL, ANOMALOUS) == (64 * STEP, ANOMALOUS[1])
    early = [(t, 0.5 if t >= 52 * STEP else v) for t, v in series(0.05)]
    metrics["frontend"]["latency_p90"] = early
    # Anomalous since inside the normal period: back to the margin after it, not into it.
    opened, _ = window_from_symptom_onset(metrics, slow, (0.0, 55.5 * STEP), ANOMALOUS)
    assert opened == 57 * STEP
    metrics["frontend"]["latency_p90"] = [(t, 0.05 if t == 67 * STEP else v) for t, v in early]
    assert window_from_symptom_onset(metrics, slow, NORMAL, ANOMALOUS) == (68 * STEP, ANOMALOUS[1])
    # A symptom that was normal before the window, or no series to read: the window as given.
    quiet = shop(frontend={"latency_p90": (0.05, 0.5)})
    assert window_from_symptom_onset(quiet, slow, NORMAL, ANOMALOUS) == ANOMALOUS
    assert window_from_symptom_onset(metrics, Symptom(service="frontend"), NORMAL, ANOMALOUS) == ANOMALOUS


def test_a_normal_period_that_runs_into_the_incident_is_cut_before_it() -> None:
    # "Normal" taken as the whole recording up to now holds the fault itself: it ends where the
    # window begins instead, and the ranking is the one a clean normal period gives. One that
    # ends where the window begins (no gap configured), and a fault-free recording made after
    # the incident, are normal periods like any other.
    cut = (0.0, math.nextafter(ANOMALOUS[0], -math.inf))
    assert normal_before_incident((0.0, ANOMALOUS[1]), ANOMALOUS) == cut
    assert normal_before_incident(NORMAL, ANOMALOUS) == NORMAL
    assert normal_before_incident((0.0, ANOMALOUS[0]), ANOMALOUS) == (0.0, ANOMALOUS[0])
    later = (ANOMALOUS[1] + STEP, ANOMALOUS[1] + 60 * STEP)
    assert normal_before_incident(later, ANOMALOUS) == later
    metrics = shop(payments={"latency_p90": (0.05, 0.5)}, checkout={"latency_p90": (0.1, 0.6)})
    clean = rank_root_causes(SHOP, metrics, "frontend", cut, ANOMALOUS, limit=None)
    overlapping = rank_root_causes(SHOP, metrics, "frontend", (0.0, ANOMALOUS[1]), ANOMALOUS, limit=None)
    assert clean[0].service == "payments", [(c.service, c.score) for c in clean]
    assert [(c.service, c.score) for c in overlapping] == [(c.service, c.score) for c in clean]
