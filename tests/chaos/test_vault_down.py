"""OpenBao dies between approval and remediation: no credential, so no action, and a clear escalation.

The worker mints a short-lived token per action from OpenBao. With OpenBao gone the
remediation activity fails as VaultUnavailable, Temporal retries it on its retry policy,
and when the attempts run out the incident escalates, saying what failed. The playbook
never runs (the demo target's restarts.log stays empty), because the activity asks for
its credential before anything else.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from models.constants import SIGNAL_APPROVE
from models.incident import ApprovalSignal, Outcome, Phase
from runtime.settings import Settings
from tests.chaos.conftest import MARKER, PoolFactory, api_for, incident, query_state, restarts
from tests.conftest import VaultServer, bootstrap_dev_vault, free_port, require_binary
from tests.payloads import alertmanager_alert, alertmanager_payload

pytestmark = pytest.mark.integration


@pytest.fixture
def doomed_vault(tmp_path: Path, chaos_marker: str) -> Iterator[tuple[VaultServer, subprocess.Popen[bytes]]]:
    """An OpenBao of this test's own, bootstrapped like the dev stack, for the test to kill."""
    port = free_port()
    root_token = "root-" + secrets.token_hex(12)
    log = tmp_path / "bao.log"
    with log.open("wb") as out:
        argv = [
            require_binary("bao"), "server", "-dev",
            f"-dev-root-token-id={root_token}", f"-dev-listen-address=127.0.0.1:{port}",
        ]  # fmt: skip
        process = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "BAO_DEV_ROOT_TOKEN_ID": "", "HOME": str(tmp_path), MARKER: chaos_marker},
        )
    try:
        addr = f"http://127.0.0.1:{port}"
        worker_token = bootstrap_dev_vault(addr, root_token, process, log)
        yield VaultServer(addr=addr, root_token=SecretStr(root_token), worker_token=worker_token), process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


@pytest.mark.timeout(180)
async def test_vault_down_during_remediation_escalates_without_acting(
    client: Client,
    settings: Settings,
    make_pool: PoolFactory,
    doomed_vault: tuple[VaultServer, subprocess.Popen[bytes]],
) -> None:
    vault, bao = doomed_vault
    configured = settings.model_copy(
        update={
            "vault_addr": vault.addr,
            "vault_token": vault.worker_token,
            "settle_seconds": 0.0,
            "approval_timeout_seconds": 600.0,
        }
    )
    pool = make_pool(configured, FIREBREAK_VAULT_TOKEN=vault.worker_token.get_secret_value())
    await pool.wait_ready(pool.spawn())
    service = f"novault-{secrets.token_hex(3)}"

    async def same_client() -> Client:
        return client

    async with api_for(configured, same_client) as api:
        response = await api.post_until_accepted(
            "/alerts/alertmanager", alertmanager_payload(alertmanager_alert("KubePodCrashLooping", service))
        )
    (incident_id,) = response.json()["incidents"]
    handle = incident(client, incident_id)
    deadline = time.monotonic() + 60
    while (state := await query_state(client, incident_id)).phase != Phase.AWAITING_APPROVAL:
        assert time.monotonic() < deadline, f"never reached approval: {state.phase}"
        await asyncio.sleep(0.2)

    bao.kill()  # OpenBao dies with the approval on its way
    bao.wait()
    approved_at = time.monotonic()
    await handle.signal(SIGNAL_APPROVE, ApprovalSignal(by="sre", reason="go", plan_hash=state.plan_hash))
    result = await asyncio.wait_for(handle.result(), timeout=150)
    escalated_after = time.monotonic() - approved_at

    assert result.outcome == Outcome.ESCALATED, result
    state = await query_state(client, incident_id)
    # The check-mode preview ran before approval (it needs no credential); the real run failed.
    (remediation,) = [r for r in state.remediations if not r.check_mode]
    assert remediation.status == "failed" and not remediation.changed
    assert remediation.credential_accessor is None, "no credential was ever issued"
    reasons = f"{result.summary} | {remediation.summary}"
    assert "restart_service" in result.summary and service in result.summary, reasons
    assert restarts(configured, service) == [], "an action ran without its credential"

    # Temporal retried the activity before giving up, and the last attempt failed on Vault.
    attempts, failure = await playbook_attempts(client, incident_id)
    assert attempts >= 2, attempts
    assert "VaultUnavailable" in failure and vault.addr in failure, failure
    print(f"\nescalated {escalated_after:.1f}s after approval, {attempts} attempts: {reasons}")
    assert "Vault" in reasons and "unavailable" in reasons, reasons


async def playbook_attempts(client: Client, incident_id: str) -> tuple[int, str]:
    """How many attempts run_playbook made, and how its last one failed (type: message)."""
    history = await incident(client, incident_id).fetch_history()
    # The last child is the real run (the first is the check-mode preview shown for approval).
    child = [
        e.child_workflow_execution_started_event_attributes.workflow_execution.workflow_id
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED
    ][-1]
    child_history = await client.get_workflow_handle(child).fetch_history()
    scheduled = {
        e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
        for e in child_history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    }
    attempts = 0
    failure = ""
    for e in child_history.events:
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            attrs = e.activity_task_started_event_attributes
            if scheduled[attrs.scheduled_event_id] == "run_playbook":
                attempts = max(attempts, attrs.attempt)
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED:
            cause = e.activity_task_failed_event_attributes.failure
            failure = f"{cause.application_failure_info.type}: {cause.message}"
    return attempts, failure
