"""Traces and logs as diagnosis evidence: attribution, fusion, files, and the baselines.

Hand-made windows: normal [0, 100], incident [200, 300], 30 s aggregation windows.
"""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import pytest
import yaml

from evals.rca.baselines import bocpd_change_point, rank_baro, rank_pagerank
from evals.rca.scenario import ScenarioError, load_scenario
from models.rca import LogLine
from rca.logmining import LogMiner
from rca.ranking import rank_root_causes
from rca.series import Metrics
from rca.signals import (
    END,
    LogPairStat,
    LogStat,
    SignalAnomaly,
    SignalFileError,
    TraceStat,
    invocations,
    load_traces_csv,
    score_logs,
    score_traces,
    with_latest_stretch,
)
from rca.topology import Topology

NORMAL = (0.0, 100.0)
INCIDENT = (200.0, 300.0)
WINDOWS = (0.0, 30.0, 60.0, 90.0, 210.0, 240.0, 270.0)
CHAIN = Topology.from_data(
    {"services": {"web": {"depends_on": ["api"]}, "api": {"depends_on": ["db"]}, "db": {}}}
)


def edge(
    ts: float, caller: str, callee: str, latency: float, own: float, gap: float = math.nan, calls: int = 20
) -> TraceStat:
    return TraceStat(
        ts, caller, callee, calls, None, latency / 2, latency, latency * 1.2, own / 2, own, gap / 2, gap
    )


def chain_traces(slow: str) -> list[TraceStat]:
    """web -> api -> db; `slow` spends 200 ms more of its own time in the incident."""
    out: list[TraceStat] = []
    for ts in WINDOWS:
        extra = 0.2 if ts >= 200 else 0.0
        own = {s: 0.01 + (extra if s == slow else 0.0) for s in ("web", "api", "db")}
        db = own["db"]
        api = own["api"] + db + 0.002
        web = own["web"] + api + 0.002
        out += [
            edge(ts, "", "web", web, own["web"]),
            edge(ts, "web", "api", api, own["api"], gap=0.002),
            edge(ts, "api", "db", db, own["db"], gap=0.002),
        ]
    return out


def db_own_time(incident: dict[float, float]) -> list[TraceStat]:
    """api -> db, db's own time 10 ms (+-1) per window over [0, 90], then `incident` per window."""
    normal = {0.0: 0.010, 30.0: 0.011, 60.0: 0.009, 90.0: 0.010}
    return [edge(ts, "api", "db", own + 0.002, own, gap=0.001) for ts, own in {**normal, **incident}.items()]


def test_a_window_opened_early_does_not_dilute_own_time() -> None:
    # db slows in two of the fault's three windows; the window, opened early, also holds the
    # four windows before the fault, still within the normal range. Counted, a third of the
    # seven windows is three, and the third slowest is a normal one: the fault would vanish.
    before = {120.0: 0.010, 150.0: 0.009, 180.0: 0.011, 210.0: 0.010}
    early = (110.0, 310.0)
    fault = db_own_time({**before, 240.0: 0.2, 270.0: 0.2, 300.0: 0.010})
    assert score_traces(fault, NORMAL, early)["db"].belief > 0.9
    # One slow window after the normal ones is still an outlier, not an incident.
    spike = db_own_time({**before, 240.0: 0.2, 270.0: 0.010, 300.0: 0.010})
    assert score_traces(spike, NORMAL, early)["db"].belief < 0.1
    last = db_own_time({**before, 240.0: 0.010, 270.0: 0.010, 300.0: 0.2})
    assert score_traces(last, NORMAL, early)["db"].belief < 0.1


def test_a_spike_before_the_fault_does_not_end_the_head_of_an_early_window() -> None:
    # One window before the fault is a little above the normal range (15 ms against at most
    # 11): a spike, not the onset. Had the head ended there, k would be a third of the seven
    # windows after it, and the third slowest is that spike: the fault would vanish. The
    # onset is where own time stays above the normal range, two windows in a row.
    before = {120.0: 0.010, 150.0: 0.015, 180.0: 0.009, 210.0: 0.011, 240.0: 0.010}
    early = (110.0, 340.0)
    fault = db_own_time({**before, 270.0: 0.2, 300.0: 0.2, 330.0: 0.010})
    assert score_traces(fault, NORMAL, early)["db"].belief > 0.9


