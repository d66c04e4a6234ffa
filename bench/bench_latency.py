"""Alert -> remediation start latency, settle window 0, on the real stack.

    .venv/bin/python bench/bench_latency.py [--incidents 20] [--embeddings sparse|auto]
                                            [--ack bus|temporal]

Starts a Temporal dev server (SQLite, WAL), OpenBao (bootstrapped like the dev stack), the
workers as `make dev` runs them (`python worker.py --role incident` and `--role memory`) and
the API (`python -m api`; its 202 waits for the alert bus, nats-server and the consumer
running beside it, as `make dev` does; `--ack temporal` for the other shape), with a copy
of the action catalog in which `restart_service` is autonomous, and a copy of the policies whose maintenance
windows let restarts through at any hour, so the Rego policy allows it without a human (a
P3 alert, no track record) whenever the benchmark runs. Then, one incident at a time, it
POSTs an Alertmanager alert and reads from the histories when the remediation started:

- decided: the 202 of the webhook -> the policy's verdict (the incident enters remediating);
- remediation start: the 202 -> the `run_playbook` activity starting in the child workflow;
- effect: the 202 -> the playbook's restart recorded on the demo target.

Prints p50/p95 and one JSON line. Numbers, not pass/fail. The helpers here (the stack)
are shared by bench_remediation.py and bench_worker_rss.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import hvac
import yaml
from bench_common import free_port, percentile, report
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devstack.processes import find_nats  # noqa: E402
from integrations.vault import bootstrap_vault  # noqa: E402
from models.constants import SEARCH_ATTRIBUTES  # noqa: E402
from policies.catalog import load_catalog  # noqa: E402

BIN = Path(sys.executable).parent
SQLITE_PRAGMAS = ["--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"]


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


@dataclass
class Stack:
    """Temporal, OpenBao, the two workers and the API as real processes, in a scratch directory."""

    workdir: Path
    worker_env: dict[str, str] = field(default_factory=dict)
    memory_env: dict[str, str] = field(default_factory=dict)
    env: WorkflowEnvironment | None = None
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    api_url: str = ""
    api_token: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    task_queue: str = field(default_factory=lambda: f"bench-{secrets.token_hex(3)}")

    @property
    def client(self) -> Client:
        assert self.env is not None
        return self.env.client

    @property
    def targets(self) -> Path:
        return self.workdir / "targets"

    async def start(
        self,
        *,
        autonomous: bool = False,
        worker: bool = True,
        api: bool = True,
        ack: str = "bus",
        **settings: str,
    ) -> None:
        """`ack`: what the API's 202 waits for, as FIREBREAK_API_ACK; "bus" (what `make dev`
        runs) also starts nats-server and the consumer."""
        self.env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=str(BIN / "temporal"),
            data_converter=pydantic_data_converter,
            search_attributes=SEARCH_ATTRIBUTES,
            dev_server_database_filename=str(self.workdir / "temporal.sqlite"),
            dev_server_extra_args=SQLITE_PRAGMAS,
        )
        playbooks = ROOT / "playbooks"
        if autonomous:
            playbooks = self.workdir / "playbooks"
            shutil.copytree(ROOT / "playbooks", playbooks)
            catalog = playbooks / "catalog.yaml"
            text = catalog.read_text()
            start = text.index("  restart_service:")
            text = text[:start] + text[start:].replace("autonomy: approve", "autonomy: autonomous", 1)
            catalog.write_text(text)
            # Restarts outside a maintenance window need approval below P1; the latency
            # measured must not depend on the hour the benchmark runs at.
            policies = self.workdir / "policies"
            shutil.copytree(ROOT / "policies", policies, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
            data = yaml.safe_load((policies / "data.yaml").read_text())
            data["firebreak"]["maintenance"]["outside_window"]["restart_service"] = dict.fromkeys(
                ("P1", "P2", "P3", "P4"), "allow"
            )
            (policies / "data.yaml").write_text(yaml.safe_dump(data))
            settings = {"FIREBREAK_POLICIES_DIR": str(policies), **settings}
        vault_addr, vault_token = self._start_vault(playbooks)
        common = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("FIREBREAK_", "ANTHROPIC_"))},
            "TEMPORAL_ADDRESS": self.client.service_client.config.target_host,
            "FIREBREAK_TASK_QUEUE": self.task_queue,
            "FIREBREAK_DATA_DIR": str(self.workdir / "data"),
            "FIREBREAK_TARGET_STATE_DIR": str(self.targets),
            "FIREBREAK_PLAYBOOKS_DIR": str(playbooks),
            "FIREBREAK_METRICS_ENABLED": "false",
            "FIREBREAK_SETTLE_SECONDS": "0",
            "FIREBREAK_VERIFY_WINDOW_SECONDS": "600",
            "FIREBREAK_APPROVAL_TIMEOUT_SECONDS": "86400",
            **settings,
        }
        self.memory_env = common
        self.worker_env = {**common, "FIREBREAK_VAULT_ADDR": vault_addr, "FIREBREAK_VAULT_TOKEN": vault_token}
        if worker:
            self.start_worker()
        if api:
            api_env = {**common, "FIREBREAK_API_ACK": ack}
            if ack == "bus":
                api_env["FIREBREAK_BUS_URL"] = await self._start_bus(common)
            port = free_port()
            self.api_url = f"http://127.0.0.1:{port}"
            self._spawn(
                "api",
                [sys.executable, "-m", "api"],
                {**api_env, "FIREBREAK_API_TOKEN": self.api_token, "FIREBREAK_API_PORT": str(port)},
            )
            await self._wait(lambda: _http_ok(f"{self.api_url}/healthz"), "api")

    async def _start_bus(self, common: dict[str, str]) -> str:
        """nats-server (JetStream, loopback) and `python -m consumer`, as the dev stack runs them."""
        nats_server = find_nats()
        if nats_server is None:
            raise RuntimeError(
                "nats-server is not installed (scripts/install-system-deps.sh); or use --ack temporal"
            )
        port = free_port()
        argv = [
            nats_server,
            "-js",
            "-a",
            "127.0.0.1",
            "-p",
            str(port),
            "-sd",
            str(self.workdir / "jetstream"),
        ]
        self._spawn("nats", argv, dict(os.environ))
        nats_log = self.workdir / "nats.log"
        await self._wait(lambda: b"Server is ready" in nats_log.read_bytes(), "nats")
        url = f"nats://127.0.0.1:{port}"
        self._spawn("consumer", [sys.executable, "-m", "consumer"], {**common, "FIREBREAK_BUS_URL": url})
        consumer_log = self.workdir / "consumer.log"
        await self._wait(lambda: b"firebreak.consumer: consuming " in consumer_log.read_bytes(), "consumer")
        return url

    def start_worker(self, incident_wrapper: Sequence[str] = ()) -> None:
        """The memory worker (`memory-worker`) and the incident worker (`worker`), as `make dev`.

        `incident_wrapper`: interpreter options and a script that runs worker.py (a probe)."""
        worker_py = str(ROOT / "worker.py")
        self._spawn("memory-worker", [sys.executable, worker_py, "--role", "memory"], self.memory_env)
        incident = [sys.executable, *incident_wrapper, worker_py, "--role", "incident"]
        self._spawn("worker", incident, self.worker_env)

    async def worker_ready(self) -> None:
        for name in ("memory-worker", "worker"):
            log = self.workdir / f"{name}.log"
            await self._wait(lambda log=log: b"worker polling" in log.read_bytes(), name)

    def ingest_knowledge(self) -> None:
        """`firebreak kb ingest` into the workers' store, as `make dev` does before they start."""
        with (self.workdir / "kb-ingest.log").open("ab") as log:
            subprocess.run(
                [sys.executable, "-c", "from cli.main import main; main()", "kb", "ingest"],
                cwd=ROOT,
                env=self.memory_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=True,
            )

    def _start_vault(self, playbooks: Path) -> tuple[str, str]:
        port = free_port()
        root = "root-" + secrets.token_hex(12)
        addr = f"http://127.0.0.1:{port}"
        argv = [
            str(BIN / "bao"), "server", "-dev",
            f"-dev-root-token-id={root}", f"-dev-listen-address=127.0.0.1:{port}",
        ]  # fmt: skip
        self._spawn("openbao", argv, {**os.environ, "BAO_DEV_ROOT_TOKEN_ID": "", "HOME": str(self.workdir)})
        client = hvac.Client(url=addr, token=root)
        deadline = time.monotonic() + 30
        while True:
            try:
                if client.sys.is_initialized() and not client.sys.is_sealed():
                    break
            except Exception:  # not listening yet
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.1)
        token = bootstrap_vault(client, load_catalog(playbooks))
        return addr, token.get_secret_value()

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        with (self.workdir / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                argv, cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT
            )

    async def _wait(self, ready: Any, name: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if ready():
                    return
            except OSError:
                pass
            process = self.processes[name]
            if process.poll() is not None or time.monotonic() > deadline:
                log = (self.workdir / f"{name}.log").read_text()[-3000:]
                raise RuntimeError(f"{name} did not come up:\n{log}")
            await asyncio.sleep(0.1)

    async def post(self, http: httpx.AsyncClient, payload: dict[str, Any]) -> httpx.Response:
        response = await http.post(
            f"{self.api_url}/alerts/alertmanager",
            json=payload,
            headers={"Authorization": f"Bearer {self.api_token}"},
        )
        response.raise_for_status()
        return response

    async def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.env is not None:
            await self.env.shutdown()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def alertmanager_payload(service: str, alertname: str = "KubePodCrashLooping") -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{alertname}"}}',
        "status": "firing",
        "receiver": "firebreak",
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": alertname,
                    "service": service,
                    "severity": "warning",
                    "namespace": "bench",
                },
                "annotations": {"summary": f"{service} is restarting repeatedly"},
                "startsAt": datetime.now().astimezone().isoformat(),
                "fingerprint": f"{alertname}-{service}",
            }
        ],
    }


