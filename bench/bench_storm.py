"""Alert storms on the full stack as `make dev` runs it, side by side with Event-Driven Ansible.

    .venv/bin/python bench/bench_storm.py [--alerts 10000] [--incidents 50] [--senders 32]
                                          [--group 25] [--rate 1000] [--settle S] [--no-eda]
                                          [--storms per_alert,grouped,paced] [--related K]
    smoke (under a minute once the peer is installed):
        --alerts 100 --incidents 2 --settle 0 --storms grouped

One run, one box, one load generator (bench_common), three systems one after the other:
1. Event-Driven Ansible: ansible-rulebook (`--eda-version`, default 1.3.2) installed into a
   scratch virtualenv from PyPI (`python3 -m uv`), a rulebook with the built-in webhook source
   (`eda.builtin.webhook`, bearer token) and one rule whose action is `debug`. Not durable: an
   alert is "processed" when its fingerprint appears in the debug output.
2. The bare signal-with-start loop on the stack's Temporal, 32 in flight: the ceiling without
   batching (bench_ingest's), to a task queue no worker polls.
3. Firebreak: `python -m devstack` (what `make dev` runs: codec server, Temporal on SQLite,
   OpenBao, the knowledge ingest, the incident worker, the memory worker with dense
   retrieval, the API) as a subprocess with its own data dir and ports.

The same storms go to EDA and Firebreak: one alert per POST from `--senders` closed-loop
senders; Alertmanager-shaped groups (`--group` alerts of one service per POST), closed loop;
and the groups paced open-loop at `--rate` alerts/s. Senders retry 429/503 after
Retry-After (refusals are counted). After each Firebreak storm the benchmark waits until
every incident of that storm has reached its decision (phase awaiting_approval or later, or
closed; read from the FirebreakPhase search attribute), and then until every approval
request holds its check-mode preview (the preview follows the request; state query),
before the next storm starts, so
each storm's numbers include only its own incidents' work. Alerts lost: for Firebreak, alerts
sent minus distinct fingerprints in the incidents' histories (every run); for EDA, minus
distinct fingerprints in the debug output. RSS is each main process's peak; CPU is the
process tree's CPU seconds over the storm's wall time (100% = one core). Numbers, not pass/fail.

`--related K` gives the stack a topology (FIREBREAK_TOPOLOGY_FILE) in which each storm's
services come in groups of K, each depending on its group's first: correlation at settle
should then collapse a storm into one incident per group. The table's "standing" column
counts the incidents left after that (open, or closed other than `correlated`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_common import closed_loop, count_delivered, free_port, open_loop, raw_loop, storm_requests
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models.constants import INCIDENT_WORKFLOW_ID_PREFIX, QUERY_STATE, SA_PHASE  # noqa: E402
from models.incident import IncidentState, Phase  # noqa: E402

DECIDED = {Phase.AWAITING_APPROVAL, Phase.REMEDIATING, Phase.VERIFYING, Phase.CLOSED}
WARM_UP_ALERTS = 20
STACK_READY_LINE = "Firebreak dev stack is up."
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
RULEBOOK = """\
- name: storm
  hosts: all
  sources:
    - eda.builtin.webhook:
        host: 127.0.0.1
        port: {port}
        token: {token}
  rules:
    - name: every alert
      condition: event.payload is defined
      action:
        debug:
          msg: "{{{{ event.payload }}}}"
"""


# --- process accounting (/proc) -------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields from 3 (state) on


def tree(root: int) -> list[int]:
    """The root and its live descendants."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


def tree_cpu_seconds(root: int) -> float:
    """utime+stime of the live tree plus what its reaped children used (cutime+cstime)."""
    ticks = 0
    for pid in tree(root):
        if (fields := _stat(pid)) is not None:
            ticks += sum(int(x) for x in fields[11:15])
    return ticks / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    fields = _stat(pid)
    return int(fields[21]) * PAGE / 2**20 if fields is not None else 0.0


