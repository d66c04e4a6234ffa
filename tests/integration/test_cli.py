"""`firebreak approve` and `firebreak audit`, run as a user would: a subprocess."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass

import pytest
from temporalio.client import Client

from models.incident import Outcome, Phase
from tests.conftest import SESSION_DATA_DIR
from tests.integration.conftest import StackFactory, awaiting, open_incident, resolve, unique_service

pytestmark = pytest.mark.integration


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


async def firebreak(client: Client, *args: str) -> Run:
    """Run the real CLI against the session's Temporal server (without blocking the worker)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli.main",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={
            "TEMPORAL_ADDRESS": client.service_client.config.target_host,
            "FIREBREAK_DATA_DIR": SESSION_DATA_DIR,
            "PATH": "",
        },
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


async def test_cli_approves_and_audits_from_history(make_stack: StackFactory, client: Client) -> None:
    stack = await make_stack()
    service = unique_service()
    incident_id = await open_incident(stack, service)
    state = await stack.wait_for(incident_id, awaiting)
    key = incident_id.removeprefix("incident-")

    approved = await firebreak(
        client, "approve", key, "--by", "dana@example.com", "--reason", "runbook step 2"
    )
    assert approved.returncode == 0, approved.stderr
    assert f"plan {state.plan_hash}: restart_service on {service}" in approved.stdout
    await stack.wait_for(incident_id, lambda s: s.phase == Phase.VERIFYING)
    await resolve(stack, service)
    assert (await stack.handle(incident_id).result()).outcome == Outcome.REMEDIATED

    # The worker is gone: the audit needs only the history.
    await stack.worker.shutdown()
    audit = await firebreak(client, "audit", key)
    assert audit.returncode == 0, audit.stderr
    text = audit.stdout
    for expected in (
        "alerts",
        "KubePodCrashLooping firing on " + service,
        "triage by rules (rule service-down)",
        "policy firebreak.remediation: needs_approval, approver group sre",
        "approve by dana@example.com: runbook step 2",
        "credential accessor",
        "revoked: True",
        "remediated: remediated and verified",
    ):
        assert expected in text, f"{expected!r} missing from audit:\n{text}"

    as_json = json.loads((await firebreak(client, "audit", incident_id, "--format", "json")).stdout)
    kinds = [e["kind"] for e in as_json["entries"]]
    assert kinds[0] == "opened" and "closed" in kinds
    assert kinds.count("alerts") == 2 and "approve" in kinds and "run_playbook" not in kinds
    approval = next(e for e in as_json["entries"] if e["kind"] == "approve")
    assert approval["details"]["by"] == "dana@example.com" and approval["details"]["identity"]
    credential = stack.credentials.issued[0].token.get_secret_value()
    assert credential not in audit.stdout and credential not in json.dumps(as_json)


async def test_cli_refuses_when_nothing_is_pending(client: Client) -> None:
    missing = await firebreak(client, "approve", "no-such-incident", "--by", "x")
    assert missing.returncode != 0
    assert "incident-no-such-incident" in missing.stderr
