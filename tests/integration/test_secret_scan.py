"""No secret in what is stored: an approved incident run with the dev stack's codec, scanned
decoded, and the logs of every process that touched it.

The stack here is `make dev`'s shape on one Temporal of its own (so its SQLite file can be
read): the worker and the API with payload encryption, real OpenBao, real ansible-runner.
What is scanned: every payload of the incident's and its children's histories opened with
the codec (tests/secret_scan.py: activity inputs and results, signals, child inputs and
results, memos, search attributes, failures), Temporal's database file, the worker's and
the API's log (captured from their loggers), OpenBao's server log and its audit log.

The control test plants a canary in a payload and shows the same scan reports it, so the
scan can fail; and shows that a scan of `history.to_json()` (base64) would have missed it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from models.constants import QUERY_STATE, SEARCH_ATTRIBUTES, SIGNAL_APPROVE
from models.incident import ApprovalSignal, IncidentResult, IncidentState, Outcome, Phase
from policies.seals import configured_key
from runtime.codec import EncryptionCodec, data_converter, generate_key
from runtime.settings import Settings
from tests.conftest import VaultServer, require_binary
from tests.integration.conftest import RecordingCredentials, unique_service
from tests.payloads import alertmanager_alert, alertmanager_payload
from tests.secret_scan import find_secrets, plain_payload_text, stored_text
from worker import build_worker

pytestmark = pytest.mark.integration


@dataclass
class SealedStack:
    client: Client
    codec: EncryptionCodec
    codec_keys: str
    settings: Settings
    credentials: RecordingCredentials
    http: httpx.AsyncClient
    headers: dict[str, str]
    database: Path
    log: Path


@pytest.fixture
async def sealed_stack(settings: Settings, vault: VaultServer, tmp_path: Path) -> AsyncIterator[SealedStack]:
    database = tmp_path / "temporal.sqlite"
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=require_binary("temporal"),
        dev_server_database_filename=str(database),
        search_attributes=SEARCH_ATTRIBUTES,
        ui=False,
    )
    keys = generate_key("k1")
    client = await Client.connect(
        env.client.service_client.config.target_host, data_converter=data_converter(keys)
    )
    configured = settings.model_copy(update={"verify_window_seconds": 2.0})
    credentials = RecordingCredentials(vault.addr, vault.worker_token)
    log = tmp_path / "processes.log"
    handler = logging.FileHandler(log)
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    worker = build_worker(client, configured, credentials)
    task = asyncio.create_task(worker.run())

    async def factory() -> Client:
        return client

    app = create_app(configured, factory)
    assert configured.api_token is not None
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
            yield SealedStack(
                client=client,
                codec=EncryptionCodec.from_spec(keys),
                codec_keys=keys,
                settings=configured,
                credentials=credentials,
                http=http,
                headers={"Authorization": f"Bearer {configured.api_token.get_secret_value()}"},
                database=database,
                log=log,
            )
    finally:
        await worker.shutdown()
        await task
        root.removeHandler(handler)
        root.setLevel(previous)
        handler.close()
        await env.shutdown()


async def run_approved_incident(stack: SealedStack, service: str, summary: str) -> str:
    alert = alertmanager_alert("KubePodCrashLooping", service, summary=summary)
    response = await stack.http.post(
        "/alerts/alertmanager", json=alertmanager_payload(alert), headers=stack.headers
    )
    assert response.status_code == 202, response.text
    (incident_id,) = response.json()["incidents"]
    handle = stack.client.get_workflow_handle(incident_id, result_type=IncidentResult)
    for _ in range(600):
        state = await handle.query(QUERY_STATE, result_type=IncidentState)
        if state.phase == Phase.AWAITING_APPROVAL:
            break
        await asyncio.sleep(0.2)
    await handle.signal(SIGNAL_APPROVE, ApprovalSignal(by="oncall", reason="go", plan_hash=state.plan_hash))
    result = await asyncio.wait_for(handle.result(), timeout=120)
    assert result.outcome == Outcome.ESCALATED, result  # nobody resolves the alert: verify fails
    return str(incident_id)


async def everything_stored(stack: SealedStack, incident_id: str) -> str:
    """The incident's and its children's histories, every payload opened with the codec."""
    texts = [
        await stored_text(await stack.client.get_workflow_handle(incident_id).fetch_history(), stack.codec)
    ]
    async for child in stack.client.list_workflows(f"WorkflowId STARTS_WITH '{incident_id}-'"):
        history = await stack.client.get_workflow_handle(child.id, run_id=child.run_id).fetch_history()
        texts.append(await stored_text(history, stack.codec))
    return "\n".join(texts)


def secrets_of(stack: SealedStack, vault: VaultServer) -> dict[str, str]:
    found = {f"action token {c.accessor}": c.token.get_secret_value() for c in stack.credentials.issued}
    with vault.root() as root:
        found["action secret"] = root.secrets.kv.v2.read_secret_version(
            path="firebreak/actions/restart_service", mount_point="secret", raise_on_deleted_version=True
        )["data"]["data"]["api_key"]
    found["worker Vault token"] = vault.worker_token.get_secret_value()
    found["codec key"] = stack.codec_keys.partition(":")[2]
    found["admission key"] = configured_key(None, stack.settings.data_dir, "admission").get_secret_value()
    assert stack.settings.api_token is not None
    found["webhook token"] = stack.settings.api_token.get_secret_value()
    return found


def log_files(stack: SealedStack, vault: VaultServer) -> list[Path]:
    assert vault.audit_log is not None
    return [stack.log, vault.audit_log, vault.audit_log.parent / "bao.log", stack.database]


async def test_no_secret_in_decoded_history_database_or_logs(
    sealed_stack: SealedStack, vault: VaultServer
) -> None:
    stack = sealed_stack
    service = unique_service()
    incident_id = await run_approved_incident(stack, service, "checkout restarts")
    state = await stack.client.get_workflow_handle(incident_id).query(QUERY_STATE, result_type=IncidentState)
    assert [r.check_mode for r in state.remediations] == [False] and state.remediations[0].credential_accessor
    assert len(stack.credentials.issued) == 1, "one real run minted one token"
    stored = await everything_stored(stack, incident_id)
    assert "KubePodCrashLooping" in stored and state.remediations[0].credential_accessor in stored, (
        "the scan reads decoded payloads (alert names, the result's accessor)"
    )
    assert find_secrets(secrets_of(stack, vault), stored, log_files(stack, vault)) == []


async def test_the_scan_reports_a_secret_planted_in_a_payload(
    sealed_stack: SealedStack, vault: VaultServer
) -> None:
    """Control: a canary secret inside a stored payload is found by the same scan."""
    stack = sealed_stack
    canary = "hvs.CANARY" + secrets.token_hex(12)
    service = unique_service()
    incident_id = await run_approved_incident(stack, service, f"token leaked: {canary}")
    stored = await everything_stored(stack, incident_id)
    planted = {"canary": canary, **secrets_of(stack, vault)}
    assert find_secrets(planted, stored, log_files(stack, vault)) == ["canary in the stored history"]
    # What a scan of the JSON form (base64 payloads) or of the server's view (ciphertext) sees:
    history = await stack.client.get_workflow_handle(incident_id).fetch_history()
    assert canary not in history.to_json(), "base64: a to_json() scan could never have found it"
    assert canary not in plain_payload_text(json.loads(history.to_json())), "sealed by the codec at rest"
    assert canary.encode() not in stack.database.read_bytes(), "Temporal's file holds ciphertext only"
