"""The embedded dev stack, run for real: `python -m devstack` as a subprocess.

One scenario, in order, on a temporary data dir and free loopback ports: it comes up and
the API reaches Temporal; a second stack on the same data dir refuses to start; an alert
becomes a workflow; SIGINT stops every child; a restart still has that workflow (SQLite
persistence); and when a child dies, the stack says which and stops the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowExecutionStatus
from temporalio.service import RPCError

from devstack.demo import demo_payload
from models.constants import INCIDENT_WORKFLOW
from runtime.settings import PROJECT_ROOT, Settings
from runtime.temporal import connect

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

START_TIMEOUT = 60.0
STOP_TIMEOUT = 45.0


def free_ports(count: int) -> list[int]:
    """Distinct free ports on 127.0.0.1, below the kernel's ephemeral range.

    The restart below binds the same ports a minute after the first start. A port the kernel
    handed out (bind to 0) can meanwhile become the source port of some other test's outbound
    connection, and the restarted worker then fails with "Address already in use" (seen in
    CI with three xdist workers). Ports below the ephemeral range are never handed out so.
    """
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    candidates = random.Random().sample(range(20000, min(low, 32768)), 200)
    socks: list[socket.socket] = []
    try:
        for port in candidates:
            sock = socket.socket()
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                sock.close()
                continue
            socks.append(sock)  # held open until all are chosen, so none repeats
            if len(socks) == count:
                return [int(s.getsockname()[1]) for s in socks]
        raise RuntimeError(f"fewer than {count} free ports in 20000-{low}")
    finally:
        for sock in socks:
            sock.close()


def proc_stat(pid: int) -> tuple[int, int] | None:
    """(ppid, pgrp) of a live, non-zombie process, or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return int(fields[1]), int(fields[2])


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def children_of(parent: int) -> dict[int, str]:
    found = {}
    for pid in all_pids():
        stat = proc_stat(pid)
        if stat is not None and stat[0] == parent:
            found[pid] = cmdline(pid)
    return found


def alive_in_groups(groups: set[int]) -> list[str]:
    left = []
    for pid in all_pids():
        stat = proc_stat(pid)
        if stat is not None and stat[1] in groups:
            left.append(f"{pid}: {cmdline(pid)}")
    return left


@dataclass
class Stack:
    """A running `python -m devstack`, its stdout collected line by line."""

    process: subprocess.Popen[str]
    stderr_path: Path
    data_dir: Path
    lines: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None

    @classmethod
    def start(cls, env: dict[str, str], cwd: Path, data_dir: Path) -> Stack:
        stderr_path = cwd / f"devstack-{time.monotonic_ns()}.err"
        with stderr_path.open("w") as err:
            process = subprocess.Popen(
                [sys.executable, "-m", "devstack"],
                stdout=subprocess.PIPE,
                stderr=err,
                stdin=subprocess.DEVNULL,
                text=True,
                env=env,
                cwd=cwd,
            )
        stack = cls(process=process, stderr_path=stderr_path, data_dir=data_dir)
        stack._reader = threading.Thread(target=stack._read, daemon=True)
        stack._reader.start()
        return stack

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def diagnostics(self) -> str:
        logs = ""
        for log in sorted((self.data_dir / "logs").glob("*.log")):
            logs += f"\n--- {log.name} (tail) ---\n" + "\n".join(
                log.read_text(errors="replace").splitlines()[-15:]
            )
        return (
            f"--- stdout ---\n{self.output}\n--- stderr ---\n"
            f"{self.stderr_path.read_text(errors='replace')}{logs}"
        )

    def wait_for_line(self, pattern: str, timeout: float = START_TIMEOUT) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if match := regex.search(line):
                    return match
            if self.process.poll() is not None:
                time.sleep(0.2)  # let the reader drain
                pytest.fail(
                    f"dev stack exited ({self.process.returncode}) before {pattern!r}:\n" + self.diagnostics()
                )
            time.sleep(0.1)
        pytest.fail(f"no {pattern!r} within {timeout}s:\n" + self.diagnostics())

    def stop(self) -> int:
        """Ctrl-C, as in a terminal; then wait for the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.wait()

    def wait(self) -> int:
        try:
            code = self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.close()
            pytest.fail(f"dev stack did not stop within {STOP_TIMEOUT}s:\n" + self.diagnostics())
        self.close()
        return code

    def close(self) -> None:
        """Drain and close stdout once the process has exited."""
        if self._reader is not None:
            self._reader.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()


async def described_soon(
    client: Client, workflow_id: str, stack: Stack, tries: int = 100
) -> WorkflowExecutionDescription:
    """The workflow's description once it exists: a bus-acked alert reaches Temporal a moment later."""
    handle = client.get_workflow_handle(workflow_id)
    for _ in range(tries):
        try:
            return await handle.describe(rpc_timeout=timedelta(seconds=5))
        except RPCError:
            await asyncio.sleep(0.2)
    raise AssertionError(f"{workflow_id} never started:\n" + stack.diagnostics())


