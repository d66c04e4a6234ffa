"""Where the live incident window opens: before the first alert, by the lead-in."""

from __future__ import annotations

import logging
import random

import pytest

from activities.telemetry import TelemetryConfig, incident_windows
from models.rca import Symptom
from rca.ranking import rank_root_causes
from rca.topology import Topology

STEP = 60.0
ALERT = 6000.0  # the first alert's startsAt: when its rule fired
ONSET = ALERT - 180.0  # the fault, whose symptom held for the rule's `for:` before it fired
NOW = ALERT + 120.0  # the incident gathers its context two minutes after the alert

SHOP = Topology.from_data(
    {"services": {"frontend": {"depends_on": ["payments", "ads"]}, "payments": {}, "ads": {}}}
)


def test_the_window_opens_the_lead_in_before_the_alert_and_normal_ends_a_gap_before_that() -> None:
    normal, incident = incident_windows(ALERT, NOW, lead_in=300.0, gap=60.0, normal_seconds=3600.0)
    assert incident == (ALERT - 300.0, NOW)
    assert normal == (ALERT - 300.0 - 60.0 - 3600.0, ALERT - 300.0 - 60.0)
    # An incident gathered the second its alert arrived still has a window to look at.
    _, instant = incident_windows(ALERT, ALERT, lead_in=0.0, gap=0.0, normal_seconds=60.0)
    assert instant == (ALERT, ALERT + 1.0)


def level(normal: float, incident: float, since: float, seed: int) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    return [
        (t, (incident if t >= since else normal) * (1 + rng.gauss(0, 0.01)))
        for t in (i * STEP for i in range(int(NOW // STEP) + 1))
    ]


@pytest.mark.parametrize("lead_in", [300.0, 0.0])
def test_the_minutes_before_the_alert_tell_a_standing_anomaly_from_the_fault(lead_in: float) -> None:
    # payments turned slow at the fault, and frontend with it; ads had been slow (far slower
    # than its normal) since before the window. From the alert on, all three are anomalous
    # alike; only the minutes before the fault, which the lead-in brings into the window,
    # show that ads was slow while frontend was still fine.
    metrics = {
        "frontend": {"latency_p90": level(0.05, 0.4, ONSET, seed=1)},
        "payments": {"latency_p90": level(0.05, 0.3, ONSET, seed=2)},
        "ads": {"latency_p90": level(0.05, 3.0, ALERT - 500.0, seed=3)},
    }
    normal, incident = incident_windows(ALERT, NOW, lead_in=lead_in, gap=60.0, normal_seconds=3600.0)
    ranked = rank_root_causes(
        SHOP, metrics, Symptom(service="frontend", metric="latency_p90"), normal, incident, limit=None
    )
    flagged = {c.service for c in ranked for e in c.evidence if e.kind == "unrelated_to_symptom"}
    if lead_in:
        assert ranked[0].service == "payments", [(c.service, c.score) for c in ranked]
        assert flagged == {"ads"}
    else:
        # Without the lead-in the window holds nothing from before the fault: no way to tell.
        assert ranked[0].service == "ads" and not flagged


def test_a_configured_query_whose_name_diagnosis_cannot_read_is_reported_at_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    queries = {
        "ResponseTimeP99(ms)": "q1",
        "errors_avg": "q2",
        "queue_lag": "q3",
        "http_requests_total": "q4",
    }
    with caplog.at_level(logging.WARNING, logger="runtime.tracing"):
        TelemetryConfig(prometheus_url="http://127.0.0.1:9", queries=queries)
    unread = [r.getMessage() for r in caplog.records if "prometheus_queries" in r.getMessage()]
    assert len(unread) == 1 and unread[0].startswith(
        "prometheus_queries: http_requests_total, queue_lag read as"
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="runtime.tracing"):
        TelemetryConfig(prometheus_url="http://127.0.0.1:9")  # the built-in set: every name read
    assert not [r for r in caplog.records if "prometheus_queries" in r.getMessage()]
