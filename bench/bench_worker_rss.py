"""Worker memory with many open incidents waiting on approval.

    .venv/bin/python bench/bench_worker_rss.py [--incidents 1000] [--cache N] [--embeddings auto]

Starts the real stack as `make dev` runs it (Temporal, OpenBao, the knowledge base ingested,
`python worker.py --role memory`, `python worker.py --role incident`, `python -m api`),
reads both workers' VmRSS once they poll, then opens `--incidents` incidents through the
webhook API (grouped requests, one service each) with a long approval timeout. Once every
one of them waits at the approval gate (counted through visibility) and its check-mode
preview is back (no Ansible process left under the worker), it reads VmRSS again.
Memory per open incident = (incident worker's RSS with them - idle) / incidents. `--cache`
is the incident worker's workflow cache (FIREBREAK_WORKER_MAX_CACHED_WORKFLOWS): a waiting
incident costs memory only while cached; evicted ones are replayed from history when they
next wake. Whether each worker mapped torch is read from /proc/<pid>/maps. The incident
worker's policy evaluator (a child process, policies/evaluator.py) is reported apart.
`--tracemalloc` runs the incident worker under tracemalloc (bench/worker_probe.py; its RSS
is then inflated by the traces) and prints what grew between idle and all waiting, by
source line and by file, and how much RSS glibc's malloc_trim gives back at the end.
Numbers, not pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import tempfile
import time
import tracemalloc
from datetime import timedelta
from pathlib import Path

import httpx
from bench_common import report
from bench_latency import Stack, alertmanager_payload, rss_mb
from temporalio.service import RPCError

from runtime.settings import Settings  # importable once bench_latency put the project on sys.path

BATCH = 50  # alerts per webhook request
PROBE = Path(__file__).resolve().parent / "worker_probe.py"


def ansible_children(pid: int) -> int:
    """Ansible processes whose parent is `pid` (the worker's check-mode runs)."""
    found = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            comm, rest = stat.read_text().rsplit(")", 1)
        except OSError:
            continue
        if rest.split()[1] == str(pid) and "ansible" in comm:
            found += 1
    return found


def maps_torch(pid: int) -> bool:
    return "libtorch" in Path(f"/proc/{pid}/maps").read_text()


def evaluator_rss_mb(pid: int) -> float:
    """RSS of the worker's policy evaluator child (policies/evaluator.py), 0 if none runs."""
    total = 0.0
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
            parent = (cmdline.parent / "stat").read_text().rsplit(")", 1)[1].split()[1]
        except OSError:
            continue
        if parent == str(pid) and b"policies.evaluator_child" in args:
            total += rss_mb(int(cmdline.parent.name))
    return total


async def warmed(stack: Stack) -> None:
    """Until the memory worker has loaded its model (or says it runs without one)."""
    log = stack.workdir / "memory-worker.log"
    deadline = time.monotonic() + 300
    while not any(m in log.read_bytes() for m in (b"warm-up done", b"warm-up failed")):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the memory worker did not warm up; see {log}")
        await asyncio.sleep(0.5)
    await asyncio.sleep(2)


async def probe(pid: int, dumps: Path, sig: signal.Signals, answer: str) -> str:
    """Signal the probed worker and wait for the file its handler writes last."""
    done = dumps / answer
    os.kill(pid, sig)
    deadline = time.monotonic() + 300
    while not done.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the worker probe did not write {done}")
        await asyncio.sleep(0.5)
    return done.read_text()


def growth(dumps: Path, incidents: int) -> None:
    """What the incident worker allocated between idle and all waiting, still held."""
    idle = tracemalloc.Snapshot.load(str(dumps / "snapshot-1.pickle"))
    loaded = tracemalloc.Snapshot.load(str(dumps / "snapshot-2.pickle"))
    for key_type, top in (("lineno", 25), ("filename", 15)):
        stats = loaded.compare_to(idle, key_type)
        if key_type == "lineno":
            total = sum(stat.size_diff for stat in stats)
            print(f"traced growth: {total / 2**20:.1f} MB ({total / 1024 / incidents:.1f} KB per incident)")
        print(f"top {top} by {key_type}:")
        for stat in stats[:top]:
            frame = stat.traceback[0]
            where = frame.filename if key_type == "filename" else f"{frame.filename}:{frame.lineno}"
            print(f"  {stat.size_diff / 2**20:8.2f} MB  {stat.count_diff:+9d} blocks  {where}")


async def count(stack: Stack, query: str) -> int:
    """Workflows matching `query`; a visibility call that times out on a loaded box counts 0."""
    try:
        return (await stack.client.count_workflows(query, rpc_timeout=timedelta(seconds=30))).count
    except RPCError:
        return 0


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--incidents", type=int, default=1000)
    parser.add_argument(
        "--cache", type=int, default=None, help="the worker's max_cached_workflows (default: its setting's)"
    )
    parser.add_argument("--embeddings", default="auto", choices=["sparse", "auto", "dense"])
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="trace the incident worker's allocations (inflates its RSS)",
    )
    args = parser.parse_args()
    stack = Stack(Path(tempfile.mkdtemp(prefix="firebreak-rss-")))
    load_before = os.getloadavg()[0]
    try:
        env = {"FIREBREAK_EMBEDDINGS": args.embeddings}
        if args.cache is not None:
            env["FIREBREAK_WORKER_MAX_CACHED_WORKFLOWS"] = str(args.cache)
        await stack.start(worker=False, **env)
        stack.ingest_knowledge()
        dumps = stack.workdir / "tracemalloc"
        dumps.mkdir()
        stack.start_worker(["-X", "tracemalloc=1", str(PROBE), str(dumps)] if args.tracemalloc else ())
        await stack.worker_ready()
        worker_pid = stack.processes["worker"].pid
        memory_pid = stack.processes["memory-worker"].pid
        await warmed(stack)
        idle, memory_idle = rss_mb(worker_pid), rss_mb(memory_pid)
        print(f"idle: incident worker {idle:.1f} MB, memory worker {memory_idle:.1f} MB", flush=True)
        if args.tracemalloc:
            await probe(worker_pid, dumps, signal.SIGUSR1, "snapshot-1.rss")
        run = secrets.token_hex(3)
        started = time.monotonic()
        async with httpx.AsyncClient(timeout=60) as http:
            for first in range(0, args.incidents, BATCH):
                alerts = [
                    alertmanager_payload(f"rss-{run}-{n}")["alerts"][0]
                    for n in range(first, min(first + BATCH, args.incidents))
                ]
                payload = alertmanager_payload(f"rss-{run}-{first}") | {"alerts": alerts}
                await stack.post(http, payload)
        query = f"TaskQueue = '{stack.task_queue}' AND FirebreakPhase = 'awaiting_approval'"
        peak, memory_peak, evaluator_peak = idle, memory_idle, 0.0
        while (waiting := await count(stack, query)) < args.incidents:
            peak, memory_peak = max(peak, rss_mb(worker_pid)), max(memory_peak, rss_mb(memory_pid))
            evaluator_peak = max(evaluator_peak, evaluator_rss_mb(worker_pid))
            # Each incident runs a check-mode preview of its plan (~3 s of CPU) before it waits.
            if time.monotonic() - started > max(1800, 6 * args.incidents):
                raise RuntimeError(f"only {waiting} of {args.incidents} reached the approval gate")
            await asyncio.sleep(1)
        reached = time.monotonic() - started
        # The approval request goes out at the verdict; the check-mode previews follow into
        # it. Read RSS once they are back: no Ansible process under the worker for 5 s.
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < 5:
            peak, memory_peak = max(peak, rss_mb(worker_pid)), max(memory_peak, rss_mb(memory_pid))
            evaluator_peak = max(evaluator_peak, evaluator_rss_mb(worker_pid))
            if ansible_children(worker_pid):
                quiet_since = time.monotonic()
            await asyncio.sleep(1)
        previewed = time.monotonic() - started
        loaded, memory_loaded = rss_mb(worker_pid), rss_mb(memory_pid)
        evaluator = evaluator_rss_mb(worker_pid)
        peak, memory_peak = max(peak, loaded), max(memory_peak, memory_loaded)
        torch_in = {name: maps_torch(pid) for name, pid in (("worker", worker_pid), ("memory", memory_pid))}
        trimmed = None
        if args.tracemalloc:
            await probe(worker_pid, dumps, signal.SIGUSR1, "snapshot-2.rss")
            growth(dumps, args.incidents)
            trim = await probe(worker_pid, dumps, signal.SIGUSR2, "trim.rss")
            before_trim, after_trim = map(int, trim.split())
            trimmed = round((before_trim - after_trim) / 1024, 1)
    finally:
        await stack.stop()
    result = {
        "incidents_waiting": args.incidents,
        "worker_cache": args.cache
        if args.cache is not None
        else Settings.model_fields["worker_max_cached_workflows"].default,
        "embeddings": args.embeddings,
        "tracemalloc": args.tracemalloc,
        "worker_rss_idle_mb": round(idle, 1),
        "worker_rss_with_incidents_mb": round(loaded, 1),
        "worker_rss_peak_mb": round(peak, 1),
        "kb_per_open_incident": round((loaded - idle) * 1024 / args.incidents, 1),
        "policy_evaluator_child_rss_mb": round(evaluator, 1),
        "policy_evaluator_child_rss_peak_mb": round(max(evaluator_peak, evaluator), 1),
        "memory_worker_rss_idle_mb": round(memory_idle, 1),
        "memory_worker_rss_with_incidents_mb": round(memory_loaded, 1),
        "memory_worker_rss_peak_mb": round(memory_peak, 1),
        "worker_mapped_torch": torch_in["worker"],
        "worker_rss_malloc_trim_returned_mb": trimmed,
        "memory_worker_mapped_torch": torch_in["memory"],
        "seconds_to_all_waiting": round(reached, 1),
        "seconds_to_previews_back": round(previewed, 1),
        "load_average_1m_before": round(load_before, 2),
        "load_average_1m_after": round(os.getloadavg()[0], 2),
    }
    report(result)


if __name__ == "__main__":
    asyncio.run(main())
