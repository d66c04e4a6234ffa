"""Correlation: same service, topology neighbours, time window, scope; storm compression/purity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from evals.rca.scenario import parse_alerts
from evals.rca.simulate import alert_storm
from models.alert import Alert, AlertStatus, Severity
from rca.correlation import Correlator, score_correlation
from rca.topology import Topology

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
TOPO = Topology.from_data(
    {
        "services": {
            "frontend": {"depends_on": ["checkout", "search"]},
            "checkout": {"depends_on": ["payments"]},
            "payments": {"depends_on": ["payments-db"]},
            "payments-db": {"kind": "database"},
            "search": {"depends_on": ["search-index"]},
            "search-index": {"kind": "database"},
        }
    }
)


def alert(service: str, minutes: float, name: str = "HighLatency", **labels: str) -> Alert:
    return Alert(
        fingerprint=f"{name}-{service}-{minutes}-{sorted(labels.items())}",
        status=AlertStatus.FIRING,
        name=name,
        service=service,
        severity=Severity.P2,
        labels={"alertname": name, "service": service, **labels},
        starts_at=T0 + timedelta(minutes=minutes),
        source="alertmanager",
    )


def test_same_service_within_the_window_is_one_incident() -> None:
    c = Correlator(TOPO, window=timedelta(minutes=10))
    ids = [c.add(alert("checkout", m)) for m in (0, 4, 9, 15)]
    assert len(set(ids)) == 1  # each alert within 10 minutes of the previous one
    assert c.incidents[ids[0]].alerts == 4


def test_a_quiet_gap_longer_than_the_window_opens_a_new_incident() -> None:
    c = Correlator(TOPO, window=timedelta(minutes=10))
    first = c.add(alert("checkout", 0))
    second = c.add(alert("checkout", 11))
    assert first != second
    assert c.incidents[first].closed


def test_neighbours_in_the_topology_join_far_services_do_not() -> None:
    c = Correlator(TOPO, hops=1)
    a = c.add(alert("payments", 0))
    b = c.add(alert("checkout", 1))  # calls payments
    d = c.add(alert("payments-db", 2))  # payments calls it
    e = c.add(alert("search-index", 2))  # 4 hops away from payments
    assert a == b == d
    assert e != a
    assert c.incidents[a].services == {"payments", "checkout", "payments-db"}


def test_more_hops_relate_more_services() -> None:
    c = Correlator(TOPO, hops=2)
    assert c.add(alert("payments-db", 0)) == c.add(alert("checkout", 1))
    c1 = Correlator(TOPO, hops=1)
    assert c1.add(alert("payments-db", 0)) != c1.add(alert("checkout", 1))


def test_services_outside_the_topology_correlate_only_with_themselves() -> None:
    c = Correlator(TOPO)
    a = c.add(alert("batch-job", 0))
    assert c.add(alert("batch-job", 1)) == a
    assert c.add(alert("checkout", 1)) != a


def test_different_clusters_never_correlate() -> None:
    c = Correlator(TOPO)
    a = c.add(alert("checkout", 0, cluster="eu-1"))
    b = c.add(alert("checkout", 1, cluster="us-1"))
    assert a != b
    assert c.add(alert("payments", 2, cluster="us-1")) == b


def test_closest_relation_wins_and_merge_is_opt_in() -> None:
    c = Correlator(TOPO, hops=1)
    left = c.add(alert("checkout", 0))
    right = c.add(alert("search", 0.5))
    assert left != right
    # frontend calls both: it joins one incident (the most recent relation), no merge
    assert c.add(alert("frontend", 1)) == right
    assert len(c.incidents) == 2
    merging = Correlator(TOPO, hops=1, merge=True)
    left = merging.add(alert("checkout", 0))
    right = merging.add(alert("search", 0.5))
    bridge = merging.add(alert("frontend", 1))
    assert bridge == left and merging.resolve(right) == left
    assert merging.incidents[left].services == {"checkout", "search", "frontend"}
    assert merging.incident_of(1) == left


def test_a_long_running_incident_does_not_absorb_new_failures_nearby() -> None:
    c = Correlator(TOPO, hops=1, window=timedelta(minutes=15), max_span=timedelta(hours=1))
    flapping = [c.add(alert("payments", m, name="Flapping")) for m in range(0, 120, 10)]
    assert len(set(flapping)) == 1
    fresh = c.add(alert("checkout", 121))
    assert fresh != flapping[0]
    assert c.add(alert("payments", 122, name="Flapping")) == flapping[0]  # same service still joins


def test_score_counts_purity_compression_and_fragmentation() -> None:
    c = Correlator(TOPO, hops=1)
    for service, minute in (("payments", 0), ("checkout", 1), ("search-index", 1), ("search", 2)):
        c.add(alert(service, minute))
    report = score_correlation(c, ["f1", "f1", "f2", "f1"])
    assert report.incidents == 2
    assert report.compression == 2.0
    assert report.purity == 0.75  # the search alert was labelled f1 but grouped with f2
    assert report.fragmentation == 1.5  # f1 is split over two incidents, f2 is whole


def test_storm_of_ten_thousand_alerts_becomes_a_handful_of_incidents() -> None:
    storm = alert_storm(seed=0, alerts=10_000, services=40, failures=6, noise_sources=4)
    alerts = parse_alerts(storm.alerts, "storm")
    correlator = Correlator(Topology.from_data(storm.topology), hops=1)
    correlator.extend(alerts)
    report = score_correlation(correlator, storm.labels)
    assert report.alerts == 10_000
    assert report.incidents <= 20  # 6 failures + 4 flapping noise sources
    assert report.compression >= 500
    assert report.purity >= 0.7
