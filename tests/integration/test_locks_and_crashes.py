"""One remediation per target at a time, most severe first; exactly once across a SIGKILL."""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from temporalio.client import Client, WorkflowHandle

from models.agents import ProposedAction
from models.constants import LOCK_WORKFLOW_ID_PREFIX
from models.incident import RemediationInput
from models.locks import LockState
from runtime.settings import PROJECT_ROOT, Settings
from tests.admitted import admission_key, admit, parent_worker, start_admitted
from tests.conftest import VaultServer
from worker import build_worker

pytestmark = pytest.mark.integration


def remediation(service: str, key: str, severity_rank: int) -> RemediationInput:
    return RemediationInput(
        incident_id=f"incident-{key}",
        action=ProposedAction(action="restart_service", params={"service": service}, target=service),
        idempotency_key=key,
        severity_rank=severity_rank,
    )


async def start(
    client: Client, settings: Settings, spec: RemediationInput, parents: str, key: SecretStr | None = None
) -> WorkflowHandle[Any, Any]:
    """The remediation as an admitted child of a stand-in incident (tests/admitted.py)."""
    run = admit(spec, key or admission_key(settings))
    return await start_admitted(client, parents, run, settings.task_queue)


async def lock_state(client: Client, service: str) -> LockState | None:
    try:
        state: LockState = await client.get_workflow_handle(LOCK_WORKFLOW_ID_PREFIX + service).query(
            "lock_state", result_type=LockState
        )
    except Exception:
        return None
    return state


async def test_one_remediation_per_target_most_severe_first(client: Client, settings: Settings) -> None:
    service = f"locked-{secrets.token_hex(3)}"
    run = secrets.token_hex(3)
    async with build_worker(client, settings), parent_worker(client) as parents:
        first = await start(client, settings, remediation(service, f"{run}-a-p3", 3), parents)
        # Wait until the first one holds the lock, then queue a P3 and, after it, a P1.
        for _ in range(300):
            state = await lock_state(client, service)
            if state is not None and state.holder is not None:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the first remediation never got the lock")
        later_p3 = await start(client, settings, remediation(service, f"{run}-b-p3", 3), parents)
        for _ in range(300):
            state = await lock_state(client, service)
            if state is not None and any(r.request_id.endswith("b-p3") for r in state.queue):
                break
            await asyncio.sleep(0.05)
        urgent_p1 = await start(client, settings, remediation(service, f"{run}-c-p1", 1), parents)
        results = await asyncio.gather(first.result(), later_p3.result(), urgent_p1.result())
    assert [r.status for r in results] == ["successful"] * 3
    log = (settings.resolved_target_state_dir() / service / "restarts.log").read_text().splitlines()
    order = [line.split()[0].split("-")[-2] for line in log]
    assert order == ["a", "c", "b"], f"P1 must overtake the waiting P3: {log}"
    state = await lock_state(client, service)
    assert state is None or (state.holder is None and state.grants >= 3)


async def test_side_effect_happens_once_when_worker_is_killed(
    client: Client, settings: Settings, vault: VaultServer, tmp_path: Path
) -> None:
    """SIGKILL the worker right after the playbook's effect; the retry must not repeat it."""
    service = f"crash-{secrets.token_hex(3)}"
    log = settings.resolved_target_state_dir() / service / "restarts.log"
    key = SecretStr(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
    env = {
        "FIREBREAK_ADMISSION_KEY": key.get_secret_value(),
        **os.environ,
        "TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "FIREBREAK_TASK_QUEUE": settings.task_queue,
        "FIREBREAK_VAULT_ADDR": vault.addr,
        "FIREBREAK_VAULT_TOKEN": vault.worker_token.get_secret_value(),
        "FIREBREAK_TARGET_STATE_DIR": str(settings.resolved_target_state_dir()),
        "FIREBREAK_DATA_DIR": str(tmp_path / "data"),
        "FIREBREAK_EMBEDDINGS": "sparse",
        "FIREBREAK_WORKER_METRICS_PORT": "0",
        "FIREBREAK_TEMPORAL_METRICS_PORT": "0",
    }

    async def spawn() -> asyncio.subprocess.Process:
        with (tmp_path / "worker.log").open("ab") as log_file:
            return await asyncio.create_subprocess_exec(
                sys.executable,
                str(PROJECT_ROOT / "worker.py"),
                env=env,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log_file,
            )

    worker = await spawn()
    parents_cm = parent_worker(client)
    parents = await parents_cm.__aenter__()
    handle = await start(client, settings, remediation(service, secrets.token_hex(8), 2), parents, key)
    try:
        for _ in range(3000):  # up to a minute on a loaded machine
            if log.exists() and log.read_text().strip():
                break
            await asyncio.sleep(0.02)
        else:
            pytest.fail(f"the playbook never ran:\n{(tmp_path / 'worker.log').read_text()[-3000:]}")
        worker.send_signal(signal.SIGKILL)
        await worker.wait()
        description = await handle.describe()
        assert description.status is not None and description.status.name == "RUNNING", (
            "killed before the activity could complete"
        )
        worker = await spawn()
        # The activity's heartbeat times out, Temporal retries it on the new worker.
        result = await asyncio.wait_for(handle.result(), timeout=120)
    finally:
        await parents_cm.__aexit__(None, None, None)
        if worker.returncode is None:
            worker.send_signal(signal.SIGTERM)
            await worker.wait()
    assert result.status == "successful"
    assert not result.changed, "the retry found the key and changed nothing"
    assert len(log.read_text().splitlines()) == 1, "the side effect happened exactly once"
