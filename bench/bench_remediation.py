"""Remediation overhead: Firebreak's run of a playbook vs bare `ansible-playbook` of it.

    .venv/bin/python bench/bench_remediation.py [--runs 8]

Firebreak: a RemediationWorkflow started with the client and awaited: the per-target lock
workflow, a Vault token minted for the action and revoked after, ansible-runner with
heartbeats, the result back in the workflow (a real `python worker.py`, OpenBao, Temporal).
Bare: `ansible-playbook -i <inventory> restart_service.yml`, the inventory one local host in
the group `firebreak_targets` (as Firebreak's own local runs), the same extra vars and a token minted
beforehand (outside the timing). Runs alternate, so drift in machine load hits both alike.
Ratio = median Firebreak / median bare. Numbers, not pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_common import report
from bench_latency import BIN, ROOT, Stack
from pydantic import SecretStr

sys.path.insert(0, str(ROOT))

from integrations.ansible import write_local_inventory
from integrations.vault import ActionCredentials, action_secret_api_path
from models.agents import ProposedAction
from models.incident import RemediationInput
from policies.catalog import load_catalog
from policies.seals import configured_key
from tests.admitted import admit, parent_worker, start_admitted


async def firebreak_run(stack: Stack, parents: str, service: str) -> float:
    """One admitted RemediationWorkflow, as the incident's gate starts it (tests/admitted.py):
    the admission check, lock, Vault token, ansible-runner and revocation are all measured."""
    key = secrets.token_hex(16)
    spec = RemediationInput(
        incident_id=f"incident-{service}",
        action=ProposedAction(action="restart_service", params={"service": service}, target=service),
        idempotency_key=key,
        severity_rank=3,
    )
    admission_key = configured_key(None, Path(stack.worker_env["FIREBREAK_DATA_DIR"]), "admission")
    started = time.perf_counter()
    handle = await start_admitted(stack.client, parents, admit(spec, admission_key), stack.task_queue)
    result = await handle.result()
    elapsed = time.perf_counter() - started
    if result.status != "successful" or not result.changed:
        raise RuntimeError(f"remediation did not apply: {result}")
    return elapsed


def bare_run(stack: Stack, credentials: ActionCredentials, service: str) -> float:
    spec = load_catalog(ROOT / "playbooks").actions["restart_service"]
    key = secrets.token_hex(16)
    credential = credentials.issue(spec, f"incident-{service}", key)
    extravars = {
        "service": service,
        "incident_id": f"incident-{service}",
        "idempotency_key": key,
        "firebreak_execution": "attempt 1 run bare",
        "target_state_dir": str(stack.targets),
        "vault_addr": stack.worker_env["FIREBREAK_VAULT_ADDR"],
        "vault_secret_path": action_secret_api_path("restart_service"),
        "ansible_python_interpreter": sys.executable,
    }
    env = {
        **os.environ,
        "VAULT_TOKEN": credential.token.get_secret_value(),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
    }
    # The playbooks run on the group `firebreak_targets`, as Firebreak's own runs do: one
    # local host in it (without it Ansible matches no host and does nothing).
    inventory = write_local_inventory(Path(tempfile.mkdtemp(dir=stack.workdir)), {service: {}})
    started = time.perf_counter()
    subprocess.run(
        [
            str(BIN / "ansible-playbook"),
            "-i",
            str(inventory),
            str(ROOT / "playbooks" / spec.playbook),
            "-e",
            json.dumps(extravars),
        ],
        cwd=stack.workdir,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    elapsed = time.perf_counter() - started
    credentials.revoke(credential)
    lines = (stack.targets / service / "restarts.log").read_text().splitlines()
    if len(lines) != 1:
        raise RuntimeError(f"bare run did not apply once: {lines}")
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=8)
    args = parser.parse_args()
    stack = Stack(Path(tempfile.mkdtemp(prefix="firebreak-remediation-")))
    load_before = os.getloadavg()[0]
    try:
        await stack.start(api=False, FIREBREAK_EMBEDDINGS="sparse")
        await stack.worker_ready()
        credentials = ActionCredentials(
            stack.worker_env["FIREBREAK_VAULT_ADDR"], SecretStr(stack.worker_env["FIREBREAK_VAULT_TOKEN"])
        )
        run = secrets.token_hex(3)
        firebreak: list[float] = []
        bare: list[float] = []
        async with parent_worker(stack.client) as parents:
            await firebreak_run(stack, parents, f"warm-{run}")  # loads ansible's caches for both
            for n in range(args.runs):
                firebreak.append(await firebreak_run(stack, parents, f"fb-{run}-{n}"))
                bare.append(await asyncio.to_thread(bare_run, stack, credentials, f"bare-{run}-{n}"))
    finally:
        await stack.stop()
    result = {
        "runs": args.runs,
        "firebreak_p50_s": round(statistics.median(firebreak), 2),
        "firebreak_min_s": round(min(firebreak), 2),
        "bare_ansible_p50_s": round(statistics.median(bare), 2),
        "bare_ansible_min_s": round(min(bare), 2),
        "ratio_p50": round(statistics.median(firebreak) / statistics.median(bare), 2),
        "overhead_p50_s": round(statistics.median(firebreak) - statistics.median(bare), 2),
        "load_average_1m_before": round(load_before, 2),
        "load_average_1m_after": round(os.getloadavg()[0], 2),
    }
    report(result)


if __name__ == "__main__":
    asyncio.run(main())
