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
next wake. Whether each worker mapped torch is read from /proc/<pid>/maps.
Numbers, not pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import httpx
from bench_common import report
from bench_latency import Stack, alertmanager_payload, rss_mb
from temporalio.service import RPCError

from runtime.settings import Settings  # importable once bench_latency put the project on sys.path

BATCH = 50  # alerts per webhook request


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


async def warmed(stack: Stack) -> None:
    """Until the memory worker has loaded its model (or says it runs without one)."""
    log = stack.workdir / "memory-worker.log"
    deadline = time.monotonic() + 300
    while not any(m in log.read_bytes() for m in (b"warm-up done", b"warm-up failed")):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the memory worker did not warm up; see {log}")
        await asyncio.sleep(0.5)
    await asyncio.sleep(2)


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
    args = parser.parse_args()
    stack = Stack(Path(tempfile.mkdtemp(prefix="firebreak-rss-")))
    load_before = os.getloadavg()[0]
    try:
        env = {"FIREBREAK_EMBEDDINGS": args.embeddings}
        if args.cache is not None:
            env["FIREBREAK_WORKER_MAX_CACHED_WORKFLOWS"] = str(args.cache)
        await stack.start(worker=False, **env)
        stack.ingest_knowledge()
        stack.start_worker()
        await stack.worker_ready()
        worker_pid = stack.processes["worker"].pid
        memory_pid = stack.processes["memory-worker"].pid
        await warmed(stack)
        idle, memory_idle = rss_mb(worker_pid), rss_mb(memory_pid)
        print(f"idle: incident worker {idle:.1f} MB, memory worker {memory_idle:.1f} MB", flush=True)
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
        peak, memory_peak = idle, memory_idle
        while (waiting := await count(stack, query)) < args.incidents:
            peak, memory_peak = max(peak, rss_mb(worker_pid)), max(memory_peak, rss_mb(memory_pid))
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
            if ansible_children(worker_pid):
                quiet_since = time.monotonic()
            await asyncio.sleep(1)
        previewed = time.monotonic() - started
        loaded, memory_loaded = rss_mb(worker_pid), rss_mb(memory_pid)
        peak, memory_peak = max(peak, loaded), max(memory_peak, memory_loaded)
        torch_in = {name: maps_torch(pid) for name, pid in (("worker", worker_pid), ("memory", memory_pid))}
    finally:
        await stack.stop()
    result = {
        "incidents_waiting": args.incidents,
        "worker_cache": args.cache
        if args.cache is not None
        else Settings.model_fields["worker_max_cached_workflows"].default,
        "embeddings": args.embeddings,
        "worker_rss_idle_mb": round(idle, 1),
        "worker_rss_with_incidents_mb": round(loaded, 1),
        "worker_rss_peak_mb": round(peak, 1),
        "kb_per_open_incident": round((loaded - idle) * 1024 / args.incidents, 1),
        "memory_worker_rss_idle_mb": round(memory_idle, 1),
        "memory_worker_rss_with_incidents_mb": round(memory_loaded, 1),
        "memory_worker_rss_peak_mb": round(memory_peak, 1),
        "worker_mapped_torch": torch_in["worker"],
        "memory_worker_mapped_torch": torch_in["memory"],
        "seconds_to_all_waiting": round(reached, 1),
        "seconds_to_previews_back": round(previewed, 1),
        "load_average_1m_before": round(load_before, 2),
        "load_average_1m_after": round(os.getloadavg()[0], 2),
    }
    report(result)


if __name__ == "__main__":
    asyncio.run(main())