@dataclass
class Usage:
    """Peak RSS and CPU of named processes while a storm runs."""

    pids: dict[str, int]
    peak_mb: dict[str, float] = field(default_factory=dict)
    cpu_start: dict[str, float] = field(default_factory=dict)
    cpu_pct: dict[str, float] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None
    _t0: float = 0.0

    def __enter__(self) -> Usage:
        self.cpu_start = {name: tree_cpu_seconds(pid) for name, pid in self.pids.items()}
        self.peak_mb = {name: rss_mb(pid) for name, pid in self.pids.items()}
        self._t0 = time.perf_counter()
        self._task = asyncio.create_task(self._sample())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        wall = time.perf_counter() - self._t0
        for name, pid in self.pids.items():
            used = tree_cpu_seconds(pid) - self.cpu_start[name]
            self.cpu_pct[name] = 100 * used / wall
            self.peak_mb[name] = max(self.peak_mb[name], rss_mb(pid))

    async def _sample(self) -> None:
        while True:
            for name, pid in self.pids.items():
                self.peak_mb[name] = max(self.peak_mb[name], rss_mb(pid))
            await asyncio.sleep(0.25)


# --- storms ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Storm:
    name: str
    group: int
    rate: float | None  # None: closed loop
    run: str | None = None  # the storm's run id, when it must be known before (a topology names it)


async def send_storm(
    storm: Storm,
    base: str | Sequence[str],
    token: str,
    path: str,
    alerts: int,
    incidents: int,
    senders: int,
) -> tuple[str, dict[str, float], float]:
    """Send one storm (to the replicas in turn when `base` lists several); (its run id, the
    sender's numbers, when the last alert was acked)."""
    run = storm.run or secrets.token_hex(3)
    bodies = storm_requests(alerts, incidents, run, storm.group)
    if storm.rate is None:
        numbers = await closed_loop(base, token, bodies, alerts, senders, path)
    else:
        numbers = await open_loop(base, token, bodies, alerts, storm.rate, path)
    return run, numbers, time.perf_counter()


async def warm_up(base: str | Sequence[str], token: str, path: str) -> tuple[str, float]:
    """WARM_UP_ALERTS single-alert POSTs to one service, so no storm pays the first request's
    cost (class loading, JIT, connections); (their run id, when the last was acked)."""
    run = secrets.token_hex(3)
    await closed_loop(base, token, storm_requests(WARM_UP_ALERTS, 1, run, 1), WARM_UP_ALERTS, 4, path)
    return run, time.perf_counter()


def refusals(numbers: dict[str, float]) -> int:
    statuses: dict[int, int] = numbers["statuses"]  # type: ignore[assignment]
    return sum(n for status, n in statuses.items() if status in (429, 503))


def row(
    numbers: dict[str, float], usage: Usage, lost: int | None, decided_s: float | None
) -> dict[str, object]:
    return {
        "alerts_per_s": round(numbers["alerts_per_s"], 1),
        "ack_p50_ms": round(numbers["ack_p50_ms"], 1),
        "ack_p99_ms": round(numbers["ack_p99_ms"], 1),
        "refusals_429_503": refusals(numbers),
        "lost": lost,
        "decided_s_after_last_ack": None if decided_s is None else round(decided_s, 1),
        "rss_peak_mb": {k: round(v) for k, v in usage.peak_mb.items()},
        "cpu_pct": {k: round(v) for k, v in usage.cpu_pct.items()},
    }


