"""Prometheus metrics of the worker and the API, and the bridge to Temporal's own.

Three sources end up on one `/metrics` page per process:

- Firebreak's metrics below, in `REGISTRY` (prometheus-client). The worker's are counted
  by `runtime.tracing.FirebreakInterceptor` from activity results (agent decisions, LLM
  tokens and cost, policy verdicts, actions by class and result, notifications); the API's
  by the webhook handlers (alerts in) and from visibility (incidents by phase and outcome).
- Temporal's runtime metrics (worker slots, poll and task latencies, RPCs): the SDK core
  serves them on a loopback port of its own (`temporal_runtime`), and `TemporalBridge`
  re-exports that page, so one scrape target per process has everything.
- Metrics recorded in workflows through `workflow.metric_meter()` (replay-safe; see
  `workflows.notifier`) travel the same way as Temporal's runtime metrics.

The names are the contract with dashboards and alert rules: change them like an API.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterable
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from models.constants import (
    INCIDENT_WORKFLOW,
    SA_OUTCOME,
    SA_PHASE,
    WF_APPROVAL_WAIT,
    WF_INCIDENT_COST,
    WF_INCIDENT_SECONDS,
    WF_TIME_TO_DECISION,
)
from models.incident import Outcome, Phase
from runtime.settings import Settings

logger = logging.getLogger(__name__)

__all__ = ["CONTENT_TYPE_LATEST", "REGISTRY", "generate_latest"]

REGISTRY = CollectorRegistry()

# --- API: what comes in ----------------------------------------------------------------------
ALERTS_RECEIVED = Counter(
    "firebreak_alerts_received",
    "Alerts accepted by the webhook API (202), by source and status.",
    ["source", "status"],
    registry=REGISTRY,
)
WEBHOOK_REQUESTS = Counter(
    "firebreak_webhook_requests",
    "Webhook requests by source and HTTP status code.",
    ["source", "code"],
    registry=REGISTRY,
)
WEBHOOK_SECONDS = Histogram(
    "firebreak_webhook_seconds",
    "Time from a webhook request to its answer (202 means Temporal holds the alerts).",
    ["source"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
INCIDENTS_RUNNING = Gauge(
    "firebreak_incidents_running",
    "Open incidents by phase (from Temporal visibility).",
    ["phase"],
    registry=REGISTRY,
)
INCIDENTS_CLOSED = Gauge(
    "firebreak_incidents_closed",
    "Closed incidents still in Temporal's retention, by outcome (from visibility).",
    ["outcome"],
    registry=REGISTRY,
)
VISIBILITY_ERRORS = Counter(
    "firebreak_visibility_refresh_errors",
    "Failed refreshes of the incident counts from visibility (the last counts stay).",
    registry=REGISTRY,
)

# --- Worker: what the activities decided and did ----------------------------------------------
AGENT_DECISIONS = Counter(
    "firebreak_agent_decisions",
    "Agent decisions by agent and the reasoner that made them (rules or claude).",
    ["agent", "reasoner"],
    registry=REGISTRY,
)
LLM_CALLS = Counter(
    "firebreak_llm_calls",
    "Messages API calls that answered, by agent, model and purpose (decide or repair).",
    ["agent", "model", "purpose"],
    registry=REGISTRY,
)
LLM_TOKENS = Counter(
    "firebreak_llm_tokens",
    "LLM tokens by agent, model and kind (input, output, cache_read, cache_write).",
    ["agent", "model", "kind"],
    registry=REGISTRY,
)
LLM_COST = Counter(
    "firebreak_llm_cost_usd",
    "LLM spend in US dollars at the configured prices, by agent and model.",
    ["agent", "model"],
    registry=REGISTRY,
)
POLICY_DECISIONS = Counter(
    "firebreak_policy_decisions",
    "Policy verdicts per evaluated action (allow, needs_approval, deny).",
    ["verdict"],
    registry=REGISTRY,
)
ACTIONS = Counter(
    "firebreak_actions",
    "Remediation actions run, by catalog action, result and mode (live or check).",
    ["action", "result", "mode"],
    registry=REGISTRY,
)
ACTION_SECONDS = Histogram(
    "firebreak_action_seconds",
    "Playbook run time by catalog action.",
    ["action"],
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800),
    registry=REGISTRY,
)
NOTIFICATIONS = Counter(
    "firebreak_notifications",
    "Notifications by channel, incident event and result (sent, created, updated, exists).",
    ["channel", "event", "result"],
    registry=REGISTRY,
)
ACTIVITY_FAILURES = Counter(
    "firebreak_activity_failures",
    "Activity attempts that raised, by activity and error type (Temporal may retry them).",
    ["activity", "error"],
    registry=REGISTRY,
)


class _SuccessRate:
    """firebreak_action_success_ratio: live actions that succeeded / live actions run."""

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        totals: dict[str, float] = {}
        ok: dict[str, float] = {}
        for metric in ACTIONS.collect():
            for sample in metric.samples:
                if not sample.name.endswith("_total") or sample.labels.get("mode") != "live":
                    continue
                action = sample.labels["action"]
                totals[action] = totals.get(action, 0.0) + sample.value
                if sample.labels.get("result") == "successful":
                    ok[action] = ok.get(action, 0.0) + sample.value
        family = GaugeMetricFamily(
            "firebreak_action_success_ratio",
            "Share of live remediation actions that succeeded, by catalog action.",
            labels=["action"],
        )
        for action, total in sorted(totals.items()):
            if total:
                family.add_metric([action], ok.get(action, 0.0) / total)
        yield family


REGISTRY.register(_SuccessRate())

# Buckets of the workflow-side histograms (recorded in workflows.notifier).
_INCIDENT_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0)
HISTOGRAM_BUCKETS: dict[str, list[float]] = {
    WF_INCIDENT_SECONDS: list(_INCIDENT_BUCKETS),
    WF_TIME_TO_DECISION: list(_INCIDENT_BUCKETS),
    WF_APPROVAL_WAIT: list(_INCIDENT_BUCKETS),
    WF_INCIDENT_COST: [0.0, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0],
}


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def temporal_runtime(port: int = 0) -> tuple[Runtime, str]:
    """A Temporal runtime whose core serves Prometheus metrics on a loopback port.

    Returns the runtime (pass it to `Client.connect(runtime=...)` or make it the default
    before connecting) and the URL of its metrics page, for `TemporalBridge`.
    """
    port = port or free_loopback_port()
    runtime = Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=f"127.0.0.1:{port}",
                counters_total_suffix=True,
                durations_as_seconds=True,
                histogram_bucket_overrides=HISTOGRAM_BUCKETS,
            )
        )
    )
    return runtime, f"http://127.0.0.1:{port}/metrics"


class TemporalBridge:
    """Re-exports the Temporal core's Prometheus page as part of a prometheus-client registry."""

    def __init__(self, url: str, timeout: float = 2.0) -> None:
        if not url.startswith("http://127.0.0.1:"):
            raise ValueError("the Temporal runtime's metrics are read from loopback only")
        self._url = url
        self._timeout = timeout

    def describe(self) -> Iterable[Metric]:
        return []  # the names are only known at scrape time

    def collect(self) -> Iterable[Metric]:
        try:
            with urllib.request.urlopen(self._url, timeout=self._timeout) as response:  # noqa: S310 - loopback
                text = response.read().decode()
        except OSError as exc:
            logger.warning("Temporal runtime metrics unavailable: %s", type(exc).__name__)
            return
        yield from text_string_to_metric_families(text)


