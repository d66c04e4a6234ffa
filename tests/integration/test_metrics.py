"""Prometheus metrics: the worker's page (Firebreak's + Temporal's runtime + workflow metrics)
and the API's /metrics, scraped over HTTP as Prometheus would.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel, SecretStr
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from models.incident import ApprovalRecord, Decision, IncidentState, Outcome, Phase, RemediationResult
from models.policy import PolicyDecision, PolicyVerdict
from runtime import metrics
from runtime.settings import Settings
from runtime.tracing import FirebreakInterceptor
from tests.conftest import free_port
from tests.integration.conftest import StackFactory, open_incident, unique_service
from workflows import notifier

pytestmark = pytest.mark.integration

OPENED = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


class ProbeInput(BaseModel):
    state: IncidentState
    action: str


@activity.defn(name="run_playbook")
async def fake_playbook(action: str) -> RemediationResult:
    """Stands in for the playbook: what the interceptor counts is its result."""
    return RemediationResult(
        action=action,
        target="t",
        status="successful",
        changed=True,
        check_mode=False,
        idempotency_key="k",
        duration_seconds=1.5,
        summary="ok",
    )


@workflow.defn(name="MetricsProbe")
class MetricsProbe:
    @workflow.run
    async def run(self, input: ProbeInput) -> None:
        for phase in (Phase.TRIAGE, Phase.POLICY, Phase.AWAITING_APPROVAL, Phase.CLOSED):
            notifier.phase_entered(phase.value)
        await workflow.execute_activity(
            "run_playbook",
            input.action,
            result_type=RemediationResult,
            start_to_close_timeout=timedelta(seconds=10),
        )
        notifier.incident_closed(input.state)


def closed_state() -> IncidentState:
    policy_at = OPENED + timedelta(seconds=42)
    return IncidentState(
        incident_id="incident-metrics-probe",
        key="metrics-probe",
        phase=Phase.CLOSED,
        outcome=Outcome.REMEDIATED,
        opened_at=OPENED,
        closed_at=OPENED + timedelta(seconds=400),
        duplicate_alerts=3,
        policy=PolicyDecision(
            verdict=PolicyVerdict.NEEDS_APPROVAL, reasons=["r"], policy="firebreak.remediation"
        ),
        decisions=[
            Decision(at=policy_at, kind="policy", by="firebreak.remediation", summary="needs_approval")
        ],
        approvals=[
            ApprovalRecord(
                decision="approved", by="alice", reason="ok", at=policy_at + timedelta(seconds=100)
            )
        ],
    )


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    """The sum over the series of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in found.items() if n == name and wanted <= ls)