async def wait_port(port: int, alive: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not alive():
            raise SystemExit(f"{what} exited before it listened")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        await asyncio.sleep(0.2)
    raise SystemExit(f"{what} did not listen on {port} within {within:g}s")


# --- the peer: Event-Driven Ansible ---------------------------------------------------------


def install_eda(eda_dir: Path, version: str) -> str:
    """ansible-rulebook in a scratch virtualenv (kept in `eda_dir` for the next run); its version."""
    python = eda_dir / "bin" / "python"
    # ansible-core is not a dependency of ansible-rulebook, but it runs ansible-galaxy at start.
    if not (eda_dir / "bin" / "ansible-galaxy").exists():
        uv = [sys.executable if _has_uv(sys.executable) else "python3", "-m", "uv"]
        subprocess.run([*uv, "venv", "-q", "--clear", str(eda_dir)], check=True)
        pinned = subprocess.run(
            [
                *uv,
                "pip",
                "install",
                "-q",
                "--python",
                str(python),
                f"ansible-rulebook=={version}",
                "ansible-core",
            ]
        )
        if pinned.returncode != 0:
            print(
                f"ansible-rulebook=={version} did not install; taking the newest that does", file=sys.stderr
            )
            subprocess.run(
                [*uv, "pip", "install", "-q", "--python", str(python), "ansible-rulebook", "ansible-core"],
                check=True,
            )
    out = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('ansible-rulebook'))"],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def _has_uv(python: str) -> bool:
    return subprocess.run([python, "-m", "uv", "--version"], capture_output=True).returncode == 0


def java_home() -> str:
    if home := os.environ.get("JAVA_HOME"):
        return home
    java = shutil.which("java")
    if java is None:
        raise SystemExit("java not found: ansible-rulebook's Drools engine needs a JDK 17 (JAVA_HOME)")
    return str(Path(java).resolve().parent.parent)


class DebugLog:
    """Fingerprints the rulebook's debug action printed, read as the file grows."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.seen = path, 0, set[str]()

    def refresh(self) -> None:
        with self.path.open("rb") as log:
            log.seek(self.offset)
            chunk = log.read()
        end = chunk.rfind(b"\n") + 1  # whole lines only
        self.offset += end
        self.seen.update(
            re.findall(r"'fingerprint': '([0-9a-f]+-\d+)'", chunk[:end].decode(errors="replace"))
        )

    def count(self, run: str) -> int:
        return sum(1 for fp in self.seen if fp.startswith(f"{run}-"))


async def eda_storms(
    args: argparse.Namespace, storms: list[Storm], workdir: Path
) -> tuple[str, dict[str, dict[str, object]]]:
    eda_dir = Path(args.eda_dir).expanduser()
    version = install_eda(eda_dir, args.eda_version)
    port, token = free_port(), secrets.token_urlsafe(16)
    (workdir / "rulebook.yml").write_text(RULEBOOK.format(port=port, token=token))
    (workdir / "inventory.yml").write_text(
        "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
    )
    env = {
        **os.environ,
        "JAVA_HOME": java_home(),
        "PATH": f"{eda_dir / 'bin'}{os.pathsep}{os.environ['PATH']}",  # it runs ansible-galaxy
        "ANSIBLE_LOCAL_TEMP": str(workdir / "ansible-tmp"),
    }
    out_path = workdir / "eda.out"
    process = subprocess.Popen(
        [str(eda_dir / "bin" / "ansible-rulebook"), "-r", "rulebook.yml", "-i", "inventory.yml"],
        cwd=workdir,
        env=env,
        stdout=out_path.open("wb"),
        stderr=(workdir / "eda.err").open("wb"),
        start_new_session=True,
    )
    rows: dict[str, dict[str, object]] = {}
    try:
        await wait_port(port, lambda: process.poll() is None, 120, "ansible-rulebook")
        log = DebugLog(out_path)
        run, _ = await warm_up(f"http://127.0.0.1:{port}", token, "/alerts")
        while log.count(run) < WARM_UP_ALERTS:
            log.refresh()
            await asyncio.sleep(0.1)
        for storm in storms:
            with Usage({"eda": process.pid}) as usage:
                run, numbers, last_ack = await send_storm(
                    storm,
                    f"http://127.0.0.1:{port}",
                    token,
                    "/alerts",
                    args.alerts,
                    args.incidents,
                    args.senders,
                )
            deadline = time.monotonic() + args.decision_timeout
            while True:
                log.refresh()
                if log.count(run) >= args.alerts or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
            done = time.perf_counter() - last_ack if log.count(run) >= args.alerts else None
            rows[storm.name] = row(numbers, usage, args.alerts - log.count(run), done)
            print(f"  EDA {storm.name}: {rows[storm.name]}", flush=True)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return version, rows


# --- Firebreak as `make dev` runs it --------------------------------------------------------


@dataclass
class Stack:
    process: subprocess.Popen[bytes]
    data_dir: Path
    temporal_address: str
    api_url: str
    token: str

    def child(self, needle: str) -> int:
        """The pid of the stack's child whose command line holds `needle`."""
        for pid in tree(self.process.pid):
            with contextlib.suppress(OSError):
                if needle in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode():
                    return pid
        raise SystemExit(f"no child of the dev stack runs {needle!r}")

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)  # the dev stack stops its children in order
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def related_topology(path: Path, storms: Sequence[Storm], incidents: int, related: int) -> Path:
    """Each storm's services in groups of `related`, each depending on its group's first."""
    services: dict[str, dict[str, object]] = {}
    for storm in storms:
        for n in range(incidents):
            hub = n - n % related
            name = f"storm-{storm.run}-{n}"
            services[name] = {"depends_on": [f"storm-{storm.run}-{hub}"]} if n != hub else {"kind": "service"}
    path.write_text(json.dumps({"services": services}))  # JSON is YAML
    return path