async def event_times(client: Client, workflow_id: str) -> dict[str, datetime]:
    """When the incident decided, and when its remediation child started `run_playbook`."""
    times: dict[str, datetime] = {}
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    child = None
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            times["decided"] = event.event_time.ToDatetime().astimezone()
        elif event.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
            child = event.child_workflow_execution_started_event_attributes.workflow_execution.workflow_id
    if child is not None:
        child_history = await client.get_workflow_handle(child).fetch_history()
        scheduled: dict[int, str] = {}
        for event in child_history.events:
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                attrs = event.activity_task_scheduled_event_attributes
                scheduled[event.event_id] = attrs.activity_type.name
                if attrs.activity_type.name == "run_playbook":
                    times["playbook_scheduled"] = event.event_time.ToDatetime().astimezone()
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                attrs_started = event.activity_task_started_event_attributes
                if scheduled.get(attrs_started.scheduled_event_id) == "run_playbook":
                    times["playbook_started"] = event.event_time.ToDatetime().astimezone()
    return times


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--incidents", type=int, default=20)
    parser.add_argument("--embeddings", default="sparse", choices=["sparse", "auto", "dense"])
    parser.add_argument(
        "--ack", default="bus", choices=["bus", "temporal"], help="FIREBREAK_API_ACK (make dev: bus)"
    )
    args = parser.parse_args()

    stack = Stack(Path(tempfile.mkdtemp(prefix="firebreak-latency-")))
    load_before = os.getloadavg()[0]
    try:
        await stack.start(autonomous=True, ack=args.ack, FIREBREAK_EMBEDDINGS=args.embeddings)
        await stack.worker_ready()
        decided: list[float] = []
        started: list[float] = []
        effect: list[float] = []
        run = secrets.token_hex(3)
        async with httpx.AsyncClient(timeout=30) as http:
            for n in range(args.incidents + 1):  # the first one warms caches; not counted
                service = f"lat-{run}-{n}"
                t0 = time.time()
                response = await stack.post(http, alertmanager_payload(service))
                acked = time.time()
                (incident_id,) = response.json()["incidents"]
                restarts = stack.targets / service / "restarts.log"
                deadline = time.monotonic() + 120
                while not (restarts.exists() and restarts.read_text().strip()):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{incident_id}: no remediation; see {stack.workdir}/worker.log")
                    await asyncio.sleep(0.005)
                done = time.time()
                # The activity's started event is written when it completes.
                while "playbook_started" not in (times := await event_times(stack.client, incident_id)):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{incident_id}: run_playbook never completed")
                    await asyncio.sleep(0.05)
                if n == 0:
                    continue
                decided.append(times["decided"].timestamp() - acked)
                started.append(times["playbook_started"].timestamp() - acked)
                effect.append(done - t0)
        result = {
            "incidents": args.incidents,
            "embeddings": args.embeddings,
            "api_ack": args.ack,
            "decided_p50_ms": round(statistics.median(decided) * 1000),
            "decided_p95_ms": round(percentile(decided, 0.95) * 1000),
            "remediation_start_p50_ms": round(statistics.median(started) * 1000),
            "remediation_start_p95_ms": round(percentile(started, 0.95) * 1000),
            "effect_p50_ms": round(statistics.median(effect) * 1000),
            "effect_p95_ms": round(percentile(effect, 0.95) * 1000),
            "load_average_1m_before": round(load_before, 2),
            "load_average_1m_after": round(os.getloadavg()[0], 2),
        }
    finally:
        await stack.stop()
    report(result)


if __name__ == "__main__":
    asyncio.run(main())