@pytest.mark.parametrize("slow", ["db", "api", "web"])
def test_self_time_points_at_the_service_that_slowed_not_its_callers(slow: str) -> None:
    scored = score_traces(chain_traces(slow), NORMAL, INCIDENT)
    top = max(scored.values(), key=lambda a: (a.belief, a.intensity))
    assert top.service == slow
    # Every caller's latency grew as much, but their own time did not.
    for other in {"web", "api", "db"} - {slow}:
        assert scored[other].belief < 0.2, scored[other]
    assert "own time" in top.findings[0]


def test_a_network_delay_shows_in_the_gaps_of_calls_into_the_service() -> None:
    stats: list[TraceStat] = []
    for ts in WINDOWS:
        delay = 0.5 if ts >= 200 else 0.0
        stats += [
            edge(ts, "", "web", 0.6, 0.01),
            edge(ts, "web", "api", 0.55, 0.01, gap=0.002),
            edge(ts, "api", "db", 0.01, 0.01, gap=0.002 + delay),  # calls into db wait, db's span does not
            edge(ts, "web", "cache", 0.01, 0.01, gap=0.002),
        ]
    scored = score_traces(stats, NORMAL, INCIDENT)
    assert max(scored.values(), key=lambda a: (a.belief, a.intensity)).service == "db"
    assert scored["db"].belief > 0.9
    assert scored["cache"].belief < 0.1
    assert any("network" in f for f in scored["db"].findings)


def test_a_caller_that_waits_longer_on_every_call_is_not_every_callees_network() -> None:
    # web is starved of CPU: each of its client spans outlasts the callee's span by 300 ms
    # more than normal, to all three callees alike. The gaps grew on web's side, not on
    # three networks at once.
    stats: list[TraceStat] = []
    for ts in WINDOWS:
        starved = 0.3 if ts >= 200 else 0.0
        stats += [edge(ts, "", "web", 0.05 + 3 * starved, 0.01 + starved)]
        stats += [
            edge(ts, "web", callee, 0.01, 0.01, gap=0.002 + starved) for callee in ("api", "cache", "search")
        ]
    scored = score_traces(stats, NORMAL, INCIDENT)
    assert max(scored.values(), key=lambda a: (a.belief, a.intensity)).service == "web"
    for callee in ("api", "cache", "search"):
        assert scored[callee].belief < 0.1, scored[callee]


def logs(service: str, template: str, count: int, ts: float, level: str = "info") -> LogStat:
    return LogStat(ts, service, template, level, count, f"template {template}")


def test_a_service_that_stops_calling_its_dependencies_while_still_called_is_evidence() -> None:
    """api returns early (a bad return value): still called as often, still as fast, but it
    calls db a quarter as often per request. Twice the traffic everywhere is not that."""
    stats: list[TraceStat] = []
    for ts in WINDOWS:
        incident = ts >= 200
        stats += [
            edge(ts, "", "web", 0.03, 0.01, calls=40 if incident else 20),
            edge(ts, "web", "api", 0.02, 0.01, calls=40 if incident else 20),
            edge(ts, "api", "db", 0.01, 0.01, calls=10 if incident else 20),
        ]
    scored = score_traces(stats, NORMAL, INCIDENT)
    assert scored["api"].belief > 0.9
    assert scored["api"].findings[0].startswith("calls it makes per request x0.25 of normal")
    assert scored["web"].belief < 0.1  # twice the requests, twice the calls: load
    assert not any(f.startswith("calls it makes") for f in scored["db"].findings)  # it calls nothing


def test_logs_flag_new_error_templates_and_ignore_traffic() -> None:
    stats: list[LogStat] = []
    for ts in WINDOWS:
        busy = 3 if ts >= 200 else 1  # three times the traffic in the incident, everywhere
        stats += [
            logs("api", "1", 10 * busy, ts),
            logs("api", "2", 5 * busy, ts),
            logs("db", "3", 8 * busy, ts),
        ]
        if ts >= 200:
            stats.append(logs("db", "9", 4, ts, level="error"))
    scored = score_logs(stats, NORMAL, INCIDENT)
    assert scored["api"].belief == 0.0  # more of the same lines is load, not a fault
    assert scored["db"].belief > 0.9
    assert scored["db"].findings[0].startswith("new error template")


