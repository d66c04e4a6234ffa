"""Trace and log sources against local HTTP servers that speak each store's wire format.

No Jaeger, Tempo, Loki or OpenSearch server can be installed here, so each client is tested
against a local HTTP server that answers in that API's documented response shape (Jaeger
query service `/api/traces`, Tempo `/api/search` + `/api/traces/<id>` OTLP JSON, Loki
`/loki/api/v1/query_range` streams, Elasticsearch/OpenSearch `_search` hits), as the
Messages API stand-in does for Anthropic. The real `httpx` client, timeouts and parsing run.

The incident: web -> api -> db. From t=1000 the db's own work takes 200 ms longer and it
logs a new error; normal window [0, 600], incident [1000, 1300].
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from temporalio.testing import ActivityEnvironment

from activities.telemetry import TelemetryActivities, TelemetryConfig
from integrations.logs import ElasticsearchSource, LogSource, LogSourceError, LokiSource, logql_selector
from integrations.traces import JaegerSource, TempoSource, TraceSourceError
from models.rca import Symptom, TelemetryInput
from rca.logmining import mine_logs
from rca.signals import score_logs, score_traces
from rca.spans import aggregate_spans
from tests.conftest import free_port

NORMAL = (0.0, 600.0)
INCIDENT = (1000.0, 1300.0)
SERVICES = ["web", "api", "db"]

Handler = Callable[[str, dict[str, list[str]], bytes], tuple[int, Any]]


class StoreServer:
    """A ThreadingHTTPServer on 127.0.0.1 answering JSON from `handler(path, query, body)`."""

    def __init__(self, handler: Handler) -> None:
        outer = self
        self.requests: list[tuple[str, dict[str, list[str]], bytes]] = []

        class _Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                url = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                query = parse_qs(url.query)
                outer.requests.append((url.path, query, body))
                status, payload = handler(url.path, query, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = _answer
            do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], StoreServer]]:
    servers: list[StoreServer] = []

    def start(handler: Handler) -> StoreServer:
        servers.append(StoreServer(handler))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def chain(start_s: float, end_s: float) -> list[dict[str, Any]]:
    """Traces in [start, end): web calls api (client span), api calls db (client span)."""
    out = []
    t = start_s
    while t < end_s:
        slow = 0.2 if t >= INCIDENT[0] else 0.0
        t0 = int(t * 1e6)  # microseconds
        db_dur = int((0.01 + slow) * 1e6)
        spans = [
            ("w", "", "web", t0, db_dur + 5000),
            ("wc", "w", "web", t0 + 1000, db_dur + 3000),
            ("a", "wc", "api", t0 + 1200, db_dur + 2600),
            ("ac", "a", "api", t0 + 1300, db_dur + 2200),
            ("d", "ac", "db", t0 + 1400, db_dur),
        ]
        out.append({"traceID": f"t{int(t)}", "spans": spans})
        t += 5
    return out


def jaeger_answer(path: str, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
    assert path == "/api/traces"
    start, end = int(query["start"][0]) / 1e6, int(query["end"][0]) / 1e6
    processes = {"p1": {"serviceName": "web"}, "p2": {"serviceName": "api"}, "p3": {"serviceName": "db"}}
    pid = {"web": "p1", "api": "p2", "db": "p3"}
    data = []
    for trace in chain(start, end):
        data.append(
            {
                "traceID": trace["traceID"],
                "spans": [
                    {
                        "traceID": trace["traceID"],
                        "spanID": f"{trace['traceID']}-{sid}",
                        "operationName": "op",
                        "references": [
                            {
                                "refType": "CHILD_OF",
                                "traceID": trace["traceID"],
                                "spanID": f"{trace['traceID']}-{parent}",
                            }
                        ]
                        if parent
                        else [],
                        "startTime": start_us,
                        "duration": duration,
                        "tags": [],
                        "processID": pid[service],
                    }
                    for sid, parent, service, start_us, duration in trace["spans"]
                ],
                "processes": processes,
            }
        )
    return 200, {"data": data, "total": 0, "limit": 0, "offset": 0, "errors": None}


def tempo_answer(path: str, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
    if path == "/api/search":
        start, end = int(query["start"][0]), int(query["end"][0])
        return 200, {
            "traces": [{"traceID": t["traceID"][1:], "rootServiceName": "web"} for t in chain(start, end)]
        }
    trace_start = int(path.rsplit("/", 1)[1])
    trace = chain(trace_start, trace_start + 1)[0]
    batches = []
    for service in SERVICES:
        spans = [
            {
                "traceId": "abc",
                "spanId": sid,
                "parentSpanId": parent,
                "name": "op",
                "startTimeUnixNano": str(start_us * 1000),
                "endTimeUnixNano": str((start_us + duration) * 1000),
                "status": {},
            }
            for sid, parent, svc, start_us, duration in trace["spans"]
            if svc == service
        ]
        batches.append(
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                "scopeSpans": [{"scope": {"name": "x"}, "spans": spans}],
            }
        )
    return 200, {"batches": batches}


def log_lines(start: float, end: float) -> list[tuple[float, str, str]]:
    out = []
    t = start
    while t < end:
        out.append((t, "api", f"INFO handled request {int(t)} in 12 ms"))
        out.append((t, "db", f"INFO query ok rows={int(t) % 7}"))
        if t >= INCIDENT[0]:
            out.append((t, "db", f"ERROR lock wait timeout exceeded on table orders id={int(t)}"))
        t += 5
    return out


def loki_answer(path: str, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
    assert path == "/loki/api/v1/query_range"
    start, end = int(query["start"][0]) / 1e9, int(query["end"][0]) / 1e9
    streams: dict[str, list[list[str]]] = {}
    for t, service, line in log_lines(start, end):
        streams.setdefault(service, []).append([str(int(t * 1e9)), line])
    result = [{"stream": {"service": s, "namespace": "shop"}, "values": v} for s, v in streams.items()]
    return 200, {"status": "success", "data": {"resultType": "streams", "result": result, "stats": {}}}


def opensearch_answer(path: str, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
    assert path == "/logs-*/_search"
    request = json.loads(body)
    window = request["query"]["bool"]["filter"][0]["range"]["@timestamp"]
    wanted = set(request["query"]["bool"]["filter"][1]["terms"]["service"])
    hits = [
        {
            "_index": "logs-1",
            "_id": str(i),
            "_source": {
                "@timestamp": datetime.fromtimestamp(t, UTC).isoformat(),
                "service": s,
                "message": line,
            },
        }
        for i, (t, s, line) in enumerate(log_lines(window["gte"] / 1000, window["lte"] / 1000))
        if s in wanted
    ]
    return 200, {
        "took": 1,
        "timed_out": False,
        "hits": {"total": {"value": len(hits), "relation": "eq"}, "hits": hits},
    }


async def test_jaeger_spans_aggregate_to_the_service_whose_own_time_grew(
    serve: Callable[[Handler], StoreServer],
) -> None:
    server = serve(jaeger_answer)
    async with httpx.AsyncClient() as http:
        source = JaegerSource(http, server.url, timeout_seconds=5)
        spans = await source.spans(SERVICES, *NORMAL) + await source.spans(SERVICES, *INCIDENT)
    assert len({(s.trace_id, s.span_id) for s in spans}) == len(
        spans
    )  # one trace asked per service, kept once
    stats = aggregate_spans(spans)
    assert {(s.caller, s.callee) for s in stats} == {("", "web"), ("web", "api"), ("api", "db")}
    scored = score_traces(stats, NORMAL, INCIDENT)
    assert max(scored.values(), key=lambda a: (a.belief, a.intensity)).service == "db"
    assert scored["web"].belief < 0.2 and scored["api"].belief < 0.2
    assert {q["service"][0] for p, q, _ in server.requests} == set(SERVICES)


async def test_tempo_search_then_fetch_otlp_traces(serve: Callable[[Handler], StoreServer]) -> None:
    server = serve(tempo_answer)
    async with httpx.AsyncClient() as http:
        source = TempoSource(http, server.url, timeout_seconds=5)
        spans = await source.spans(["web"], *NORMAL) + await source.spans(["web"], *INCIDENT)
    scored = score_traces(aggregate_spans(spans), NORMAL, INCIDENT)
    assert max(scored.values(), key=lambda a: (a.belief, a.intensity)).service == "db"
    assert any(p.startswith("/api/traces/") for p, _, _ in server.requests)
    assert server.requests[0][1]["tags"] == ["service.name=web"]


async def test_loki_lines_mine_into_a_new_error_template_and_names_stay_data(
    serve: Callable[[Handler], StoreServer],
) -> None:
    server = serve(loki_answer)
    async with httpx.AsyncClient() as http:
        source = LokiSource(http, server.url, timeout_seconds=5)
        before = await source.lines(SERVICES, *NORMAL)
        during = await source.lines(SERVICES, *INCIDENT)
        await source.lines(['db"} |= "x', "a.b"], *NORMAL)
    found = score_logs(mine_logs(before, during)[0], NORMAL, INCIDENT)
    assert found["db"].belief > 0.9 and found["db"].findings[0].startswith("new error template")
    assert found["api"].belief == 0.0
    # A hostile service name stays inside the quoted regex: escaped, never LogQL syntax.
    assert server.requests[-1][1]["query"] == [logql_selector("service", ['db"} |= "x', "a.b"])]
    body = server.requests[-1][1]["query"][0].removeprefix('{service=~"').removesuffix('"}')
    assert all(body[i - 1] == "\\" for i, ch in enumerate(body) if ch == '"')  # every quote escaped
    # ...and regex metacharacters escaped too, so "a.b" matches only "a.b" (LogQL string, then RE2).
    assert body == r"db\"\\}\\ \\|=\\ \"x|a\\.b"
    with pytest.raises(ValueError, match="not a label name"):
        LokiSource(http, server.url, service_label="bad label")


async def test_opensearch_search_hits_become_lines(serve: Callable[[Handler], StoreServer]) -> None:
    server = serve(opensearch_answer)
    async with httpx.AsyncClient() as http:
        source = ElasticsearchSource(http, server.url, timeout_seconds=5)
        before = await source.lines(["db"], *NORMAL)
        during = await source.lines(["db"], *INCIDENT)
    assert before and {line.service for line in before} == {"db"}
    found = score_logs(mine_logs(before, during)[0], NORMAL, INCIDENT)
    assert found["db"].findings[0].startswith("new error template")


def traced_lines(start: float, end: float) -> list[tuple[float, str, str, str]]:
    """api's requests: "reserve" then "order saved" in one trace; in the incident 9 of 10 traces
    stop after "reserve" while a retry path prints "order saved" as often, so only the order
    within a trace shows the step that broke."""
    out = []
    t = start
    while t < end:
        trace = f"{int(t):032x}"
        out.append((t, "api", f"INFO reserve seat {int(t) % 9}", trace))
        if t < INCIDENT[0] or int(t) % 50 == 0:
            out.append((t + 0.01, "api", f"INFO order saved for seat {int(t) % 9}", trace))
        else:
            retry = f"{int(t) + 1:032x}"
            out.append((t + 0.02, "api", f"INFO retry {int(t) % 5}", retry))
            out.append((t + 0.03, "api", f"INFO order saved for seat {int(t) % 9}", retry))
        t += 5
    return out


def traced_opensearch_answer(path: str, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
    request = json.loads(body)
    assert request["_source"][-1] == "trace_id"
    window = request["query"]["bool"]["filter"][0]["range"]["@timestamp"]
    hits = [
        {"_source": {"@timestamp": int(t * 1000), "service": s, "message": line, "trace_id": trace}}
        for t, s, line, trace in traced_lines(window["gte"] / 1000, window["lte"] / 1000)
    ]
    return 200, {"hits": {"total": {"value": len(hits), "relation": "eq"}, "hits": hits}}


def traced_loki_answer(path: str, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
    """Structured metadata among the stream's labels (Loki 3's default encoding)."""
    start, end = int(query["start"][0]) / 1e9, int(query["end"][0]) / 1e9
    streams: dict[tuple[str, str], list[list[str]]] = {}
    for t, service, line, trace in traced_lines(start, end):
        streams.setdefault((service, trace), []).append([str(int(t * 1e9)), line])
    result = [{"stream": {"service": s, "trace_id": tr}, "values": v} for (s, tr), v in streams.items()]
    return 200, {"status": "success", "data": {"resultType": "streams", "result": result}}


@pytest.mark.parametrize("answer", [traced_opensearch_answer, traced_loki_answer], ids=["opensearch", "loki"])
async def test_lines_with_trace_ids_pair_and_a_step_that_stopped_is_found(
    serve: Callable[[Handler], StoreServer], answer: Handler
) -> None:
    server = serve(answer)
    async with httpx.AsyncClient() as http:
        source: LogSource = (
            ElasticsearchSource(http, server.url, timeout_seconds=5)
            if answer is traced_opensearch_answer
            else LokiSource(http, server.url, timeout_seconds=5)
        )
        before = await source.lines(["api"], *NORMAL)
        during = await source.lines(["api"], *INCIDENT)
    assert all(line.trace_id for line in before + during)
    logs, pairs = mine_logs(before, during)
    found = score_logs(logs, NORMAL, INCIDENT, pairs=pairs)
    assert found["api"].belief > 0.9
    assert found["api"].findings[0].startswith("info line followed its predecessor")
    # Counts alone do not show it: "order saved" is printed as often as before.
    assert score_logs(logs, NORMAL, INCIDENT)["api"].belief < 0.5


async def test_stores_that_fail_raise_their_own_errors(serve: Callable[[Handler], StoreServer]) -> None:
    broken = serve(lambda path, query, body: (500, {"error": "boom"}))
    wrong = serve(lambda path, query, body: (200, {"unexpected": True}))
    async with httpx.AsyncClient() as http:
        with pytest.raises(TraceSourceError, match="HTTP 500"):
            await JaegerSource(http, broken.url).spans(["web"], *NORMAL)
        with pytest.raises(TraceSourceError, match="not the Jaeger query API"):
            await JaegerSource(http, wrong.url).spans(["web"], *NORMAL)
        with pytest.raises(LogSourceError, match="not a Loki streams result"):
            await LokiSource(http, wrong.url).lines(["web"], *NORMAL)
        with pytest.raises(TraceSourceError, match="ConnectError"):
            await TempoSource(http, f"http://127.0.0.1:{free_port()}", timeout_seconds=2).spans(
                ["web"], *NORMAL
            )


def incident() -> TelemetryInput:
    return TelemetryInput(
        incident_id="incident-web",
        services=["web"],
        symptom=Symptom(service="web", metric="latency_p90"),
        incident_start=datetime.fromtimestamp(INCIDENT[0], UTC),
        incident_end=datetime.fromtimestamp(INCIDENT[1], UTC),
        normal_seconds=NORMAL[1] - NORMAL[0],
        normal_gap_seconds=INCIDENT[0] - NORMAL[1],
        lead_in_seconds=0,
    )


async def test_telemetry_ranks_from_traces_and_logs_when_prometheus_is_down(
    serve: Callable[[Handler], StoreServer],
) -> None:
    jaeger, loki = serve(jaeger_answer), serve(loki_answer)
    config = TelemetryConfig(prometheus_url=f"http://127.0.0.1:{free_port()}", timeout_seconds=2)
    async with httpx.AsyncClient() as http:
        activities = TelemetryActivities(
            http, config, None, traces=JaegerSource(http, jaeger.url, 5), logs=LokiSource(http, loki.url, 5)
        )
        result = await ActivityEnvironment().run(activities.gather_telemetry, incident())
    assert result.status == "unavailable"  # Prometheus is down; traces and logs still answered
    assert result.candidates[0].service == "db", [(c.service, c.signals) for c in result.candidates]
    assert result.candidates[0].signals == ["logs", "traces"]
    sources = {e.source for e in result.candidates[0].evidence}
    assert {"traces", "logs"} <= sources


async def test_a_trace_store_that_fails_makes_the_result_partial_with_the_reason(
    serve: Callable[[Handler], StoreServer],
) -> None:
    broken, loki = serve(lambda path, query, body: (503, {})), serve(loki_answer)
    config = TelemetryConfig(prometheus_url=f"http://127.0.0.1:{free_port()}", timeout_seconds=2)
    async with httpx.AsyncClient() as http:
        activities = TelemetryActivities(
            http, config, None, traces=JaegerSource(http, broken.url, 5), logs=LokiSource(http, loki.url, 5)
        )
        result = await ActivityEnvironment().run(activities.gather_telemetry, incident())
    assert any(r.startswith("traces from jaeger unavailable (HTTP 503)") for r in result.reasons), (
        result.reasons
    )
    assert result.confidence < 1.0
    assert result.candidates[0].service == "db"  # the logs alone still point there
