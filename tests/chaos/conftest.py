"""Chaos fixtures: worker processes that tests SIGKILL for real, and cleanup that finds them all.

Every process a chaos test starts carries a marker in its environment (`FIREBREAK_CHAOS_RUN`),
inherited by whatever it starts in turn (ansible-playbook, its modules), so cleanup finds
orphans of a killed worker too and the test can assert that nothing is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO, Any, Protocol

import httpx
import pytest
from temporalio.client import Client, WorkflowHandle

from api.app import create_app
from models.constants import QUERY_STATE
from models.incident import IncidentResult, IncidentState
from runtime.settings import PROJECT_ROOT, Settings
from tests.conftest import VaultServer

MARKER = "FIREBREAK_CHAOS_RUN"
READY_LINE = b"worker polling task queue"
# Variables of the outer environment that would change what a worker does.
_DROP = ("ANTHROPIC_API_KEY", "FIREBREAK_ANTHROPIC_API_KEY", "FIREBREAK_CODEC_KEYS", "TEMPORAL_PROFILE")


def marked_pids(marker: str) -> list[int]:
    """Every live process whose environment carries this run's marker."""
    needle = f"{MARKER}={marker}".encode()
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in environ.split(b"\0") and state != "Z":
            found.append(int(entry.name))
    return found