def test_a_normal_path_line_that_vanishes_while_calls_keep_coming_is_evidence() -> None:
    """route's `#53` line stops while route is still called (an exception thrown before it);
    seat's line stops because nobody calls seat any more, and api's error line stops: neither counts."""
    stats: list[LogStat] = []
    calls: list[TraceStat] = []
    for ts in WINDOWS:
        incident = ts >= 200
        stats += [logs("route", "47", 10, ts), logs("api", "5", 10, ts), logs("seat", "7", 10, ts)]
        if not incident:
            stats += [logs("route", "53", 10, ts), logs("seat", "8", 10, ts)]
            stats.append(logs("api", "6", 5, ts, level="error"))
        calls += [
            TraceStat(ts, "api", "route", 20, None, 0.01, 0.02, 0.03, 0.01, 0.02),
            TraceStat(ts, "web", "api", 20, None, 0.01, 0.02, 0.03, 0.01, 0.02),
        ]
        if not incident:
            calls.append(TraceStat(ts, "api", "seat", 20, None, 0.01, 0.02, 0.03, 0.01, 0.02))
    scored = score_logs(stats, NORMAL, INCIDENT, invocations(calls, NORMAL, INCIDENT))
    assert scored["route"].belief > 0.9
    assert scored["route"].findings[0].startswith("info template fell to 0 lines")
    assert scored["seat"].belief < 0.1
    assert scored["api"].belief < 0.1
    # Without traces nothing says the requests kept coming: a vanished line is not scored.
    assert score_logs(stats, NORMAL, INCIDENT)["route"].belief < 0.1


def test_a_window_opened_early_still_sees_what_the_logs_say_now() -> None:
    """The incident window opens ten minutes before the fault (an earlier, unrelated alert):
    route's normal-path line vanishes only in the last two minutes. Counted over the whole
    window that is a dip of a fifth; over the latest stretch it is the line gone. A new error
    template in db that stopped before the end keeps its whole-window score."""
    early = (200.0, 800.0)
    starts = [float(t) for t in range(200, 800, 30)]  # 20 windows of 30 s
    stats: list[LogStat] = []
    calls: list[TraceStat] = []
    for ts in [*WINDOWS[:4], *starts]:
        stats += [logs("route", "47", 10, ts), logs("db", "3", 10, ts)]
        if ts < 680:  # the fault: the last four windows lose the line
            stats.append(logs("route", "53", 10, ts))
        if 200 <= ts < 320:
            stats.append(logs("db", "9", 4, ts, level="error"))
        calls.append(TraceStat(ts, "api", "route", 20, None, 0.01, 0.02, 0.03, 0.01, 0.02))

    def score(window: tuple[float, float]) -> dict[str, SignalAnomaly]:
        return score_logs(stats, NORMAL, window, invocations(calls, NORMAL, window))

    assert score(early)["route"].belief < 0.3  # diluted by eight minutes of normal lines
    found = with_latest_stretch(score, (s.timestamp for s in stats), early, 120.0)
    assert found["route"].belief > 0.9
    assert found["route"].findings[0].startswith("info template fell to 0 lines")
    assert found["db"].belief == score(early)["db"].belief > 0.9  # the whole window was stronger
    # A window no longer than the stretch is scored once, as it is.
    assert with_latest_stretch(score, (s.timestamp for s in stats), (680.0, 800.0), 120.0) == score(
        (680.0, 800.0)
    )


