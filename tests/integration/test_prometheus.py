"""Real Prometheus and Alertmanager (Debian packages) end to end.

An exporter whose values the test sets -> Prometheus scrapes it and evaluates alert rules
-> Alertmanager posts to Firebreak's webhook API (bearer token) -> the incident workflow
starts on Temporal. Then the telemetry activity queries that same Prometheus and ranks
the root cause over a small topology; and it degrades, without raising, when Prometheus
is down, hangs, or refuses a query.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from pydantic import SecretStr
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment

from activities.telemetry import TelemetryActivities, TelemetryConfig
from api.app import create_app
from models.agents import DiagnosisInput, TriageResult
from models.alert import AlertBatch, AlertmanagerAlert, Severity
from models.constants import INCIDENT_WORKFLOW, SIGNAL_ALERTS, incident_workflow_id
from models.incident import IncidentState
from models.rca import Symptom, TelemetryInput, TelemetryResult
from rca.topology import Topology
from runtime.settings import Settings
from tests.conftest import free_port, require_binary
from worker import build_worker

pytestmark = pytest.mark.integration

SUFFIX = secrets.token_hex(3)
FRONTEND, CHECKOUT, PAYMENTS, LEDGER = (
    f"{n}-{SUFFIX}" for n in ("frontend", "checkout", "payments", "ledger-db")
)
TOPOLOGY = Topology.from_data(
    {
        "services": {
            FRONTEND: {"kind": "lb", "depends_on": [CHECKOUT]},
            CHECKOUT: {"depends_on": [PAYMENTS]},
            PAYMENTS: {"depends_on": [LEDGER]},
            LEDGER: {"kind": "database"},
        }
    }
)
# The telemetry queries for this exporter's metric names (deployments configure their own).
QUERIES = {
    "latency_avg": 'max by ($label) (fbtest_latency_seconds{$label=~"$services"})',
    "errors_avg": 'max by ($label) (fbtest_error_ratio{$label=~"$services"})',
    "cpu_avg": 'max by ($label) (fbtest_cpu_cores{$label=~"$services"})',
}


class Exporter:
    """A /metrics endpoint whose gauges the test sets."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/metrics":
                    self.send_error(404)
                    return
                body = exporter.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def set(self, metric: str, service: str, value: float) -> None:
        with self._lock:
            self.values[(metric, service)] = value

    def render(self) -> str:
        with self._lock:
            items = sorted(self.values.items())
        lines: list[str] = []
        for metric in sorted({m for (m, _), _ in items}):
            lines.append(f"# TYPE {metric} gauge")
            lines += [f'{m}{{service="{s}"}} {v}' for (m, s), v in items if m == metric]
        return "\n".join(lines) + "\n"

    def __enter__(self) -> Exporter:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{log.stem} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        time.sleep(0.2)
    pytest.fail(f"{url} not ready after {timeout}s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def started(args: list[str], log: Path, ready_url: str) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "HOME": str(log.parent)}
        )
    try:
        wait_ready(ready_url, proc, log)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Monitoring:
    prometheus_url: str
    alertmanager_url: str
    exporter: Exporter
    settings: Settings
    started_at: float
    incident_started_at: float = 0.0  # set by the first test when it makes payments slow


