"""Scale-out on one box: the storms of bench_storm against 1 worker + 1 API, then against
N workers + M APIs on one Temporal, in the same run; lost alerts and double effects counted.

    .venv/bin/python bench/bench_scaleout.py --workers 2 --apis 2 --alerts 4000 --incidents 40 --no-eda
    smoke: --workers 2 --apis 2 --alerts 100 --incidents 2 --settle 0 --storms grouped --no-eda

One dev stack (`python -m devstack`, as `make dev` runs it) serves both shapes: first with
its own worker and API (1x1), then with N-1 more incident workers and M-1 more `python -m api`
beside them, each with its sibling's command line and environment (read from /proc, as the
same user: the same Temporal, data dir, codec and gate keys and Vault token, as replicas of
one deployment share them) and its own port. So the NxM shape runs second, on a Temporal that
already holds the 1x1 shape's incidents. A memory worker, when the stack runs one, stays
single (its RSS and CPU are reported). The load generator posts to the
APIs in turn, request by request, as a round-robin load balancer would; the storms, payloads,
senders and decision wait are bench_storm's (EDA too, unless --no-eda). Then every incident
of the shape's storms that waits at its approval gate is approved (an `approve_plan` update,
as `firebreak approve` sends it; the dev stack admits typed names), the benchmark waits until
each has run its remediation, and the effects are read from the targets: the bundled
restart_service playbook appends one line per execution that restarted (the exactly-once
tests read the same record), so a line beyond one per approved action is a double effect.

Per process: peak RSS and CPU while each storm is sent (bench_storm's columns) and over the
whole shape (storms, decisions and remediations), so the second worker's share shows.
Numbers, not pass/fail; the box is shared, so the load average is printed with them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

from bench_common import free_port
from bench_storm import (
    ROOT,
    Stack,
    Storm,
    Usage,
    chosen_storms,
    eda_storms,
    first_incident_decided,
    kv,
    rss_mb,
    start_stack,
    storm_arguments,
    storm_options,
    storm_rows,
    tree,
    wait_port,
)
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError

sys.path.insert(0, str(ROOT))

from models.constants import (
    INCIDENT_WORKFLOW_ID_PREFIX,
    QUERY_STATE,
    SA_PHASE,
    TASK_QUEUE,
    UPDATE_APPROVE,
)
from models.incident import ApprovalRecord, ApprovalSignal, IncidentState, Phase

REPLICA_READY_TIMEOUT = 120.0
REMEDIATED = {Phase.VERIFYING, Phase.CLOSED}
APPROVER = "bench-scaleout"
# The bundled restart_service playbook's record of each execution that restarted, per service.
RESTART_RECORD = "restarts.log"


# --- replicas beside the dev stack's own ----------------------------------------------------


def environment_of(pid: int) -> dict[str, str]:
    """A process's environment as it was started (same user: /proc/<pid>/environ)."""
    entries = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(entry.decode().split("=", 1) for entry in entries if b"=" in entry)


def argv_of(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().rstrip("\0").split("\0")


def stack_workers(stack: Stack) -> dict[str, int]:
    """The stack's workers: `worker` serves incidents; `memory-worker`, when the stack runs
    one (`worker.py --role memory`), serves memory on its own task queue."""
    workers: dict[str, int] = {}
    for pid in tree(stack.process.pid):
        with contextlib.suppress(OSError):
            argv = argv_of(pid)
            if any(arg.endswith("worker.py") for arg in argv):
                workers["memory-worker" if "memory" in argv else "worker"] = pid
    if "worker" not in workers:
        raise SystemExit("the dev stack runs no incident worker")
    return workers


@dataclass
class Replica:
    name: str
    process: subprocess.Popen[bytes]

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def spawn_replica(name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> Replica:
    with (log_dir / f"{name}.log").open("wb") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: a stop reaches anything it started (ansible)
        )
    return Replica(name, process)


async def polls(client: Client, queue: str, pid: int) -> bool:
    """Whether the process polls the task queue (the SDK's default identity is `pid@host`)."""
    try:
        response = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            ),
            timeout=timedelta(seconds=2),
        )
    except RPCError:
        return False
    return any(p.identity.startswith(f"{pid}@") for p in response.pollers)