async def test_worker_metrics_page_has_firebreak_temporal_and_workflow_metrics(client: Client) -> None:
    runtime, temporal_url = metrics.temporal_runtime()
    # A client of its own on the session's server, with the metrics runtime (as worker.py does).
    metered = await Client.connect(
        client.service_client.config.target_host, runtime=runtime, data_converter=pydantic_data_converter
    )
    settings = Settings(_env_file=None, worker_metrics_port=free_port())
    server, thread = metrics.serve(settings, temporal_url)
    action = f"probe_{uuid.uuid4().hex[:6]}"
    try:
        task_queue = f"metrics-{uuid.uuid4().hex[:8]}"
        async with Worker(
            metered,
            task_queue=task_queue,
            workflows=[MetricsProbe],
            activities=[fake_playbook],
            interceptors=[FirebreakInterceptor()],
            workflow_runner=SandboxedWorkflowRunner(
                restrictions=SandboxRestrictions.default.with_passthrough_modules(
                    "tests", "firebreak", "models"
                )
            ),
        ):
            await metered.execute_workflow(
                MetricsProbe.run,
                ProbeInput(state=closed_state(), action=action),
                id=f"metrics-{uuid.uuid4().hex[:8]}",
                task_queue=task_queue,
            )
            url = f"http://{settings.metrics_host}:{server.server_port}/metrics"
            async with httpx.AsyncClient() as http:
                # The core exports on its own schedule: poll until the workflow's metrics show.
                for _ in range(50):
                    found = samples((await http.get(url)).text)
                    if value(found, "firebreak_incidents_closed_by_outcome_total", task_queue=task_queue):
                        break
                    await asyncio.sleep(0.2)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    # Firebreak's own, counted from the activity's result by the interceptor.
    assert value(found, "firebreak_actions_total", action=action, result="successful", mode="live") == 1
    assert value(found, "firebreak_action_success_ratio", action=action) == 1.0
    assert value(found, "firebreak_action_seconds_sum", action=action) == 1.5
    # Temporal's runtime metrics, bridged from the core's own listener.
    assert value(found, "temporal_workflow_completed_total", task_queue=task_queue) >= 1
    assert value(found, "temporal_activity_execution_latency_count", task_queue=task_queue) >= 1
    # Recorded in the workflow with workflow.metric_meter().
    for phase in ("triage", "policy", "awaiting_approval", "closed"):
        assert value(found, "firebreak_incident_phase_entered_total", phase=phase, task_queue=task_queue) == 1
    by_outcome = {"outcome": "remediated", "task_queue": task_queue}
    assert value(found, "firebreak_incidents_closed_by_outcome_total", **by_outcome) == 1
    assert value(found, "firebreak_incident_duration_seconds_sum", **by_outcome) == 400
    assert value(found, "firebreak_incident_time_to_decision_seconds_sum", verdict="needs_approval") >= 42
    assert (
        value(found, "firebreak_incident_approval_wait_seconds_sum", decision="approved", **by_outcome) == 100
    )
    assert value(found, "firebreak_alerts_deduplicated_total", task_queue=task_queue) == 3


async def test_api_metrics_count_webhooks_and_incidents_by_phase(make_stack: StackFactory) -> None:
    stack = await make_stack(metrics_incident_refresh_seconds=0.01)
    before = samples((await stack.http.get("/metrics")).text)
    service = unique_service()
    incident_id = await open_incident(stack, service)
    denied = await stack.http.post("/alerts/generic", json={"name": "x", "service": "y"})
    assert denied.status_code == 401

    # Visibility is eventually consistent: scrape until the new incident is counted.
    for _ in range(50):
        response = await stack.http.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        after = samples(response.text)
        running = value(after, "firebreak_incidents_running")
        if running > value(before, "firebreak_incidents_running"):
            break
        await asyncio.sleep(0.2)
    else:
        pytest.fail(f"{incident_id} never counted among running incidents")

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("firebreak_alerts_received_total", source="alertmanager", status="firing") == 1
    assert delta("firebreak_webhook_requests_total", source="alertmanager", code="202") == 1
    assert delta("firebreak_webhook_requests_total", source="generic", code="401") == 1
    assert delta("firebreak_webhook_seconds_count", source="alertmanager") == 1
    await stack.handle(incident_id).terminate("test done")


async def test_api_metrics_token_is_required_when_set_and_is_not_the_webhook_token(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(metrics_token=SecretStr("scrape-" + uuid.uuid4().hex))
    assert stack.settings.metrics_token is not None
    scrape = {"Authorization": f"Bearer {stack.settings.metrics_token.get_secret_value()}"}
    for headers in ({}, {"Authorization": "Bearer wrong"}, stack.headers, {"Authorization": "Basic x"}):
        refused = await stack.http.get("/metrics", headers=headers)
        assert refused.status_code == 401, headers
        assert refused.headers["www-authenticate"] == "Bearer"
        assert "metrics bearer token" in refused.text
        assert "firebreak_" not in refused.text
    allowed = await stack.http.get("/metrics", headers=scrape)
    assert allowed.status_code == 200 and "firebreak_webhook_requests_total" in allowed.text
    # The scrape token opens no incident.
    assert (
        await stack.http.post("/alerts/generic", json={"name": "x", "service": "y"}, headers=scrape)
    ).status_code == 401