def test_a_line_that_stops_following_its_predecessor_in_a_trace_is_evidence() -> None:
    """travel2's `#372` follows `#366` in every normal trace; in the incident it follows it a
    tenth as often (an exception after `#366`) while another request type prints `#372`
    too, so neither line's share nor count moves much. Only the order within a trace shows
    it. order's pair holds its rate though it doubles with the traffic, and seat's `#7` stops
    following `#3` because `#3` itself is no longer printed (nothing reaches the step): neither counts."""
    stats: list[LogStat] = []
    pairs: list[LogPairStat] = []
    for ts in WINDOWS:
        incident = ts >= 200
        k = 2 if incident else 1
        stats += [logs("travel2", "366", 10 * k, ts), logs("travel2", "372", 10 * k, ts)]
        stats += [logs("order", "1", 10 * k, ts), logs("order", "2", 10 * k, ts)]
        pairs += [LogPairStat(ts, "order", "1", "2", 10 * k), LogPairStat(ts, "order", "2", END, 10 * k)]
        if incident:
            pairs += [
                LogPairStat(ts, "travel2", "366", "372", 2),
                LogPairStat(ts, "travel2", "366", END, 18),
                LogPairStat(ts, "travel2", "372", END, 20),
            ]
            stats.append(logs("seat", "7", 10, ts))
            pairs.append(LogPairStat(ts, "seat", "7", END, 10))
        else:
            pairs += [
                LogPairStat(ts, "travel2", "366", "372", 10),
                LogPairStat(ts, "travel2", "372", END, 10),
            ]
            stats += [logs("seat", "3", 10, ts), logs("seat", "7", 10, ts)]
            pairs += [LogPairStat(ts, "seat", "3", "7", 10), LogPairStat(ts, "seat", "7", END, 10)]
    scored = score_logs(stats, NORMAL, INCIDENT, pairs=pairs)
    assert scored["travel2"].belief > 0.9
    assert (
        scored["travel2"].findings[0].startswith("info line followed its predecessor 6 times of 60 expected")
    )
    assert scored["order"].belief < 0.1
    assert scored["seat"].belief < 0.1
    # The per-window counts alone do not single travel2 out.
    assert score_logs(stats, NORMAL, INCIDENT)["travel2"].belief < 0.1


def test_mining_pairs_each_line_with_the_same_services_next_line_in_its_trace() -> None:
    """Time order within a trace and service, whatever order the lines arrive in (Nezha's
    files list them newest first); lines without a trace id are counted but not paired."""
    lines = [
        LogLine(12.0, "travel2", "[queryInfo][Trip 7 found]", trace_id="a"),
        LogLine(11.0, "route", "[getRoute][Route 3 found]", trace_id="a"),
        LogLine(10.0, "travel2", "[queryInfo][Query 5 start]", trace_id="a"),
        LogLine(40.0, "travel2", "[queryInfo][Query 6 start]", trace_id="b"),
        LogLine(41.0, "travel2", "[queryInfo][Query 8 start]"),
    ]
    stats, pairs = LogMiner().mine(lines, learn=True, window_seconds=30)
    ids = {s.template.split("]")[1]: s.template_id for s in stats}
    query, trip, route = ids["[Query <NUM> start"], ids["[Trip <NUM> found"], ids["[Route <NUM> found"]
    assert sum(s.count for s in stats if s.template_id == query) == 3
    assert {(p.timestamp, p.service, p.template_id, p.next_id, p.count) for p in pairs} == {
        (0.0, "route", route, END, 1),
        (0.0, "travel2", query, trip, 1),
        (0.0, "travel2", trip, END, 1),
        (30.0, "travel2", query, END, 1),
    }


def flat_metrics(services: list[str], noisy: str | None = None) -> Metrics:
    """Calm metrics, except one service whose latency jumps (an unrelated, noisy anomaly)."""
    out: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for s in services:
        points = []
        for i, ts in enumerate(range(0, 301, 10)):
            value = 0.1 * (1 + 0.02 * (i % 3))
            if s == noisy and ts >= 200:
                value = 0.3
            points.append((float(ts), value))
        out[s] = {"latency_p90": points}
    return out


def test_fused_ranking_follows_the_signal_that_singles_a_service_out() -> None:
    metrics = flat_metrics(["web", "api", "db"], noisy="web")
    without = rank_root_causes(CHAIN, metrics, "web", NORMAL, INCIDENT, limit=None)
    assert without[0].service == "web"  # metrics alone: the caller's latency
    fused = rank_root_causes(
        CHAIN, metrics, "web", NORMAL, INCIDENT, limit=None, traces=chain_traces("db"), trace_normal=NORMAL
    )
    assert fused[0].service == "db"
    assert "traces" in fused[0].signals
    kinds = {(e.source, e.kind) for e in fused[0].evidence}
    assert ("traces", "anomaly") in kinds  # the trace hot spot travels with the candidate
    summary = fused[0].as_evidence().summary
    assert "anomalous in traces" in summary
    assert "traces: own time p90" in summary  # the hot spot reaches the diagnosis agent