async def add_workers(stack: Stack, client: Client, count: int, log_dir: Path) -> list[Replica]:
    """`count` more incident workers: the stack's own command line and environment, each with
    its own metrics port."""
    pid = stack_workers(stack)["worker"]
    argv, env = argv_of(pid), environment_of(pid)
    queue = env.get("FIREBREAK_TASK_QUEUE", TASK_QUEUE)
    replicas = [
        spawn_replica(f"worker_{n}", argv, env | {"FIREBREAK_WORKER_METRICS_PORT": str(free_port())}, log_dir)
        for n in range(2, count + 2)
    ]
    deadline = time.monotonic() + REPLICA_READY_TIMEOUT
    for replica in replicas:
        while not await polls(client, queue, replica.process.pid):
            if replica.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{replica.name} did not poll {queue}; see {log_dir / replica.name}.log")
            await asyncio.sleep(0.5)
    return replicas


async def add_apis(stack: Stack, count: int, log_dir: Path) -> tuple[list[Replica], list[str]]:
    """`count` more `python -m api` with the stack API's environment, each on its own port."""
    env = environment_of(stack.child("-m api"))
    host = env.get("FIREBREAK_API_HOST", "127.0.0.1")
    replicas, urls = [], []
    for n in range(2, count + 2):
        port = free_port()
        replica = spawn_replica(
            f"api_{n}", [sys.executable, "-m", "api"], env | {"FIREBREAK_API_PORT": str(port)}, log_dir
        )
        replicas.append(replica)
        await wait_port(port, replica.alive, REPLICA_READY_TIMEOUT, replica.name)
        urls.append(f"http://{host}:{port}")
    return replicas, urls


# --- approvals and effects ------------------------------------------------------------------


@dataclass(frozen=True)
class Approved:
    service: str
    actions: int  # actions of the approved plan: the effects it should have


async def approve_waiting(client: Client, services: list[str]) -> list[Approved]:
    """Approve each incident that waits at its gate, for the plan it waits on."""
    sem = asyncio.Semaphore(8)

    async def one(service: str) -> Approved | None:
        handle = client.get_workflow_handle(f"{INCIDENT_WORKFLOW_ID_PREFIX}{service}")
        async with sem:
            state = await handle.query(QUERY_STATE, result_type=IncidentState)
            if state.phase != Phase.AWAITING_APPROVAL or state.plan is None:
                return None
            answer = ApprovalSignal(by=APPROVER, reason="scale-out benchmark", plan_hash=state.plan_hash)
            record = await handle.execute_update(UPDATE_APPROVE, answer, result_type=ApprovalRecord)
        return Approved(service, len(state.plan.actions)) if record.decision == "approved" else None

    return [a for a in await asyncio.gather(*(one(s) for s in services)) if a is not None]


async def wait_remediated(client: Client, approved: list[Approved], timeout: float) -> int:
    """Wait until every approved incident is past its remediation (phase verifying or closed);
    how many are not."""
    deadline = time.monotonic() + timeout
    left = list(approved)
    while left and time.monotonic() < deadline:
        phases = await asyncio.gather(
            *(
                client.get_workflow_handle(f"{INCIDENT_WORKFLOW_ID_PREFIX}{a.service}").describe()
                for a in left
            )
        )
        left = [
            a
            for a, d in zip(left, phases, strict=True)
            if d.typed_search_attributes.get(SA_PHASE) not in REMEDIATED
        ]
        if left:
            await asyncio.sleep(1)
    return len(left)


def count_effects(target_state_dir: Path, approved: list[Approved]) -> dict[str, int]:
    """Effects read from the targets: each service's restart record holds one line per
    execution that restarted it. Lines beyond the approved actions are double effects; fewer
    are effects missing."""
    effects = double = missing = 0
    for incident in approved:
        record = target_state_dir / incident.service / RESTART_RECORD
        lines = len(record.read_text().splitlines()) if record.exists() else 0
        effects += lines
        double += max(0, lines - incident.actions)
        missing += max(0, incident.actions - lines)
    return {
        "approved_incidents": len(approved),
        "approved_actions": sum(a.actions for a in approved),
        "effects": effects,
        "double_effects": double,
        "missing_effects": missing,
    }