def registry_with_temporal(url: str | None) -> CollectorRegistry:
    """A registry with Firebreak's metrics and, when given, the Temporal runtime's."""
    if url is None:
        return REGISTRY
    combined = CollectorRegistry()
    combined.register(_Everything(REGISTRY))
    combined.register(TemporalBridge(url))
    return combined


class _Everything:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        return self._registry.collect()


def serve(settings: Settings, temporal_url: str | None, port: int | None = None) -> tuple[WSGIServer, Thread]:
    """The worker's /metrics: Firebreak's metrics plus Temporal's, on one port.

    `port` defaults to the worker's setting; a memory worker passes its own.
    """
    server, thread = start_http_server(
        settings.worker_metrics_port if port is None else port,
        addr=settings.metrics_host,
        registry=registry_with_temporal(temporal_url),
    )
    logger.info("metrics on http://%s:%s/metrics", settings.metrics_host, server.server_port)
    return server, thread


# --- API: incidents by phase and outcome, from visibility ------------------------------------


class IncidentCounts:
    """Refreshes firebreak_incidents_running / _closed from visibility, at most every `every` s.

    Visibility cannot GROUP BY a custom search attribute, so it is one count per phase and
    per outcome, run side by side; a failed refresh keeps the last counts.
    """

    def __init__(self, every: float) -> None:
        self._every = every
        self._last = -math.inf
        self._lock = asyncio.Lock()

    async def refresh_if_stale(self, client: Callable[[], Awaitable[Client]]) -> None:
        if self._every <= 0 or time.monotonic() - self._last < self._every:
            return
        async with self._lock:
            if time.monotonic() - self._last < self._every:
                return
            try:
                await asyncio.wait_for(refresh_incident_counts(await client()), timeout=5)
            except Exception as exc:  # Temporal down, visibility slow: keep the last counts
                VISIBILITY_ERRORS.inc()
                logger.warning("incident counts not refreshed: %s", type(exc).__name__)
            self._last = time.monotonic()


async def refresh_incident_counts(client: Client) -> None:
    base = f"WorkflowType = '{INCIDENT_WORKFLOW}'"
    phases = [p.value for p in Phase if p != Phase.CLOSED]
    outcomes = [o.value for o in Outcome]
    counts = await asyncio.gather(
        *(
            client.count_workflows(f"{base} AND ExecutionStatus = 'Running' AND {SA_PHASE.name} = '{p}'")
            for p in phases
        ),
        *(
            client.count_workflows(f"{base} AND ExecutionStatus != 'Running' AND {SA_OUTCOME.name} = '{o}'")
            for o in outcomes
        ),
    )
    for phase, count in zip(phases, counts[: len(phases)], strict=True):
        INCIDENTS_RUNNING.labels(phase=phase).set(count.count)
    for outcome, count in zip(outcomes, counts[len(phases) :], strict=True):
        INCIDENTS_CLOSED.labels(outcome=outcome).set(count.count)


async def exposition(registry: CollectorRegistry) -> bytes:
    """The text page (off the event loop: the Temporal bridge makes a loopback request)."""
    return await asyncio.to_thread(generate_latest, registry)


# --- API: webhook requests -------------------------------------------------------------------


class WebhookMetrics:
    """ASGI middleware: requests, status codes and latency of the webhook endpoints."""

    def __init__(self, app: ASGIApp, prefix: str = "/alerts/", sources: Iterable[str] = ()) -> None:
        self._app = app
        self._prefix = prefix
        self._sources = frozenset(sources)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith(self._prefix):
            await self._app(scope, receive, send)
            return
        source = path[len(self._prefix) :]
        if source not in self._sources:
            source = "other"  # bounded label values, whatever the path
        status = 500
        started = time.perf_counter()

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self._app(scope, receive, capture)
        finally:
            WEBHOOK_REQUESTS.labels(source=source, code=str(status)).inc()
            WEBHOOK_SECONDS.labels(source=source).observe(time.perf_counter() - started)