def test_calls_the_traces_do_not_show_count_in_the_callers_own_time() -> None:
    # The topology says web calls db, but those calls carry no spans: web's own time is its
    # invocation minus its *traced* calls, so the 1 s it now waits on db (whose calls from
    # api show a network delay) lands in web's own time. db is the origin, not web.
    topology = Topology.from_data(
        {"services": {"web": {"depends_on": ["api", "db"]}, "api": {"depends_on": ["db"]}, "db": {}}}
    )
    stats: list[TraceStat] = []
    for ts in WINDOWS:
        delay = 0.2 if ts >= 200 else 0.0
        stats += [
            edge(ts, "", "web", 0.05 + 5 * delay, 0.01 + 5 * delay),  # five untraced calls to db
            edge(ts, "web", "api", 0.03, 0.01, gap=0.002),
            edge(ts, "api", "db", 0.01, 0.01, gap=0.002 + delay),
        ]
    metrics = flat_metrics(["web", "api", "db"])
    ranked = rank_root_causes(
        topology, metrics, "web", NORMAL, INCIDENT, limit=None, traces=stats, trace_normal=NORMAL
    )
    assert ranked[0].service == "db", [(c.service, c.score) for c in ranked]


def test_a_service_no_traced_request_reached_is_off_their_path() -> None:
    # batch runs beside the system and no traced request reaches it; its CPU blips from 0.3%
    # to 2% of a core in the incident. cache is untraced too, but api depends on it (an
    # uninstrumented store), so requests do reach it. Same blip in both: batch is off the
    # requests' path and ranks below the traced service the traces single out; cache is not.
    topology = Topology.from_data(
        {
            "services": {
                "web": {"depends_on": ["api"]},
                "api": {"depends_on": ["db", "cache"]},
                "db": {},
                "cache": {},
                "batch": {},
            }
        }
    )
    blip = [(float(t), 0.02 if t >= 200 else 0.003 * (1 + 0.1 * (t % 3))) for t in range(0, 301, 10)]
    metrics = {**flat_metrics(["web", "api", "db"]), "batch": {"cpu_avg": blip}, "cache": {"cpu_avg": blip}}
    ranked = rank_root_causes(
        topology, metrics, "web", NORMAL, INCIDENT, limit=None, traces=chain_traces("db"), trace_normal=NORMAL
    )
    by_name = {c.service: c for c in ranked}
    assert ranked[0].service == "db", [(c.service, c.score) for c in ranked]
    assert by_name["cache"].score > by_name["batch"].score
    assert any(e.kind == "off_path" and e.source == "traces" for e in by_name["batch"].evidence)
    assert not any(e.kind == "off_path" for e in by_name["cache"].evidence)
    # The alert's own service is on the path by definition, traced or not.
    traces = chain_traces("db")
    alerting = rank_root_causes(topology, metrics, "batch", NORMAL, INCIDENT, limit=None, traces=traces)
    assert not any(e.kind == "off_path" for c in alerting if c.service == "batch" for e in c.evidence)
    # Without traces nothing says which services requests reach: no such prior.
    blind = rank_root_causes(topology, metrics, "web", NORMAL, INCIDENT, limit=None)
    assert not any(e.kind == "off_path" and e.source == "traces" for c in blind for e in c.evidence)


def test_a_candidate_backed_by_one_signal_is_stated_as_a_hypothesis() -> None:
    metrics = flat_metrics(["web", "api", "db"])
    fused = rank_root_causes(CHAIN, metrics, "web", NORMAL, INCIDENT, traces=chain_traces("db"))
    assert fused[0].signals == ["traces"]
    if fused[0].confidence < 0.8:
        assert "hypothesis" in fused[0].as_evidence().summary


def write_case(root: Path, *, edges: bool, traces: str | None) -> Path:
    path = root / "case"
    path.mkdir()
    services = {"web": {"depends_on": ["api"]} if edges else {}, "api": {}, "db": {}}
    (path / "topology.yaml").write_text(yaml.safe_dump({"services": services}))
    rows = ["timestamp,service,metric,value"] + [
        f"{ts},{s},latency_p90,0.1" for ts in range(0, 301, 10) for s in ("web", "api", "db")
    ]
    with gzip.open(path / "metrics.csv.gz", "wt") as handle:
        handle.write("\n".join(rows) + "\n")
    incident = {"symptom": {"service": "web"}, "normal": [0, 100], "anomalous": [200, 300]}
    incident["baselines"] = {"traces": [0, 100]}
    (path / "incident.json").write_text(json.dumps(incident))
    if traces is not None:
        (path / "traces.csv").write_text(traces)
    return path