@dataclass
class Shape:
    """One shape's numbers: a row per storm (bench_storm's), the effects, and the processes."""

    workers: int
    apis: int
    storms: dict[str, dict[str, object]]
    effects: dict[str, float]
    remediation_runs: dict[str, int]  # forward runs of the approved incidents, by how they ended
    first_incident_decided_s: float | None
    rss_mb_idle_at_start: dict[str, int]
    whole_shape_rss_peak_mb: dict[str, int]
    whole_shape_cpu_pct: dict[str, int]

    @property
    def label(self) -> str:
        return f"{self.workers}x{self.apis}"

    def lost(self) -> int:
        return sum(int(str(r["lost"])) for r in self.storms.values())

    def rate(self, storm: str) -> float:
        return float(str(self.storms[storm]["alerts_per_s"]))


# --- the shapes ------------------------------------------------------------------------------


async def remediation_outcomes(client: Client, approved: list[Approved]) -> dict[str, int]:
    """How each approved incident's forward remediation runs ended, from its state
    (`none`: no run recorded), so an effect missing from a target has its reason beside it."""
    outcomes: dict[str, int] = {}
    for incident in approved:
        handle = client.get_workflow_handle(f"{INCIDENT_WORKFLOW_ID_PREFIX}{incident.service}")
        state = await handle.query(QUERY_STATE, result_type=IncidentState)
        runs = [r.status for r in state.remediations if not r.check_mode and r.rollback_of is None]
        for status in runs or ["none"]:
            outcomes[status] = outcomes.get(status, 0) + 1
    return outcomes


async def run_shape(
    args: argparse.Namespace,
    storms: list[Storm],
    stack: Stack,
    client: Client,
    pids: dict[str, int],
    api_urls: list[str],
    workers: int,
) -> Shape:
    """The storms against the stack as it now runs, then every gated incident approved."""
    label = f"{workers}x{len(api_urls)}"
    print(f"  {label}: {', '.join(pids)}", flush=True)
    idle_mb = {k: round(rss_mb(p)) for k, p in pids.items()}
    first = await first_incident_decided(client, api_urls, stack.token, args.decision_timeout)
    with Usage(pids) as whole:
        rows = await storm_rows(args, storms, client, api_urls, stack.token, pids, f"Firebreak {label}")
        services = [f"storm-{r['run']}-{n}" for r in rows.values() for n in range(args.incidents)]
        started = time.perf_counter()
        approved = await approve_waiting(client, services)
        unremediated = await wait_remediated(client, approved, args.decision_timeout)
        remediated_s = round(time.perf_counter() - started, 1)
    # The dev stack's default target state dir (start_stack passes no FIREBREAK_TARGET_STATE_DIR).
    effects: dict[str, float] = count_effects(stack.data_dir / "targets", approved) | {
        "not_remediated_in_time": unremediated,
        "approve_to_remediated_s": remediated_s,
    }
    outcomes = await remediation_outcomes(client, approved)
    print(f"  {label} effects: {effects}; remediation runs: {outcomes}", flush=True)
    return Shape(
        workers=workers,
        apis=len(api_urls),
        storms=rows,
        effects=effects,
        remediation_runs=outcomes,
        first_incident_decided_s=first,
        rss_mb_idle_at_start=idle_mb,
        whole_shape_rss_peak_mb={k: round(v) for k, v in whole.peak_mb.items()},
        whole_shape_cpu_pct={k: round(v) for k, v in whole.cpu_pct.items()},
    )


async def scale_out(
    args: argparse.Namespace, storms: list[Storm], workdir: Path, workers: int, apis: int
) -> list[Shape]:
    """One dev stack: the storms with its own worker and API (1x1), then again once the extra
    workers and APIs run beside them."""
    from runtime.temporal import connect

    stack = await start_stack(workdir, args.settle)
    replicas: list[Replica] = []
    try:
        keys = (stack.data_dir / "codec.keys").read_text().strip()
        client = await connect(stack.temporal_address, keys, interceptors=[])
        pids = stack_workers(stack) | {
            "api": stack.child("-m api"),
            "temporal": stack.child("server start-dev"),
        }
        shapes = [await run_shape(args, storms, stack, client, pids, [stack.api_url], 1)]
        replicas += await add_workers(stack, client, workers - 1, workdir)
        extra_apis, extra_urls = await add_apis(stack, apis - 1, workdir)
        replicas += extra_apis
        pids |= {r.name: r.process.pid for r in replicas}
        shapes.append(
            await run_shape(args, storms, stack, client, pids, [stack.api_url, *extra_urls], workers)
        )
    finally:
        for replica in reversed(replicas):
            replica.stop()
        stack.stop()
    return shapes


