"""Fixtures for integration tests: a worker and the real ASGI API on the session servers."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, Worker

from api.app import create_app
from integrations.vault import ActionCredential, ActionCredentials
from models.alert import AlertBatch, AlertmanagerPayload
from models.catalog import ActionSpec
from models.constants import INCIDENT_WORKFLOW, QUERY_STATE, SIGNAL_ALERTS, incident_workflow_id
from models.incident import IncidentResult, IncidentState, IncidentWorkflowInput, Phase
from runtime.settings import PROJECT_ROOT, Settings
from tests.conftest import VaultServer
from tests.fake_anthropic import FakeAnthropic
from tests.payloads import alertmanager_alert, alertmanager_payload
from worker import WORKFLOWS, build_worker


class RecordingCredentials(ActionCredentials):
    """The real Vault credentials, remembering what they issued so tests can hunt for it."""

    def __init__(self, addr: str, token: Any) -> None:
        super().__init__(addr, token)
        self.issued: list[ActionCredential] = []

    def issue(
        self, spec: ActionSpec, incident_id: str, idempotency_key: str, attempt: int = 1
    ) -> ActionCredential:
        credential = super().issue(spec, incident_id, idempotency_key, attempt)
        self.issued.append(credential)
        return credential


@dataclass
class Stack:
    client: Client
    settings: Settings
    http: httpx.AsyncClient
    credentials: RecordingCredentials
    worker: Worker
    headers: dict[str, str] = field(default_factory=dict)

    async def post_alertmanager(self, payload: dict[str, Any]) -> httpx.Response:
        return await self.http.post("/alerts/alertmanager", json=payload, headers=self.headers)

    def handle(self, incident_id: str) -> WorkflowHandle[Any, IncidentResult]:
        return self.client.get_workflow_handle(incident_id, result_type=IncidentResult)

    async def state(self, incident_id: str) -> IncidentState:
        state: IncidentState = await self.handle(incident_id).query(QUERY_STATE, result_type=IncidentState)
        return state

    async def wait_for(
        self, incident_id: str, check: Callable[[IncidentState], bool], timeout: float = 60
    ) -> IncidentState:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                state = await self.state(incident_id)
                if check(state):
                    return state
            except Exception:
                state = None
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail(f"{incident_id} never reached the expected state; last: {state}")
            await asyncio.sleep(0.2)

    def restarts(self, service: str) -> list[str]:
        log = self.settings.resolved_target_state_dir() / service / "restarts.log"
        return log.read_text().splitlines() if log.exists() else []


StackFactory = Callable[..., Awaitable[Stack]]


@pytest.fixture
async def make_stack(client: Client, settings: Settings, vault: VaultServer) -> AsyncIterator[StackFactory]:
    cleanups: list[Callable[[], Awaitable[None]]] = []

    async def factory(**overrides: Any) -> Stack:
        configured = settings.model_copy(update=overrides)
        credentials = RecordingCredentials(vault.addr, vault.worker_token)
        worker = build_worker(client, configured, credentials)
        task = asyncio.create_task(worker.run())

        async def client_factory() -> Client:
            return client

        app = create_app(configured, client_factory)
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")

        async def cleanup() -> None:
            await http.aclose()
            await worker.shutdown()
            await task

        cleanups.append(cleanup)
        assert configured.api_token is not None
        return Stack(
            client=client,
            settings=configured,
            http=http,
            credentials=credentials,
            worker=worker,
            headers={"Authorization": f"Bearer {configured.api_token.get_secret_value()}"},
        )

    yield factory
    for cleanup in cleanups:
        await cleanup()


async def replay_and_keep(stack: Stack, incident_id: str, name: str) -> str:
    """Replay a finished incident's history now; keep it under tests/histories/ on request.

    FIREBREAK_RECORD_HISTORIES=1 refreshes the committed histories that
    tests/test_replay.py replays on every run.
    """
    history = await stack.handle(incident_id).fetch_history()
    await Replayer(workflows=list(WORKFLOWS), data_converter=pydantic_data_converter).replay_workflow(history)
    text = history.to_json()
    if os.environ.get("FIREBREAK_RECORD_HISTORIES"):
        recorded = {"workflowId": incident_id, **json.loads(text)}
        (PROJECT_ROOT / "tests" / "histories" / f"{name}.json").write_text(json.dumps(recorded))
    return text


async def start_incident(
    stack: Stack, alert: dict[str, Any], max_signals_per_run: int, settle_seconds: float | None = None
) -> WorkflowHandle[Any, IncidentResult]:
    """Signal-with-start, as the API does, with a low signal threshold in the input."""
    alerts = AlertmanagerPayload.model_validate(alertmanager_payload(alert)).to_alerts()
    key = alerts[0].incident_key()
    return await stack.client.start_workflow(
        INCIDENT_WORKFLOW,
        IncidentWorkflowInput(
            key=key,
            settle_seconds=stack.settings.settle_seconds if settle_seconds is None else settle_seconds,
            approval_timeout_seconds=stack.settings.approval_timeout_seconds,
            verify_window_seconds=stack.settings.verify_window_seconds,
            max_signals_per_run=max_signals_per_run,
        ),
        id=incident_workflow_id(key),
        task_queue=stack.settings.task_queue,
        start_signal=SIGNAL_ALERTS,
        start_signal_args=[AlertBatch(alerts=alerts, received_at=datetime.now(UTC))],
        result_type=IncidentResult,
    )


def unique_service() -> str:
    return f"checkout-{secrets.token_hex(4)}"


async def open_incident(stack: Stack, service: str, alertname: str = "KubePodCrashLooping") -> str:
    response = await stack.post_alertmanager(alertmanager_payload(alertmanager_alert(alertname, service)))
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted"] == 1
    (incident_id,) = body["incidents"]
    return str(incident_id)


async def resolve(stack: Stack, service: str, alertname: str = "KubePodCrashLooping") -> None:
    response = await stack.post_alertmanager(
        alertmanager_payload(alertmanager_alert(alertname, service, status="resolved"))
    )
    assert response.status_code == 202, response.text


def awaiting(state: IncidentState) -> bool:
    """At the gate with the whole request: the check-mode preview follows the verdict and lands
    in the request while the gate is already open."""
    previewed = state.plan is not None and len(state.previews) == len(state.plan.actions)
    return state.phase == Phase.AWAITING_APPROVAL and previewed


# --- The Messages API stand-in (the only one: there is no network here) ---------------------


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropic]:
    fake = FakeAnthropic(api_key="sk-ant-test-" + secrets.token_hex(16)).start()
    try:
        yield fake
    finally:
        fake.stop()


def claude_settings(fake: FakeAnthropic, **overrides: Any) -> dict[str, Any]:
    """Settings overrides that point the worker's real anthropic client at the fake."""
    return {
        "anthropic_api_key": SecretStr(fake.api_key),
        "llm_base_url": fake.url,
        "llm_model": "claude-test-model",
        "llm_timeout_seconds": 5.0,
        **overrides,
    }