@pytest.fixture
def stacks() -> Iterator[list[tuple[Stack, set[int]]]]:
    """Every stack a test starts, with its children's process groups, cleaned up after."""
    started: list[tuple[Stack, set[int]]] = []
    yield started
    for stack, groups in started:
        if stack.process.poll() is None:
            stack.process.send_signal(signal.SIGINT)
            try:
                stack.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                stack.process.kill()
                stack.process.wait()
        stack.close()
        for pgid in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)


async def test_dev_stack_lifecycle(tmp_path: Path, stacks: list[tuple[Stack, set[int]]]) -> None:
    ports = free_ports(9)
    temporal_port, ui_port, vault_port, api_port, codec_port, metrics_port, memory_metrics = ports[:7]
    bus_port, bus_metrics = ports[7:]
    data_dir = tmp_path / "data"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FIREBREAK_", "TEMPORAL_")) and k not in {"VAULT_TOKEN", "BAO_TOKEN"}
    }
    env.update(
        TEMPORAL_ADDRESS=f"127.0.0.1:{temporal_port}",
        FIREBREAK_TEMPORAL_UI_PORT=str(ui_port),
        FIREBREAK_VAULT_ADDR=f"http://127.0.0.1:{vault_port}",
        FIREBREAK_API_PORT=str(api_port),
        FIREBREAK_DATA_DIR=str(data_dir),
        FIREBREAK_CODEC_SERVER_PORT=str(codec_port),
        FIREBREAK_WORKER_METRICS_PORT=str(metrics_port),
        FIREBREAK_MEMORY_WORKER_METRICS_PORT=str(memory_metrics),
        FIREBREAK_EMBEDDINGS="sparse",
        FIREBREAK_DEV_BUS_PORT=str(bus_port),
        FIREBREAK_BUS_METRICS_PORT=str(bus_metrics),
    )
    api = f"http://127.0.0.1:{api_port}"

    # --- it starts, and says how to use it -----------------------------------------------------
    first = Stack.start(env, tmp_path, data_dir)
    stacks.append((first, set()))
    await asyncio.to_thread(first.wait_for_line, r"Ctrl-C to stop")
    token = first.wait_for_line(r"API token\s+(\S+)").group(1)
    for expected in (
        f"127.0.0.1:{temporal_port}",
        f"http://127.0.0.1:{ui_port}",
        f"http://127.0.0.1:{vault_port}",
        api,
        str(data_dir / "logs"),
        "memory on firebreak-incidents-memory (memory-worker.log",
        f"nats://127.0.0.1:{bus_port}   (this stack's nats-server",
        "curl",
    ):
        assert expected in first.output, expected
    # The knowledge base went in through `firebreak kb ingest` in a child process of its own,
    # which has exited: the supervisor never holds an embedding model.
    ingest_log = (data_dir / "logs" / "kb-ingest.log").read_text()
    ingested = r"\b[1-9]\d* added, .* 0 skipped; .* in firebreak_knowledge \(sparse\)"
    assert re.search(ingested, ingest_log), ingest_log
    children = children_of(first.process.pid)
    stacks[0] = (first, set(children))
    commands = " | ".join(children.values())
    assert len(children) == 8, commands
    for needle in (
        f"nats-server -js -a 127.0.0.1 -p {bus_port} -sd {data_dir / 'jetstream'}",
        "-m consumer",
        "temporal server start-dev",
        "bao server -dev",
        "worker.py --role incident",
        "worker.py --role memory",
        "-m api",
        "-m runtime.codec_server",
        f"--ui-codec-endpoint http://127.0.0.1:{codec_port}",
    ):
        assert needle in commands, needle
    # The root token never reaches a command line, and dev mode's printout of it is blanked.
    assert "dev-root-token-id" not in commands
    assert "Root Token: [redacted]" in (data_dir / "logs" / "openbao.log").read_text()

    async with httpx.AsyncClient(base_url=api, timeout=10) as http:
        health = await http.get("/healthz")
        assert health.status_code == 200, health.text
        assert health.json() == {"status": "ok", "temporal": "reachable", "bus": "reachable"}

        # --- one stack per data dir ----------------------------------------------------------
        second = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "devstack"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode != 0
        assert f"a Firebreak dev stack is already running (pid {first.process.pid})" in second.stderr, (
            second.stderr
        )
        assert first.process.poll() is None

        # --- an alert becomes an incident workflow ---------------------------------------------
        accepted = await http.post(
            "/alerts/alertmanager",
            json=demo_payload("firing"),
            headers={"Authorization": f"Bearer {token}"},
        )
        assert accepted.status_code == 202, accepted.text
        (incident_id,) = accepted.json()["incidents"]

    # Acked once the stack's bus stored it (FIREBREAK_API_ACK=bus); the consumer delivers it.
    client = await connect(f"127.0.0.1:{temporal_port}")
    described = await described_soon(client, incident_id, first)
    assert described.workflow_type == INCIDENT_WORKFLOW
    assert described.status == WorkflowExecutionStatus.RUNNING

    # --- SIGINT stops everything -----------------------------------------------------------------
    assert await asyncio.to_thread(first.stop) == 0, first.diagnostics()
    assert "stopping the dev stack" in first.output
    left = alive_in_groups(set(children))
    assert not left, left
    assert (data_dir / "devstack.lock").read_text() == ""

    # --- a restart keeps the history (SQLite in the data dir) -----------------------------------
    again = Stack.start(env, tmp_path, data_dir)
    stacks.append((again, set()))
    await asyncio.to_thread(again.wait_for_line, r"Ctrl-C to stop")
    children = children_of(again.process.pid)
    stacks[1] = (again, set(children))
    client = await connect(f"127.0.0.1:{temporal_port}")
    listed = [wf.id async for wf in client.list_workflows(f'WorkflowId = "{incident_id}"')]
    assert listed == [incident_id]

    # --- a child that dies takes the stack down, with its name and log ---------------------------
    (worker_pid,) = [pid for pid, cmd in children.items() if "worker.py --role incident" in cmd]
    os.kill(worker_pid, signal.SIGKILL)
    code = await asyncio.to_thread(again.wait)
    assert code == 1, again.diagnostics()
    assert "worker was killed by signal 9 unexpectedly" in again.output, again.diagnostics()
    left = alive_in_groups(set(children))
    assert not left, left


def test_env_example_lists_every_setting() -> None:
    """`.env.example` documents each Settings field (and nothing that is not one)."""
    text = (PROJECT_ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^#? ?FIREBREAK_([A-Z0-9_]+)=", text, flags=re.MULTILINE))
    fields = {name.upper() for name in Settings.model_fields}
    assert fields - listed == set(), "add these to .env.example"
    assert listed - fields == set(), "not settings any more: remove from .env.example"