# --- the table ------------------------------------------------------------------------------


def print_tables(shapes: list[Shape], eda: dict[str, dict[str, object]]) -> None:
    head = (
        "| storm | system | alerts/s | x 1x1 | x EDA | ack p50 ms | ack p99 ms | refused | lost "
        "| decided (s after last ack, settle incl.) | posts per API | RSS peak MB | CPU % |"
    )
    print("\n" + head)
    print("|---" * (head.count("|") - 1) + "|")
    base = shapes[0]
    for name in base.storms:
        peer = eda.get(name)
        if peer is not None:
            print(
                f"| {name} | EDA | {peer['alerts_per_s']} | | 1.00 "
                f"| {peer['ack_p50_ms']} | {peer['ack_p99_ms']} | {peer['refusals_429_503']} "
                f"| {peer['lost']} | {peer['decided_s_after_last_ack']} | "
                f"| {kv(peer['rss_peak_mb'])} | {kv(peer['cpu_pct'])} |"
            )
        for shape in shapes:
            r = shape.storms[name]
            x_eda = f"{shape.rate(name) / float(str(peer['alerts_per_s'])):.2f}" if peer else "-"
            spread = r.get("accepted_posts_by_api")
            posts = " / ".join(map(str, spread.values())) if isinstance(spread, dict) else "all"
            print(
                f"| {name} | Firebreak {shape.label} | {r['alerts_per_s']} "
                f"| {shape.rate(name) / base.rate(name):.2f} | {x_eda} "
                f"| {r['ack_p50_ms']} | {r['ack_p99_ms']} | {r['refusals_429_503']} | {r['lost']} "
                f"| {r['decided_s_after_last_ack']} | {posts} | {kv(r['rss_peak_mb'])} | {kv(r['cpu_pct'])} |"
            )
    print(
        "\n| shape | approved incidents | effects | double effects | missing effects "
        "| remediation runs | approve → all remediated s | whole shape: RSS peak MB | whole shape: CPU % |"
    )
    print("|---" * 9 + "|")
    for shape in shapes:
        e = shape.effects
        print(
            f"| {shape.label} | {e['approved_incidents']:g} | {e['effects']:g} | {e['double_effects']:g} "
            f"| {e['missing_effects']:g} | {kv(shape.remediation_runs)} | {e['approve_to_remediated_s']} "
            f"| {kv(shape.whole_shape_rss_peak_mb)} | {kv(shape.whole_shape_cpu_pct)} |"
        )
    print()
    for shape in shapes:
        e = shape.effects
        print(
            f"{shape.label}: lost alerts: {shape.lost()}, double effects: {e['double_effects']:g} "
            f"({e['effects']:g} effects for {e['approved_actions']:g} approved actions)"
        )


async def main() -> None:
    parser = storm_arguments(__doc__)
    parser.add_argument("--workers", type=int, default=2, help="workers in the scaled shape")
    parser.add_argument("--apis", type=int, default=2, help="API processes in the scaled shape")
    args = parser.parse_args()
    if args.workers < 1 or args.apis < 1:
        parser.error("--workers and --apis: at least 1")
    storms = chosen_storms(args)
    workdir = Path(tempfile.mkdtemp(prefix="firebreak-scaleout-"))
    loads = [os.getloadavg()]
    eda_version: str | None = None
    eda: dict[str, dict[str, object]] = {}
    shapes: list[Shape]
    try:
        if not args.no_eda:
            print("Event-Driven Ansible ...", flush=True)
            eda_version, eda = await eda_storms(args, storms, workdir)
            loads.append(os.getloadavg())
        print(f"Firebreak 1x1, then {args.workers} worker(s) x {args.apis} API(s) ...", flush=True)
        shapes = await scale_out(args, storms, workdir, args.workers, args.apis)
        loads.append(os.getloadavg())
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print_tables(shapes, eda)
    print(
        "load average (1, 5, 15 min) before and after each part: "
        + "; ".join(" ".join(f"{x:.2f}" for x in load) for load in loads)
    )
    print(json.dumps({
        **storm_options(args, eda_version),
        "eda": eda,
        "shapes": [asdict(shape) for shape in shapes],
        "load_averages": loads,
    }))  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