@pytest.fixture(scope="module")
def monitoring(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitoring]:
    prometheus_bin = require_binary("prometheus")
    alertmanager_bin = require_binary("prometheus-alertmanager")
    root = tmp_path_factory.mktemp("monitoring")
    prom_port, am_port, api_port = free_port(), free_port(), free_port()
    token = "fb-" + secrets.token_hex(16)
    settings = Settings(
        _env_file=None,
        api_token=SecretStr(token),
        api_port=api_port,
        task_queue=f"prom-tq-{secrets.token_hex(4)}",  # no worker: the start itself is under test
        settle_seconds=600,
    )
    (root / "rules.yml").write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "firebreak-test",
                        "interval": "1s",
                        "rules": [
                            {
                                "alert": "HighRequestLatency",
                                "expr": "fbtest_latency_seconds > 0.5",
                                "for": "2s",
                                "labels": {"severity": "critical"},
                                "annotations": {"summary": "{{ $labels.service }} latency is {{ $value }}s"},
                            }
                        ],
                    }
                ]
            }
        )
    )
    with Exporter() as exporter:
        (root / "prometheus.yml").write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(root / "rules.yml")],
                    "alerting": {
                        "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]
                    },
                    "scrape_configs": [
                        {
                            "job_name": "fbtest",
                            "honor_labels": True,
                            "static_configs": [{"targets": [f"127.0.0.1:{exporter.port}"]}],
                        }
                    ],
                }
            )
        )
        am_config = root / "alertmanager.yml"
        am_config.write_text(
            yaml.safe_dump(
                {
                    "route": {
                        "receiver": "firebreak",
                        "group_by": ["alertname", "service"],
                        "group_wait": "1s",
                        "group_interval": "1s",
                        "repeat_interval": "1h",
                    },
                    "receivers": [
                        {
                            "name": "firebreak",
                            "webhook_configs": [
                                {
                                    "url": f"http://127.0.0.1:{api_port}/alerts/alertmanager",
                                    "send_resolved": True,
                                    "http_config": {
                                        "authorization": {"type": "Bearer", "credentials": token}
                                    },
                                }
                            ],
                        }
                    ],
                }
            )
        )
        am_config.chmod(0o600)
        prometheus_url = f"http://127.0.0.1:{prom_port}"
        alertmanager_url = f"http://127.0.0.1:{am_port}"
        with (
            started(
                [
                    alertmanager_bin,
                    f"--config.file={am_config}",
                    f"--storage.path={root / 'am-data'}",
                    f"--web.listen-address=127.0.0.1:{am_port}",
                    "--cluster.listen-address=",
                ],
                root / "alertmanager.log",
                f"{alertmanager_url}/-/ready",
            ),
            started(
                [
                    prometheus_bin,
                    f"--config.file={root / 'prometheus.yml'}",
                    f"--storage.tsdb.path={root / 'prom-data'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                ],
                root / "prometheus.log",
                f"{prometheus_url}/-/ready",
            ),
        ):
            # Normal period: every service healthy.
            for service, latency in ((FRONTEND, 0.12), (CHECKOUT, 0.08), (PAYMENTS, 0.03), (LEDGER, 0.004)):
                exporter.set("fbtest_latency_seconds", service, latency)
                exporter.set("fbtest_error_ratio", service, 0.001)
                exporter.set("fbtest_cpu_cores", service, 0.2)
            yield Monitoring(prometheus_url, alertmanager_url, exporter, settings, time.time())
            logs = (root / "alertmanager.log").read_text() + (root / "prometheus.log").read_text()
            assert token not in logs, "the API token leaked into Prometheus/Alertmanager logs"


@pytest.fixture
async def api_server(monitoring: Monitoring, client: Client) -> AsyncIterator[str]:
    """The real webhook API, served by uvicorn on the session loop (it shares the Temporal client)."""

    async def client_factory() -> Client:
        return client

    app = create_app(monitoring.settings, client_factory)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=monitoring.settings.api_port, log_level="warning", lifespan="on"
        )
    )
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 15
    while not server.started:
        if task.done() or time.monotonic() > deadline:
            pytest.fail(f"uvicorn did not start: {task.exception() if task.done() else 'timeout'}")
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{monitoring.settings.api_port}"
    finally:
        server.should_exit = True
        await task