async def standing(client: Client, run: str, incidents: int) -> int:
    """Incidents of a storm left after correlation: open, or closed other than `correlated`."""
    from models.incident import IncidentResult, Outcome

    left = 0
    for n in range(incidents):
        workflow_id = f"{INCIDENT_WORKFLOW_ID_PREFIX}storm-{run}-{n}"
        handle = client.get_workflow_handle(workflow_id, result_type=IncidentResult)
        running = (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        if running or (await handle.result()).outcome != Outcome.CORRELATED:
            left += 1
    return left


async def start_stack(workdir: Path, settle: float | None, topology: Path | None = None) -> Stack:
    data_dir = workdir / "stack"
    temporal = f"127.0.0.1:{free_port()}"
    api_port, token = free_port(), secrets.token_urlsafe(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FIREBREAK_", "TEMPORAL_"))}
    env |= {
        "FIREBREAK_DATA_DIR": str(data_dir),
        "TEMPORAL_ADDRESS": temporal,
        "FIREBREAK_TEMPORAL_UI_PORT": str(free_port()),
        "FIREBREAK_VAULT_ADDR": f"http://127.0.0.1:{free_port()}",
        "FIREBREAK_API_PORT": str(api_port),
        "FIREBREAK_API_TOKEN": token,
        "FIREBREAK_CODEC_SERVER_PORT": str(free_port()),
        "FIREBREAK_WORKER_METRICS_PORT": str(free_port()),
        # The stack's own NATS and its consumer (the webhook acks once the bus stored a body).
        "FIREBREAK_DEV_BUS_PORT": str(free_port()),
        "FIREBREAK_BUS_METRICS_PORT": str(free_port()),
    }
    if settle is not None:
        env["FIREBREAK_SETTLE_SECONDS"] = str(settle)
    if topology is not None:
        env["FIREBREAK_TOPOLOGY_FILE"] = str(topology)
    out_path = workdir / "devstack.out"
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack"],
        cwd=ROOT,
        env=env,
        stdout=out_path.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    stack = Stack(process, data_dir, temporal, f"http://127.0.0.1:{api_port}", token)
    started = time.monotonic()
    while STACK_READY_LINE not in out_path.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() - started > 300:
            stack.stop()
            raise SystemExit("the dev stack did not start:\n" + out_path.read_text(errors="replace")[-3000:])
        await asyncio.sleep(0.5)
    print(f"  dev stack up in {time.monotonic() - started:.1f}s", flush=True)
    return stack


async def remaining(
    client: Client,
    run: str,
    incidents: int,
    done: set[int],
    reached: Callable[[WorkflowHandle[Any, Any]], Awaitable[bool]],
    concurrency: int,
) -> int:
    """Incidents of a storm that have not `reached` a point yet. `done` keeps those that have
    between calls (each point is final), so a poll of a big storm asks only about the rest."""
    sem = asyncio.Semaphore(concurrency)

    async def check(n: int) -> None:
        async with sem:
            handle = client.get_workflow_handle(f"{INCIDENT_WORKFLOW_ID_PREFIX}storm-{run}-{n}")
            try:
                if await reached(handle):
                    done.add(n)
            except RPCError:
                pass  # not started yet, or busy: asked again next round

    await asyncio.gather(*(check(n) for n in range(incidents) if n not in done))
    return incidents - len(done)


async def undecided(client: Client, run: str, incidents: int, done: set[int] | None = None) -> int:
    """Incidents of a storm not yet at their decision, from the FirebreakPhase search attribute."""

    async def decided(handle: WorkflowHandle[Any, Any]) -> bool:
        return (await handle.describe()).typed_search_attributes.get(SA_PHASE) in DECIDED

    return await remaining(client, run, incidents, set() if done is None else done, decided, 16)


async def unpreviewed(client: Client, run: str, incidents: int, done: set[int]) -> int:
    """Incidents of a storm at the approval gate whose check-mode preview is not back yet (the
    request goes out at the verdict; the preview follows into it). A state query runs on the
    worker, hence fewer at a time."""

    async def previewed(handle: WorkflowHandle[Any, Any]) -> bool:
        state = await handle.query(QUERY_STATE, result_type=IncidentState)
        if state.phase != Phase.AWAITING_APPROVAL or state.plan is None:
            return True
        return len(state.previews) >= len(state.plan.actions)

    return await remaining(client, run, incidents, done, previewed, 8)


async def firebreak_storms(
    args: argparse.Namespace, storms: list[Storm], workdir: Path
) -> tuple[dict[str, object], dict[str, object], dict[str, dict[str, object]]]:
    """(the bare loop's numbers, the stack's cold start and memory, a row per storm)."""
    from runtime.temporal import connect

    topology = None
    if args.related > 1:
        topology = related_topology(workdir / "topology.json", storms, args.incidents, args.related)
    stack = await start_stack(workdir, args.settle, topology)
    try:
        keys = (stack.data_dir / "codec.keys").read_text().strip()
        client = await connect(stack.temporal_address, keys, interceptors=[])
        pids = {
            "worker": stack.child("worker.py --role incident"),
            "memory-worker": stack.child("worker.py --role memory"),
            "api": stack.child("-m api"),
            "temporal": stack.child("server start-dev"),
            "consumer": stack.child("-m consumer"),
            "nats": stack.child("nats-server"),
        }
        idle_mb = {k: round(rss_mb(p)) for k, p in pids.items()}
        with Usage({"temporal": pids["temporal"]}) as usage:
            raw = await raw_loop(client, args.alerts, args.incidents, 32, f"bench-raw-{secrets.token_hex(3)}")
        raw_row: dict[str, object] = {
            "alerts_per_s": round(raw["alerts_per_s"], 1),
            "rss_peak_mb": {k: round(v) for k, v in usage.peak_mb.items()},
            "cpu_pct": {k: round(v) for k, v in usage.cpu_pct.items()},
        }
        print(f"  raw signal-with-start: {raw_row}", flush=True)
        first = await first_incident_decided(client, [stack.api_url], stack.token, args.decision_timeout)
        rows = await storm_rows(args, storms, client, [stack.api_url], stack.token, pids, "Firebreak")
        idle_mb_after = {k: round(rss_mb(p)) for k, p in pids.items()}
    finally:
        stack.stop()
    stack_info: dict[str, object] = {
        "first_incident_decided_s": first,
        "rss_mb_idle_at_start": idle_mb,
        "rss_mb_at_end": idle_mb_after,
    }
    return raw_row, stack_info, rows


async def first_incident_decided(
    client: Client, api_urls: Sequence[str], token: str, timeout: float
) -> float | None:
    """Seconds from the warm-up's last ack until its incident is decided (None: not within
    `timeout`). The first incident after start pays the cold start (the embedding model loads
    on first use): measured here, on its own, so that no storm's numbers carry it."""
    run, last_ack = await warm_up(api_urls, token, "/alerts/generic")
    deadline = time.monotonic() + timeout
    while (left := await undecided(client, run, 1)) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    first = None if left else round(time.perf_counter() - last_ack, 1)
    print(f"  first incident decided {first}s after its last alert", flush=True)
    return first


async def storm_rows(
    args: argparse.Namespace,
    storms: list[Storm],
    client: Client,
    api_urls: Sequence[str],
    token: str,
    pids: dict[str, int],
    label: str,
) -> dict[str, dict[str, object]]:
    """Each storm sent to the API replicas in turn, then waited for until every incident of it
    is decided: a row per storm, with the storm's run id (`run`) for what is counted later."""
    rows: dict[str, dict[str, object]] = {}
    for storm in storms:
        with Usage(pids) as usage:
            run, numbers, last_ack = await send_storm(
                storm, api_urls, token, "/alerts/generic", args.alerts, args.incidents, args.senders
            )
        deadline = time.monotonic() + args.decision_timeout
        decided: set[int] = set()
        while (left := await undecided(client, run, args.incidents, decided)) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        decided_s = None if left else time.perf_counter() - last_ack
        previewed: set[int] = set()
        while (pending := await unpreviewed(client, run, args.incidents, previewed)) and (
            time.monotonic() < deadline
        ):
            await asyncio.sleep(2.0)
        previewed_s = None if left or pending else time.perf_counter() - last_ack
        lost = args.alerts - await count_delivered(client, INCIDENT_WORKFLOW_ID_PREFIX, args.incidents, run)
        rows[storm.name] = row(numbers, usage, lost, decided_s) | {
            "previewed_s_after_last_ack": None if previewed_s is None else round(previewed_s, 1),
            "undecided": left,
            "standing": await standing(client, run, args.incidents) if args.related > 1 else None,
            "run": run,
        }
        if len(api_urls) > 1:
            rows[storm.name]["accepted_posts_by_api"] = numbers["accepted_by"]
        print(f"  {label} {storm.name}: {rows[storm.name]}", flush=True)
    return rows


# --- the table ------------------------------------------------------------------------------


def print_table(
    eda: dict[str, dict[str, object]], firebreak: dict[str, dict[str, object]], raw: dict[str, object]
) -> None:
    head = (
        "| storm | system | alerts/s | x EDA | ack p50 ms | ack p99 ms | refused | lost "
        "| decided (s after last ack, settle incl.) | previews back (s) | standing | RSS peak MB | CPU % |"
    )
    print("\n" + head)
    print("|---" * (head.count("|") - 1) + "|")
    for name in firebreak | eda:
        peer = eda.get(name)
        for system, r in (("EDA", peer), ("Firebreak", firebreak.get(name))):
            if r is None:
                continue
            ratio = (
                f"{float(r['alerts_per_s']) / float(peer['alerts_per_s']):.2f}"  # type: ignore[arg-type]
                if peer
                else "-"
            )
            print(
                f"| {name} | {system} | {r['alerts_per_s']} | {ratio} "
                f"| {r['ack_p50_ms']} | {r['ack_p99_ms']} "
                f"| {r['refusals_429_503']} | {r['lost']} | {r['decided_s_after_last_ack']} "
                f"| {r.get('previewed_s_after_last_ack', '-')} | {r.get('standing') or '-'} "
                f"| {kv(r['rss_peak_mb'])} | {kv(r['cpu_pct'])} |"
            )
    print(
        f"| signal-with-start ceiling | bare loop, 32 in flight | {raw['alerts_per_s']} | | | | | "
        f"| | | | {kv(raw['rss_peak_mb'])} | {kv(raw['cpu_pct'])} |\n"
    )


def storm_options(args: argparse.Namespace, eda_version: str | None) -> dict[str, object]:
    """The run's storm options, as the JSON line reports them (shared with bench_scaleout)."""
    return {
        "alerts": args.alerts,
        "incidents": args.incidents,
        "senders": args.senders,
        "group": args.group,
        "paced_offered_alerts_per_s": args.rate,
        "settle_seconds": args.settle if args.settle is not None else "make dev default",
        "ansible_rulebook": eda_version,
        "related": getattr(args, "related", 0),
    }


def kv(values: object) -> str:
    assert isinstance(values, dict)
    return " ".join(f"{k} {v}" for k, v in values.items())


def storm_arguments(description: str | None) -> argparse.ArgumentParser:
    """The storm's options, shared with bench_scaleout."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--alerts", type=int, default=10_000, help="alerts per storm")
    parser.add_argument("--incidents", type=int, default=50, help="services (incidents) per storm")
    parser.add_argument("--senders", type=int, default=32, help="closed-loop senders")
    parser.add_argument("--group", type=int, default=25, help="alerts of one service per grouped POST")
    parser.add_argument("--rate", type=float, default=1000, help="alerts/s offered in the paced storm")
    parser.add_argument("--settle", type=float, help="FIREBREAK_SETTLE_SECONDS (default: make dev's, 30)")
    parser.add_argument("--decision-timeout", type=float, default=900, help="seconds to wait for decisions")
    parser.add_argument("--eda-version", default="1.3.2")
    parser.add_argument(
        "--eda-dir", default="~/.cache/firebreak-bench/eda-venv", help="the peer's virtualenv"
    )
    parser.add_argument("--no-eda", action="store_true", help="skip the peer")
    parser.add_argument("--storms", default="per_alert,grouped,paced", help="which storms, comma-separated")
    parser.add_argument("--keep", action="store_true", help="keep the scratch dir (logs, data)")
    parser.add_argument(
        "--related", type=int, default=0, help="services per dependency group (a topology; 0: none)"
    )
    return parser


def chosen_storms(args: argparse.Namespace) -> list[Storm]:
    every = (
        Storm("per_alert", 1, None),
        Storm("grouped", args.group, None),
        Storm("paced", args.group, args.rate),
    )
    chosen = [storm for storm in every if storm.name in args.storms.split(",")]
    if getattr(args, "related", 0) > 1:  # the topology names each storm's services: runs known now
        chosen = [dataclasses.replace(storm, run=secrets.token_hex(3)) for storm in chosen]
    return chosen


async def main() -> None:
    args = storm_arguments(__doc__).parse_args()
    storms = chosen_storms(args)
    workdir = Path(tempfile.mkdtemp(prefix="firebreak-storm-"))
    load_before = os.getloadavg()[0]
    eda_version: str | None = None
    eda: dict[str, dict[str, object]] = {}
    try:
        if not args.no_eda:
            print("Event-Driven Ansible ...", flush=True)
            eda_version, eda = await eda_storms(args, storms, workdir)
        print("Firebreak (python -m devstack) ...", flush=True)
        raw, stack_info, firebreak = await firebreak_storms(args, storms, workdir)
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print_table(eda, firebreak, raw)
    print(
        f"Firebreak's first incident after start: decided "
        f"{stack_info['first_incident_decided_s']}s after its last alert (cold start); "
        f"RSS MB idle at start {kv(stack_info['rss_mb_idle_at_start'])}, "
        f"at the end {kv(stack_info['rss_mb_at_end'])}\n"
    )
    result = {
        **storm_options(args, eda_version),
        "raw_signal_with_start": raw,
        "firebreak_stack": stack_info,
        "eda": eda,
        "firebreak": firebreak,
        "ratio_vs_raw": {
            name: round(float(r["alerts_per_s"]) / float(raw["alerts_per_s"]), 2)  # type: ignore[arg-type]
            for name, r in firebreak.items()
        },
        "ratio_vs_eda": {
            name: round(float(r["alerts_per_s"]) / float(eda[name]["alerts_per_s"]), 2)  # type: ignore[arg-type]
            for name, r in firebreak.items()
            if name in eda
        },
        "load_average_1m_before": round(load_before, 2),
        "load_average_1m_after": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