def kill_marked(marker: str, timeout: float = 10.0) -> list[int]:
    """SIGKILL every marked process until none is left; return the pids that were found."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while pids := marked_pids(marker):
        seen.extend(p for p in pids if p not in seen)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes survived SIGKILL: {pids}")
        time.sleep(0.05)
    return seen


def worker_env(
    client: Client, settings: Settings, vault: VaultServer, marker: str, **extra: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DROP}
    return {
        **env,
        MARKER: marker,
        "TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "FIREBREAK_TASK_QUEUE": settings.task_queue,
        "FIREBREAK_VAULT_ADDR": settings.vault_addr,
        "FIREBREAK_VAULT_TOKEN": vault.worker_token.get_secret_value(),
        "FIREBREAK_TARGET_STATE_DIR": str(settings.resolved_target_state_dir()),
        "FIREBREAK_DATA_DIR": str(settings.data_dir),
        "FIREBREAK_POLICIES_DIR": str(settings.policies_dir),
        "FIREBREAK_APPROVAL_AUTH": settings.approval_auth,
        "FIREBREAK_LLM_ENABLED": "false",
        "FIREBREAK_METRICS_ENABLED": "false",  # two workers on one box would share its port
        "FIREBREAK_EMBEDDINGS": "sparse",  # BM25 memory: no model to load at every restart
        **extra,
    }


@dataclass
class WorkerProcess:
    pid: int
    log: Path
    cold: bool  # a fresh `python worker.py`, not a fork of the preloaded parent
    popen: subprocess.Popen[bytes] | None = None
    spawned_at: float = field(default_factory=time.monotonic)
    ready_after: float | None = None  # seconds from spawn until it polled (as first seen)

    def ready(self) -> bool:
        if self.ready_after is None and self.log.exists() and READY_LINE in self.log.read_bytes():
            self.ready_after = time.monotonic() - self.spawned_at
        return self.ready_after is not None

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        try:
            state = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        return state != "Z"


@dataclass
class WorkerPool:
    """Workers on one task queue: fresh `python worker.py` processes, or forks of a preloaded one."""

    env: dict[str, str]
    logs: Path
    marker: str
    workers: list[WorkerProcess] = field(default_factory=list)
    startups: list[tuple[bool, float]] = field(default_factory=list)  # (cold, seconds to poll)
    spawned: int = 0
    kills: int = 0
    _server: subprocess.Popen[bytes] | None = None
    _server_log: IO[bytes] | None = None

    def _forkserver(self) -> subprocess.Popen[bytes]:
        if self._server is None:
            self._server_log = (self.logs / "forkserver.log").open("ab")
            self._server = subprocess.Popen(
                [sys.executable, str(PROJECT_ROOT / "tests" / "chaos" / "forkserver.py")],
                cwd=self.logs,
                env=self.env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._server_log,
            )
        return self._server

    def spawn(self, cold: bool = False) -> WorkerProcess:
        self.spawned += 1
        log = self.logs / f"worker-{self.spawned:03d}.log"
        if cold:
            with log.open("ab") as out:
                popen = subprocess.Popen(
                    [sys.executable, str(PROJECT_ROOT / "worker.py")],
                    cwd=self.logs,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            process = WorkerProcess(pid=popen.pid, log=log, cold=True, popen=popen)
        else:
            server = self._forkserver()
            assert server.stdin is not None and server.stdout is not None
            server.stdin.write(f"spawn {log}\n".encode())
            server.stdin.flush()
            answer = server.stdout.readline().decode().strip()
            if not answer.isdigit():
                raise RuntimeError(f"fork server answered {answer!r}; see {self.logs / 'forkserver.log'}")
            process = WorkerProcess(pid=int(answer), log=log, cold=False)
        self.workers.append(process)
        return process

    def running(self) -> list[WorkerProcess]:
        return [w for w in self.workers if w.alive()]

    def sigkill(self, process: WorkerProcess) -> None:
        os.kill(process.pid, signal.SIGKILL)
        self.kills += 1
        if process.ready_after is not None:
            self.startups.append((process.cold, process.ready_after))
        if process.popen is not None:
            process.popen.wait(timeout=10)
        self.workers.remove(process)

    async def wait_ready(self, process: WorkerProcess, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while not process.ready():
            if not process.alive():
                pytest.fail(f"worker {process.pid} died while starting:\n{process.log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"worker {process.pid} not polling after {timeout}s")
            await asyncio.sleep(0.05)

    def close(self) -> list[int]:
        """Stop the workers and the fork server; return processes that had to be hunted down."""
        for process in list(self.workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while any(w.alive() for w in self.workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        for process in self.workers:
            if process.popen is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.popen.wait(timeout=1)
        if self._server is not None:
            assert self._server.stdin is not None and self._server.stdout is not None
            with contextlib.suppress(BrokenPipeError):
                self._server.stdin.write(b"exit\n")
                self._server.stdin.close()
            try:
                self._server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._server.kill()
                self._server.wait()
            self._server.stdout.close()
            self._server = None
        if self._server_log is not None:
            self._server_log.close()
            self._server_log = None
        leftovers = kill_marked(self.marker)
        for process in self.workers:
            if process.popen is not None and process.popen.poll() is None:
                process.popen.wait()
        return leftovers


@pytest.fixture
def chaos_marker() -> str:
    return secrets.token_hex(8)


class PoolFactory(Protocol):
    def __call__(self, settings_: Settings | None = None, **extra_env: str) -> WorkerPool: ...


@pytest.fixture
def make_pool(
    client: Client, settings: Settings, vault: VaultServer, tmp_path: Path, chaos_marker: str
) -> Iterator[PoolFactory]:
    pools: list[WorkerPool] = []

    def factory(settings_: Settings | None = None, **extra_env: str) -> WorkerPool:
        logs = tmp_path / f"workers-{len(pools)}"
        logs.mkdir()
        env = worker_env(client, settings_ or settings, vault, chaos_marker, **extra_env)
        pool = WorkerPool(env=env, logs=logs, marker=chaos_marker)
        pools.append(pool)
        return pool

    yield factory
    for pool in pools:
        pool.close()
    kill_marked(chaos_marker)


@dataclass
class Api:
    """The real ASGI app in process; the sender retries on 429/503 as Alertmanager does."""

    http: httpx.AsyncClient
    headers: dict[str, str]
    statuses: dict[int, int] = field(default_factory=dict)
    slowest_refusal: float = 0.0  # seconds until a non-2xx answer arrived, at worst

    async def post(self, path: str, payload: Any) -> httpx.Response:
        started = time.monotonic()
        response = await self.http.post(path, json=payload, headers=self.headers)
        self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
        if response.status_code >= 300:
            self.slowest_refusal = max(self.slowest_refusal, time.monotonic() - started)
        return response

    async def post_until_accepted(self, path: str, payload: Any, timeout: float = 120.0) -> httpx.Response:
        deadline = time.monotonic() + timeout
        while True:
            response = await self.post(path, payload)
            if response.status_code == 202:
                return response
            assert response.status_code in (429, 503), response.text
            if time.monotonic() > deadline:
                pytest.fail(f"{path} never accepted within {timeout}s: {response.text}")
            await asyncio.sleep(min(0.5, float(response.headers.get("retry-after", "1"))))


@contextlib.asynccontextmanager
async def api_for(settings: Settings, factory: Callable[[], Awaitable[Client]]) -> AsyncIterator[Api]:
    app = create_app(settings, factory)
    assert settings.api_token is not None
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api", timeout=30
    ) as http:
        yield Api(http=http, headers={"Authorization": f"Bearer {settings.api_token.get_secret_value()}"})


def incident(client: Client, incident_id: str) -> WorkflowHandle[Any, IncidentResult]:
    return client.get_workflow_handle(incident_id, result_type=IncidentResult)


async def query_state(client: Client, incident_id: str) -> IncidentState:
    state: IncidentState = await incident(client, incident_id).query(
        QUERY_STATE, result_type=IncidentState, rpc_timeout=timedelta(seconds=5)
    )
    return state


def restarts(settings: Settings, service: str) -> list[str]:
    log = settings.resolved_target_state_dir() / service / "restarts.log"
    return log.read_text().splitlines() if log.exists() else []