def test_scenario_with_gzipped_metrics_and_traces_takes_the_call_graph_from_traces(tmp_path: Path) -> None:
    header = "timestamp,caller,callee,calls,errors,latency_p50,latency_p90,latency_p99,self_p50,self_p90\n"
    body = (
        "0,,web,5,,0.1,0.2,0.3,0.01,0.02\n"
        "0,web,api,5,,0.1,0.2,0.3,0.01,0.02\n"
        "0,api,db,5,0,0.1,0.2,0.3,0.1,0.2\n"
    )
    loaded = load_scenario(write_case(tmp_path, edges=False, traces=header + body))
    assert sorted(loaded.topology.graph.edges) == [("api", "db"), ("web", "api")]
    assert loaded.baseline("traces") == (0.0, 100.0)
    assert loaded.baseline("logs") == loaded.normal
    assert len(loaded.metrics["db"]["latency_p90"]) == 31
    assert math.isnan(loaded.traces[0].gap_p90)  # optional columns absent: unknown, not zero
    # Without topology.yaml (no graph known): the services with data, the edges the traces'.
    (tmp_path / "case" / "topology.yaml").unlink()
    untopologised = load_scenario(tmp_path / "case")
    assert sorted(untopologised.topology.graph.edges) == [("api", "db"), ("web", "api")]
    (tmp_path / "case" / "traces.csv").unlink()
    metrics_only = load_scenario(tmp_path / "case")
    assert sorted(metrics_only.topology.services) == sorted(metrics_only.metrics)
    assert metrics_only.topology.graph.number_of_edges() == 0


def test_bad_trace_rows_are_refused_naming_file_line_and_field(tmp_path: Path) -> None:
    header = "timestamp,caller,callee,calls\n"
    path = write_case(tmp_path, edges=True, traces=header + "0,web,api,many\n")
    with pytest.raises(ScenarioError, match=r"traces.csv:2: calls: not a number"):
        load_scenario(path)
    (path / "traces.csv").write_text("timestamp,caller\n0,web\n")
    with pytest.raises(SignalFileError, match="header lacks callee, calls"):
        load_traces_csv(path / "traces.csv")


def test_bocpd_finds_a_step_and_baro_ranks_the_service_that_stepped() -> None:
    times = [float(t) for t in range(0, 3000, 60)]
    values = [1.0 + 0.05 * ((i * 7) % 5) for i in range(len(times))]
    values = [v + (5.0 if t >= 2400 else 0.0) for v, t in zip(values, times, strict=True)]
    found = bocpd_change_point(times, values)
    assert found is not None and abs(found - 2400) <= 60
    metrics: Metrics = {
        "api": {"cpu_avg": [(t, 0.2 + 0.01 * (i % 3)) for i, t in enumerate(times)]},
        "db": {"cpu_avg": [(t, v / 10) for t, v in zip(times, values, strict=True)]},
    }
    assert rank_baro(metrics, (0.0, 2300.0), (2400.0, 2940.0), ["api", "db"])[0] == "db"
    assert rank_pagerank(CHAIN, metrics, (0.0, 2300.0), (2400.0, 2940.0))[0] == "db"


def test_baro_scores_as_its_published_scorer_does() -> None:
    """Constant series dropped, signed rises only, a zero spread scaled by 1 (scikit-learn)."""
    times = [float(t) for t in range(0, 3000, 60)]
    normal, anomalous = (0.0, 2300.0), (2400.0, 2940.0)

    def stepped(level: float, after: float, wobble: float) -> list[tuple[float, float]]:
        return [(t, (after if t >= 2400 else level) + wobble * ((i * 7) % 5)) for i, t in enumerate(times)]

    metrics: Metrics = {
        # Doubles its CPU: a rise of about 2 interquartile ranges' worth, many times over.
        "db": {"cpu_avg": stepped(1.0, 2.0, 0.05)},
        # Idle at exactly 0 errors, then a few: a |z| over a 1e-9 spread would be 10^8. BARO
        # drops the series (constant before the change) and the step stays ahead.
        "api": {"errors_rate": [(t, 0.0 if t < 2400 else 0.01 * (i % 2)) for i, t in enumerate(times)]},
        # Falls far (a drop is not the rise BARO ranks by).
        "web": {"cpu_avg": stepped(5.0, 0.5, 0.05)},
    }
    assert rank_baro(metrics, normal, anomalous, ["api", "db", "web"]) == ["db", "web", "api"]