async def wait_for_workflow(client: Client, workflow_id: str, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await client.get_workflow_handle(workflow_id).describe()
        except RPCError:
            if time.monotonic() > deadline:
                pytest.fail(f"{workflow_id} was never started")
            await asyncio.sleep(0.5)


async def gather(
    config: TelemetryConfig, input: TelemetryInput, topology: Topology | None = TOPOLOGY
) -> TelemetryResult:
    async with httpx.AsyncClient() as http:
        activities = TelemetryActivities(http, config, topology)
        result: TelemetryResult = await ActivityEnvironment().run(activities.gather_telemetry, input)
        return result


def incident_input(start: float, end: float, normal_seconds: float) -> TelemetryInput:
    return TelemetryInput(
        incident_id=f"incident-{CHECKOUT}",
        services=[CHECKOUT],
        symptom=Symptom(service=CHECKOUT, metric="latency_avg"),
        incident_start=datetime.fromtimestamp(start, UTC),
        incident_end=datetime.fromtimestamp(end, UTC),
        normal_seconds=normal_seconds,
        normal_gap_seconds=0,
        lead_in_seconds=0,  # the 12 s of normal data end where the slowdown starts
        step_seconds=1,
    )


async def test_alert_fires_to_incident_and_telemetry_ranks_the_root_cause(
    monitoring: Monitoring, api_server: str, client: Client
) -> None:
    exporter = monitoring.exporter
    # Let Prometheus collect a normal period (1 s scrapes).
    await asyncio.sleep(max(0.0, monitoring.started_at + 12 - time.time()))
    incident_start = time.time()
    # payments slows down; checkout (its caller) and the frontend feel it. ledger-db is fine.
    exporter.set("fbtest_latency_seconds", PAYMENTS, 2.5)
    exporter.set("fbtest_latency_seconds", CHECKOUT, 2.61)
    exporter.set("fbtest_latency_seconds", FRONTEND, 2.75)
    exporter.set("fbtest_cpu_cores", PAYMENTS, 0.95)
    monitoring.incident_started_at = incident_start

    workflow_id = incident_workflow_id(CHECKOUT)
    description = await wait_for_workflow(client, workflow_id)
    assert description.workflow_type == INCIDENT_WORKFLOW
    assert description.status == WorkflowExecutionStatus.RUNNING
    assert description.task_queue == monitoring.settings.task_queue
    batches: list[AlertBatch] = []
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            attrs = event.workflow_execution_signaled_event_attributes
            assert attrs.signal_name == SIGNAL_ALERTS
            batches += await client.data_converter.decode(attrs.input.payloads, [AlertBatch])
    alerts = [a for batch in batches for a in batch.alerts]
    assert alerts, "the workflow started without the alert signal"
    assert {a.name for a in alerts} == {"HighRequestLatency"}
    assert {a.service for a in alerts} == {CHECKOUT}
    assert alerts[0].source == "alertmanager" and alerts[0].status == "firing"
    assert "latency is 2.61" in alerts[0].summary

    # Diagnosis input, as the workflow would build it: the incident's services and window.
    await asyncio.sleep(3)
    end = time.time()
    config = TelemetryConfig(prometheus_url=monitoring.prometheus_url, timeout_seconds=5, queries=QUERIES)
    result = await gather(config, incident_input(incident_start, end, incident_start - monitoring.started_at))
    assert result.status == "ok", result.reasons
    assert result.confidence == 1.0
    assert set(result.services) == {CHECKOUT, PAYMENTS, LEDGER, FRONTEND}
    checkout = [e for e in result.evidence if e.service == CHECKOUT and e.summary.startswith("latency_avg")]
    assert checkout and checkout[0].kind == "anomaly"
    assert checkout[0].value == pytest.approx(2.61)  # the exporter's value, through Prometheus
    assert "vs normal 0.08" in checkout[0].summary
    payments_cpu = [e for e in result.evidence if e.service == PAYMENTS and e.summary.startswith("cpu_avg")]
    assert payments_cpu and payments_cpu[0].value == pytest.approx(0.95)
    assert not [e for e in result.evidence if e.service == LEDGER and e.kind == "anomaly"]
    # payments is anomalous, its own dependency is healthy, and it explains its callers.
    top = result.candidates[0]
    assert top.service == PAYMENTS, [(c.service, c.score) for c in result.candidates]
    assert set(top.explains) >= {CHECKOUT, FRONTEND}
    assert any(e.kind == "dependencies_healthy" and LEDGER in e.summary for e in top.evidence)
    assert result.candidates[1].service in (CHECKOUT, FRONTEND)
    # What the diagnosis agent receives: the candidates as evidence, then the telemetry.
    diagnosis_input = DiagnosisInput(
        incident_id=workflow_id,
        alerts=alerts,
        triage=triage_for(CHECKOUT),
        evidence=result.diagnosis_evidence(),
    )
    first = diagnosis_input.evidence[0]
    assert (first.source, first.kind, first.service) == ("rca", "root_cause", PAYMENTS)
    assert first.score == top.confidence and 0.5 < top.confidence <= 1.0
    assert CHECKOUT in first.summary and "cpu_avg 0.95" in first.summary
    assert all(e.score is None or 0.0 <= e.score <= 1.0 for e in diagnosis_input.evidence)

    # A query Prometheus rejects: the rest still answers, the result says what failed.
    broken = TelemetryConfig(
        prometheus_url=monitoring.prometheus_url,
        timeout_seconds=5,
        queries={**QUERIES, "saturation_avg": "sum by (service) (rate(fbtest_cpu_cores{[1m]))"},
    )
    partial = await gather(
        broken, incident_input(incident_start, end, incident_start - monitoring.started_at)
    )
    assert partial.status == "partial"
    assert partial.confidence < 1.0
    assert any(r.startswith("query for saturation_avg failed: HTTP 400 bad_data") for r in partial.reasons)
    assert partial.candidates[0].service == PAYMENTS

    for service in (FRONTEND, CHECKOUT, PAYMENTS):
        with contextlib.suppress(RPCError):
            await client.get_workflow_handle(incident_workflow_id(service)).terminate("test done")


def triage_for(service: str) -> TriageResult:
    return TriageResult(
        reasoner="rules",
        confidence=0.9,
        severity=Severity.P1,
        category="latency",
        services=[service],
        summary="slow",
    )


def hanging_server() -> tuple[socket.socket, int]:
    """Accepts connections and never answers: a Prometheus that hangs."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock, int(sock.getsockname()[1])


@pytest.mark.parametrize("failure", ["refused", "hangs"])
async def test_prometheus_down_degrades_without_raising(failure: str) -> None:
    listener = None
    if failure == "refused":
        url = f"http://127.0.0.1:{free_port()}"
    else:
        listener, port = hanging_server()
        url = f"http://user:pw-{secrets.token_hex(4)}@127.0.0.1:{port}"
    now = time.time()
    alert = AlertmanagerAlert.model_validate(
        {
            "status": "firing",
            "labels": {"alertname": "HighRequestLatency", "service": CHECKOUT, "severity": "critical"},
            "startsAt": datetime.fromtimestamp(now - 60, UTC).isoformat(),
        }
    ).to_alert()
    input = incident_input(now - 60, now, 3600).model_copy(update={"alerts": [alert]})
    started_at = time.monotonic()
    try:
        result = await gather(TelemetryConfig(prometheus_url=url, timeout_seconds=0.5), input)
    finally:
        if listener is not None:
            listener.close()
    assert time.monotonic() - started_at < 5, "the outage must cost one timeout, not one per query"
    assert result.status == "unavailable"
    assert result.confidence < 0.5
    assert "did not answer" in result.reasons[0]
    assert ("timed out" if failure == "hangs" else "ConnectError") in result.reasons[0]
    assert "pw-" not in result.reasons[0] and "pw-" not in result.prometheus_url  # no credentials in results
    assert {e.kind for e in result.evidence} == {"telemetry_unavailable"}
    assert [e.service for e in result.evidence] == [CHECKOUT]
    # Still a ranking, from the topology and the alert alone, with the reason attached.
    assert result.candidates
    assert CHECKOUT in [c.service for c in result.candidates[:3]]
    assert all(c.anomaly is None or c.anomaly <= 1 for c in result.candidates)


async def test_incident_diagnosis_carries_the_prometheus_evidence(
    monitoring: Monitoring, client: Client, settings: Settings, tmp_path: Path
) -> None:
    """The whole path through the worker: the incident's context step asks this Prometheus."""
    assert monitoring.incident_started_at, "runs after the alert test, which makes payments slow"
    topology = tmp_path / "topology.yaml"
    topology.write_text(
        yaml.safe_dump(
            {
                "services": {
                    FRONTEND: {"kind": "lb", "depends_on": [CHECKOUT]},
                    CHECKOUT: {"depends_on": [PAYMENTS]},
                    PAYMENTS: {"depends_on": [LEDGER]},
                    LEDGER: {"kind": "database"},
                }
            }
        )
    )
    configured = settings.model_copy(
        update={
            "prometheus_url": monitoring.prometheus_url,
            "prometheus_queries": QUERIES,
            "topology_file": topology,
            "telemetry_normal_seconds": monitoring.incident_started_at - monitoring.started_at - 1,
            "telemetry_normal_gap_seconds": 0.0,
            "telemetry_lead_in_seconds": 0.0,
            "approval_timeout_seconds": 600,
        }
    )
    async with build_worker(client, configured):

        async def factory() -> Client:
            return client

        app = create_app(configured, factory)
        assert configured.api_token is not None
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
            response = await http.post(
                "/alerts/generic",
                json={
                    "name": "HighRequestLatency",
                    "service": CHECKOUT,
                    "severity": "critical",
                    "labels": {"namespace": "e2e"},  # its own incident, apart from Alertmanager's
                    "starts_at": datetime.fromtimestamp(monitoring.incident_started_at, UTC).isoformat(),
                },
                headers={"Authorization": f"Bearer {configured.api_token.get_secret_value()}"},
            )
        assert response.status_code == 202, response.text
        (incident_id,) = response.json()["incidents"]
        handle = client.get_workflow_handle(incident_id)
        deadline = time.monotonic() + 120
        while True:
            state = await handle.query("state", result_type=IncidentState)
            if state.diagnosis is not None or state.outcome is not None:
                break
            assert time.monotonic() < deadline, f"no diagnosis: {state.phase}"
            await asyncio.sleep(0.5)
        with contextlib.suppress(RPCError):  # it may have closed (escalated) on its own already
            await handle.terminate("test done")
    assert state.diagnosis is not None, (state.outcome, state.decisions[-1])
    assert not [r for r in state.degraded if "Prometheus" in r], state.degraded
    latency = [e for e in state.evidence if e.source == "prometheus" and e.service == CHECKOUT]
    assert latency and latency[0].value == pytest.approx(2.61), state.evidence
    assert state.root_cause_candidates and state.root_cause_candidates[0].startswith(PAYMENTS)
    root = [e for e in state.evidence if e.kind == "root_cause"]
    assert root and root[0].service == PAYMENTS
