"""The incident spine end to end on real servers.

Webhook (the real ASGI app) -> Temporal dev server -> IncidentWorkflow -> Rego policy ->
approval signal -> RemediationWorkflow -> ansible-runner playbook with a token minted by a
real OpenBao -> verification -> close. The demo playbook's effect (restarts.log on the
local target) is what the tests observe.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import hvac
import hvac.exceptions
import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, Worker

from activities.credentials import ActionCredential, ActionCredentials
from api.app import create_app
from models.catalog import ActionSpec
from models.constants import QUERY_STATE, SIGNAL_APPROVE, SIGNAL_REJECT
from models.incident import ApprovalSignal, IncidentResult, IncidentState, Outcome, Phase
from models.settings import PROJECT_ROOT, Settings
from tests.conftest import VaultServer
from tests.payloads import alertmanager_alert, alertmanager_payload
from worker import WORKFLOWS, build_worker

pytestmark = pytest.mark.integration


class RecordingCredentials(ActionCredentials):
    """The real Vault credentials, remembering what they issued so tests can hunt for it."""

    def __init__(self, addr: str, token: Any) -> None:
        super().__init__(addr, token)
        self.issued: list[ActionCredential] = []

    def issue(self, spec: ActionSpec, incident_id: str, idempotency_key: str) -> ActionCredential:
        credential = super().issue(spec, incident_id, idempotency_key)
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
        return await self.handle(incident_id).query(QUERY_STATE, result_type=IncidentState)

    async def wait_for(
        self, incident_id: str, check: Callable[[IncidentState], bool], timeout: float = 60
    ) -> IncidentState:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                state = await self.state(incident_id)
                if check(state):
                    return state
            except Exception:  # noqa: BLE001 - workflow may not have run its first task yet
                state = None
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail(f"{incident_id} never reached the expected state; last: {state}")
            await asyncio.sleep(0.2)

    def restarts(self, service: str) -> list[str]:
        log = self.settings.resolved_target_state_dir() / service / "restarts.log"
        return log.read_text().splitlines() if log.exists() else []


StackFactory = Callable[..., Awaitable[Stack]]


@pytest.fixture
async def make_stack(
    client: Client, settings: Settings, vault: VaultServer
) -> AsyncIterator[StackFactory]:
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
    await Replayer(workflows=list(WORKFLOWS), data_converter=pydantic_data_converter).replay_workflow(
        history
    )
    text = history.to_json()
    if os.environ.get("FIREBREAK_RECORD_HISTORIES"):
        recorded = {"workflowId": incident_id, **json.loads(text)}
        (PROJECT_ROOT / "tests" / "histories" / f"{name}.json").write_text(json.dumps(recorded))
    return text


def unique_service() -> str:
    return f"checkout-{secrets.token_hex(4)}"


async def open_incident(stack: Stack, service: str, alertname: str = "KubePodCrashLooping") -> str:
    response = await stack.post_alertmanager(
        alertmanager_payload(alertmanager_alert(alertname, service))
    )
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
    return state.phase == Phase.AWAITING_APPROVAL


async def test_approved_incident_runs_playbook_once_with_short_lived_credential(
    make_stack: StackFactory, vault: VaultServer
) -> None:
    stack = await make_stack()
    service = unique_service()
    incident_id = await open_incident(stack, service)
    assert incident_id == f"incident-prod-{service}"

    state = await stack.wait_for(incident_id, awaiting)
    assert state.plan is not None and state.plan_hash
    assert state.plan.actions[0].action == "restart_service"
    assert state.plan.actions[0].params == {"service": service}
    assert state.policy is not None and state.policy.verdict == "needs_approval"
    assert stack.restarts(service) == [], "nothing may run before approval"

    # The Temporal UI's "Current Details" show the pending decision and the exact signal.
    metadata = await stack.handle(incident_id).query(
        "__temporal_workflow_metadata", result_type=WorkflowMetadata
    )
    details = metadata.current_details
    assert "Pending: approval" in details
    assert f'"plan_hash": "{state.plan_hash}"' in details
    assert "`approve`" in details and "`reject`" in details
    assert f"restart_service` on `{service}`" in details
    signals = {d.name for d in metadata.definition.signal_definitions}
    assert {"alerts", "approve", "reject"} <= signals

    await stack.handle(incident_id).signal(
        SIGNAL_APPROVE,
        ApprovalSignal(by="alice@example.com", reason="looks right", plan_hash=state.plan_hash),
    )
    state = await stack.wait_for(incident_id, lambda s: s.phase == Phase.VERIFYING)
    (line,) = stack.restarts(service)
    assert incident_id in line

    await resolve(stack, service)
    result = await stack.handle(incident_id).result()
    assert result.outcome == Outcome.REMEDIATED
    state = await stack.state(incident_id)
    (remediation,) = state.remediations
    assert remediation.status == "successful" and remediation.changed
    assert [a.by for a in state.approvals] == ["alice@example.com"]
    assert len(stack.restarts(service)) == 1, "the side effect happened exactly once"

    # The credential: minted once, TTL within the action's timeout, revoked, dead.
    (credential,) = stack.credentials.issued
    assert credential.ttl_seconds <= state.plan.actions[0].timeout_seconds
    assert remediation.credential_accessor == credential.accessor
    assert remediation.credential_revoked
    with pytest.raises(hvac.exceptions.Forbidden):
        hvac.Client(url=vault.addr, token=credential.token.get_secret_value()).auth.token.lookup_self()

    # No credential value anywhere in the history (the audit log) or in the results.
    history = await replay_and_keep(stack, incident_id, "approved_remediated")
    token = credential.token.get_secret_value()
    assert token not in history
    assert vault.worker_token.get_secret_value() not in history
    assert token not in state.model_dump_json()
    secret = vault.root().secrets.kv.v2.read_secret_version(
        path="firebreak/actions/restart_service", mount_point="secret", raise_on_deleted_version=True
    )["data"]["data"]["api_key"]
    assert secret not in history
    # ... nor left on the target or in any file the run wrote.
    for path in stack.settings.resolved_target_state_dir().rglob("*"):
        if path.is_file():
            assert token not in path.read_text()


async def test_rejected_incident_never_runs_playbook(make_stack: StackFactory) -> None:
    stack = await make_stack()
    service = unique_service()
    incident_id = await open_incident(stack, service)
    state = await stack.wait_for(incident_id, awaiting)
    await stack.handle(incident_id).signal(
        SIGNAL_REJECT, ApprovalSignal(by="bob", reason="deploy in progress", plan_hash=state.plan_hash)
    )
    result = await stack.handle(incident_id).result()
    await replay_and_keep(stack, incident_id, "rejected")
    assert result.outcome == Outcome.REJECTED
    assert "bob" in result.summary and "deploy in progress" in result.summary
    assert stack.restarts(service) == []
    assert stack.credentials.issued == []


async def test_stale_plan_hash_is_refused_and_gate_stays_open(make_stack: StackFactory) -> None:
    stack = await make_stack()
    service = unique_service()
    incident_id = await open_incident(stack, service)
    state = await stack.wait_for(incident_id, awaiting)
    await stack.handle(incident_id).signal(
        SIGNAL_APPROVE, ApprovalSignal(by="mallory", reason="yolo", plan_hash="0000")
    )
    state = await stack.wait_for(incident_id, lambda s: len(s.approvals) == 1)
    assert state.phase == Phase.AWAITING_APPROVAL
    assert state.approvals[0].decision == "refused" and state.approvals[0].by == "mallory"
    assert stack.restarts(service) == []
    await stack.handle(incident_id).signal(
        SIGNAL_REJECT, ApprovalSignal(by="carol", reason="cleanup", plan_hash=state.plan_hash)
    )
    assert (await stack.handle(incident_id).result()).outcome == Outcome.REJECTED


async def test_approval_timeout_escalates_without_acting(make_stack: StackFactory) -> None:
    stack = await make_stack(approval_timeout_seconds=2)
    service = unique_service()
    incident_id = await open_incident(stack, service)
    result = await stack.handle(incident_id).result()
    assert result.outcome == Outcome.ESCALATED
    assert "no approval within" in result.summary
    assert stack.restarts(service) == []
    assert stack.credentials.issued == []


async def test_policy_deny_never_runs(make_stack: StackFactory, tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(PROJECT_ROOT / "policies", policies, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (policies / "data.yaml").write_text(
        "firebreak:\n  deny_list:\n    actions: [restart_service]\n    targets: []\n"
        "  approver_groups: {low: sre, medium: sre, high: sre-leads}\n"
    )
    stack = await make_stack(policies_dir=policies)
    service = unique_service()
    incident_id = await open_incident(stack, service)
    result = await stack.handle(incident_id).result()
    assert result.outcome == Outcome.DENIED
    assert "deny list" in result.summary
    state = await stack.state(incident_id)
    assert state.policy is not None and state.policy.verdict == "deny"
    assert stack.restarts(service) == []
    assert stack.credentials.issued == []


async def test_same_webhook_three_times_is_one_incident(make_stack: StackFactory) -> None:
    stack = await make_stack(approval_timeout_seconds=60)
    service = unique_service()
    payload = alertmanager_payload(
        alertmanager_alert("KubePodCrashLooping", service),
        alertmanager_alert("HighErrorRate", service, severity="warning"),
    )
    ids = set()
    for _ in range(3):
        response = await stack.post_alertmanager(payload)
        assert response.status_code == 202, response.text
        ids.update(response.json()["incidents"])
    (incident_id,) = ids
    state = await stack.wait_for(incident_id, lambda s: s.alert_signals == 3)
    assert len(state.alerts) == 2
    assert state.duplicate_alerts == 4
    await stack.handle(incident_id).terminate("test done")


async def test_alerts_resolving_within_settle_window_close_as_transient(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(settle_seconds=5)
    service = unique_service()
    incident_id = await open_incident(stack, service)
    await resolve(stack, service)
    result = await stack.handle(incident_id).result()
    assert result.outcome == Outcome.TRANSIENT
    state = await stack.state(incident_id)
    assert state.triage is None, "a transient incident is not even triaged"
    assert stack.restarts(service) == []


async def test_resolution_while_awaiting_approval_withdraws_request(make_stack: StackFactory) -> None:
    stack = await make_stack()
    service = unique_service()
    incident_id = await open_incident(stack, service)
    await stack.wait_for(incident_id, awaiting)
    await resolve(stack, service)
    result = await stack.handle(incident_id).result()
    assert result.outcome == Outcome.SELF_RESOLVED
    assert "withdrawn" in result.summary
    assert stack.restarts(service) == []


async def test_unknown_alert_escalates_with_reason(make_stack: StackFactory) -> None:
    stack = await make_stack()
    service = unique_service()
    incident_id = await open_incident(stack, service, alertname="QuantumFluxCapacitorDrift")
    result = await stack.handle(incident_id).result()
    assert result.outcome == Outcome.ESCALATED
    assert "no rule covers QuantumFluxCapacitorDrift" in result.summary


async def test_new_alerts_for_incident_in_progress_are_recorded(make_stack: StackFactory) -> None:
    stack = await make_stack()
    service = unique_service()
    incident_id = await open_incident(stack, service)
    first = await stack.wait_for(incident_id, awaiting)
    response = await stack.post_alertmanager(
        alertmanager_payload(alertmanager_alert("HighErrorRate", service, severity="warning"))
    )
    assert response.json()["incidents"] == [incident_id]
    state = await stack.wait_for(incident_id, lambda s: len(s.alerts) == 2)
    assert state.phase == Phase.AWAITING_APPROVAL and state.plan_hash == first.plan_hash
    description = await stack.handle(incident_id).describe()
    assert description.run_id == (await stack.handle(incident_id).describe()).run_id
    await stack.handle(incident_id).terminate("test done")


async def test_history_json_is_valid(make_stack: StackFactory) -> None:
    stack = await make_stack(approval_timeout_seconds=1)
    incident_id = await open_incident(stack, unique_service())
    await stack.handle(incident_id).result()
    history = json.loads((await stack.handle(incident_id).fetch_history()).to_json())
    assert history["events"][0]["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED"
