"""One trace per incident, from the webhook to the playbook, on the real stack.

The API (real ASGI app with its server spans) and the worker each get their own tracer
provider, both exporting to one in-memory exporter, exactly as two processes would export
to one collector. The agents decide through the real `anthropic` client against the local
Messages API, so every LLM call is a span too.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import AsyncIterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr
from temporalio.client import Client

from api.app import create_app
from models.constants import SIGNAL_APPROVE
from models.incident import ApprovalSignal, Outcome, Phase
from runtime.settings import Settings
from runtime.tracing import client_interceptors, get_tracer, tracer_provider
from tests.conftest import VaultServer
from tests.fake_anthropic import FakeAnthropic, ToolUse, Usage
from tests.integration.conftest import RecordingCredentials, Stack, awaiting, claude_settings, resolve
from tests.integration.test_agents_flow import APPROVE, LAG, diagnosis, restart, triage
from tests.payloads import alertmanager_alert, alertmanager_payload
from worker import build_worker

pytestmark = pytest.mark.integration

AGENT_ACTIVITIES = ("triage", "diagnose", "plan_remediation", "review_plan")


@pytest.fixture
async def traced(
    client: Client, settings: Settings, vault: VaultServer, fake_anthropic: FakeAnthropic
) -> AsyncIterator[tuple[Stack, InMemorySpanExporter, dict[str, TracerProvider]]]:
    exporter = InMemorySpanExporter()
    configured = settings.model_copy(update=claude_settings(fake_anthropic))
    providers: dict[str, TracerProvider] = {}
    for role in ("api", "worker"):
        provider = tracer_provider(configured, role, exporter=exporter)
        assert provider is not None
        providers[role] = provider
    # Two "processes": the API's client traces; the worker traces through its interceptors.
    api_config = client.config()
    api_config["interceptors"] = client_interceptors(providers["api"])
    api_client = Client(**api_config)
    worker_config = client.config()
    worker_config["interceptors"] = []
    worker_client = Client(**worker_config)
    credentials = RecordingCredentials(vault.addr, vault.worker_token)
    worker = build_worker(worker_client, configured, credentials, tracer_provider=providers["worker"])
    task = asyncio.create_task(worker.run())

    async def factory() -> Client:
        return api_client

    app = create_app(configured, factory, tracer_provider=providers["api"])
    assert configured.api_token is not None
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")
    stack = Stack(
        client=api_client,
        settings=configured,
        http=http,
        credentials=credentials,
        worker=worker,
        headers={"Authorization": f"Bearer {configured.api_token.get_secret_value()}"},
    )
    try:
        yield stack, exporter, providers
    finally:
        await http.aclose()
        await worker.shutdown()
        await task
        for provider in providers.values():
            provider.shutdown()


def by_trace(spans: list[ReadableSpan], trace_id: int) -> list[ReadableSpan]:
    return [s for s in spans if s.context is not None and s.context.trace_id == trace_id]


def named(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


async def test_one_trace_from_webhook_to_remediation_with_agent_attributes_and_no_secret(
    traced: tuple[Stack, InMemorySpanExporter, dict[str, TracerProvider]],
    fake_anthropic: FakeAnthropic,
    vault: VaultServer,
) -> None:
    stack, exporter, providers = traced
    service = f"orders-{secrets.token_hex(4)}"
    fake_anthropic.script("record_triage", ToolUse(triage(service), usage=Usage(1500, 180, 2100, 0)))
    fake_anthropic.script("record_diagnosis", ToolUse(diagnosis(service), usage=Usage(1700, 160, 0, 2100)))
    fake_anthropic.script("record_plan", ToolUse(restart(service), usage=Usage(1900, 220, 2100, 0)))
    fake_anthropic.script("record_review", ToolUse(APPROVE, usage=Usage(2000, 90, 0, 2100)))
    raw_text = f"lag-detail-{secrets.token_hex(6)} customer emails delayed"
    alert = alertmanager_alert(LAG, service, severity="warning", summary=f"consumer lag on {service}")
    alert["annotations"]["description"] = raw_text
    response = await stack.post_alertmanager(alertmanager_payload(alert))
    assert response.status_code == 202, response.text
    (incident_id,) = response.json()["incidents"]

    state = await stack.wait_for(incident_id, awaiting)
    await stack.handle(incident_id).signal(
        SIGNAL_APPROVE, ApprovalSignal(by="alice", reason="ok", plan_hash=state.plan_hash)
    )
    await stack.wait_for(incident_id, lambda s: s.phase == Phase.VERIFYING)
    await resolve(stack, service, alertname=LAG)
    assert (await stack.handle(incident_id).result()).outcome == Outcome.REMEDIATED
    for provider in providers.values():
        assert provider.force_flush()
    spans = list(exporter.get_finished_spans())

    # The webhook's server span is the root of the incident's trace ...
    webhooks = [s for s in spans if s.parent is None and s.name == "POST /alerts/alertmanager"]
    assert len(webhooks) == 2  # the firing alert, then the resolved one
    webhook = min(webhooks, key=lambda s: s.start_time or 0)
    assert webhook.context is not None
    assert webhook.resource.attributes["service.name"] == "firebreak-api"
    trace = by_trace(spans, webhook.context.trace_id)
    ids = {s.context.span_id for s in trace if s.context is not None}
    # ... and every span of it hangs from another one of it: one connected tree.
    orphans = [
        s.name for s in trace if s is not webhook and (s.parent is None or s.parent.span_id not in ids)
    ]
    assert orphans == []
    names = {s.name for s in trace}
    expected = {
        "SignalWithStartWorkflow:IncidentWorkflow",
        "RunWorkflow:IncidentWorkflow",
        *(f"RunActivity:{a}" for a in (*AGENT_ACTIVITIES, "evaluate_policy")),
        "StartChildWorkflow:RemediationWorkflow",
        "RunWorkflow:RemediationWorkflow",
        "RunActivity:run_playbook",
        "CompleteWorkflow:IncidentWorkflow",
    }
    assert expected <= names, expected - names
    assert any(s.resource.attributes["service.name"] == "firebreak-worker" for s in trace)

    # Agent spans carry how they decided and what the LLM cost; each LLM call is a child span.
    triage_span = named(trace, "RunActivity:triage")[0]
    attrs: dict[str, Any] = dict(triage_span.attributes or {})
    assert attrs["firebreak.agent.reasoner"] == "claude"
    assert attrs["firebreak.agent.model"] == "claude-test-model"
    assert attrs["gen_ai.usage.input_tokens"] == 1500 and attrs["gen_ai.usage.output_tokens"] == 180
    assert attrs["firebreak.llm.calls"] == 1
    assert attrs["firebreak.llm.cost_usd"] == pytest.approx(
        state.triage.usage.cost_usd if state.triage else -1
    )
    assert attrs["temporalWorkflowID"] == incident_id
    llm_calls = named(trace, "chat claude-test-model")
    assert len(llm_calls) == 4, [s.name for s in trace]
    triage_call = next(s for s in llm_calls if s.parent and s.parent.span_id == triage_span.context.span_id)
    call_attrs: dict[str, Any] = dict(triage_call.attributes or {})
    assert call_attrs["gen_ai.system"] == "anthropic"
    assert call_attrs["gen_ai.request.model"] == "claude-test-model"
    assert call_attrs["gen_ai.usage.input_tokens"] == 1500
    assert call_attrs["http.response.status_code"] == 200
    for name in AGENT_ACTIVITIES:
        assert named(trace, f"RunActivity:{name}")[0].attributes["firebreak.agent.reasoner"] == "claude"  # type: ignore[index]
    policy = named(trace, "RunActivity:evaluate_policy")[0].attributes or {}
    assert policy["firebreak.policy.verdict"] == "needs_approval"
    # The check-mode preview shown in the approval request runs first (and holds no credential).
    runs = [dict(s.attributes or {}) for s in named(trace, "RunActivity:run_playbook")]
    assert [r["firebreak.action.check_mode"] for r in runs] == [True, False]
    playbook = runs[1]
    (credential,) = stack.credentials.issued
    assert playbook["firebreak.action"] == "restart_service"
    assert playbook["firebreak.action.status"] == "successful"
    assert playbook["firebreak.credential.accessor"] == credential.accessor

    # No secret and no raw alert text on any span, in any trace.
    dump = "\n".join(s.to_json() for s in spans)
    assert stack.settings.api_token is not None
    for secret in (
        credential.token.get_secret_value(),
        vault.worker_token.get_secret_value(),
        stack.settings.api_token.get_secret_value(),
        fake_anthropic.api_key,
        raw_text,
    ):
        assert secret not in dump


def test_otlp_exporter_posts_spans_to_the_configured_collector() -> None:
    """`otlp` sends OTLP/HTTP protobuf, with the configured (secret) headers, to the endpoint."""
    received: list[tuple[str, dict[str, str], bytes]] = []

    class Collector(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            received.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    token = "collector-" + secrets.token_hex(8)
    try:
        settings = Settings(
            _env_file=None,
            otel_exporter="otlp",
            otel_endpoint=f"http://127.0.0.1:{server.server_address[1]}/v1/traces",
            otel_headers=SecretStr(f"authorization=Bearer {token}"),
        )
        provider = tracer_provider(settings, "worker")
        assert provider is not None
        with get_tracer(provider).start_as_current_span("probe-span", attributes={"firebreak.activity": "x"}):
            pass
        assert provider.force_flush()
        provider.shutdown()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    ((path, headers, body),) = received
    assert path == "/v1/traces" and headers["content-type"] == "application/x-protobuf"
    assert headers["authorization"] == f"Bearer {token}"
    export = ExportTraceServiceRequest.FromString(body)
    (resource_spans,) = export.resource_spans
    service = next(
        a.value.string_value for a in resource_spans.resource.attributes if a.key == "service.name"
    )
    assert service == "firebreak-worker"
    assert [span.name for scope in resource_spans.scope_spans for span in scope.spans] == ["probe-span"]
    assert token.encode() not in body
