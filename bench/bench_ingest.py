"""Alert-storm ingestion: bare signal-with-start vs Firebreak's webhook API.

    .venv/bin/python bench/bench_ingest.py [--alerts 10000] [--incidents 50] [--concurrency 64]
                                           [--group 25] [--rate 2500] [--profile FILE]

Starts a Temporal dev server (SQLite, WAL) and the API as a real uvicorn subprocess, then
sends a storm of `--alerts` alerts over `--incidents` incidents, five ways:
1. raw: a bare client loop of signal-with-starts, one per alert, 32 in flight (the ceiling
   without batching);
2. per_alert: one HTTP request per alert from `--concurrency` closed-loop senders (the worst
   case for the API: every alert pays a request);
3. grouped: `--group` alerts of one incident per request, as Alertmanager sends a group
   when `group_by` holds the incident labels; closed loop, so this is the ceiling;
4. paced: the grouped storm offered open-loop at `--rate` alerts/s: the ack latency a sender
   sees at that rate (closed-loop latency is only queueing: senders / throughput);
5. bus (unless --no-bus): the same storm as one generic alert per NATS JetStream message,
   published at `--bus-rate` (default `--rate`) alerts/s to a real `nats-server -js` (Debian) and taken by
   `python -m consumer`; ack latency is publish -> acked (the durable consumer's ack floor
   passing the message, polled every 10 ms), throughput is alerts / (first publish -> last ack).
Every sender retries 429/503 after Retry-After, as Alertmanager does. Alerts lost = alerts
sent minus distinct fingerprints found in the workflows' histories. Prints a table and one
JSON line. Numbers, not pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from bench_common import (
    alert_body,
    closed_loop,
    count_delivered,
    free_port,
    open_loop,
    percentile,
    raw_loop,
    report,
    storm_requests,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models.constants import SEARCH_ATTRIBUTES  # noqa: E402


async def _quiet(exc: Exception) -> None:
    """The broker is still starting: the loop below retries; no traceback per attempt."""


async def bus_phase(
    target: str, queue: str, workdir: Path, alerts: int, incidents: int, rate: float
) -> tuple[dict[str, float], str, str]:
    """The storm through the broker: (numbers, run id, the consumer's ingest totals line)."""
    import nats

    binary = shutil.which("nats-server")
    if binary is None:
        raise SystemExit("nats-server not found: run scripts/install-system-deps.sh (or pass --no-bus)")
    port = free_port()
    broker = subprocess.Popen(
        [binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(workdir / "jetstream")],
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "nats.log").open("wb"),
    )
    consumer = None
    nc = None
    try:
        for _ in range(100):
            try:
                nc = await nats.connect(f"nats://127.0.0.1:{port}", max_reconnect_attempts=0, error_cb=_quiet)
                break
            except Exception:
                await asyncio.sleep(0.1)
        assert nc is not None, "nats-server did not start"
        consumer = subprocess.Popen(
            [sys.executable, "-m", "consumer"],
            cwd=ROOT,
            env={
                **os.environ,
                "TEMPORAL_ADDRESS": target,
                "FIREBREAK_TASK_QUEUE": queue,
                "FIREBREAK_SETTLE_SECONDS": "3600",
                "FIREBREAK_BUS_URL": f"nats://127.0.0.1:{port}",
                "FIREBREAK_BUS_METRICS_PORT": str(free_port()),
            },
            stdout=subprocess.DEVNULL,
            stderr=(workdir / "consumer.log").open("wb"),
        )
        js = nc.jetstream()
        while True:  # the consumer creates the stream and its durable consumer
            try:
                await js.consumer_info("FIREBREAK_ALERTS", "firebreak-ingest")
                break
            except nats.js.errors.NotFoundError:
                assert consumer.poll() is None, (workdir / "consumer.log").read_text()[-2000:]
                await asyncio.sleep(0.1)
        run = secrets.token_hex(3)
        bodies = [json.dumps(alert_body(i, incidents, run)).encode() for i in range(alerts)]
        published: dict[int, float] = {}  # stream sequence -> when the broker stored it
        acked_at: dict[int, float] = {}
        done = asyncio.Event()

        async def watch() -> None:
            floor = 0
            while floor < alerts:
                info = await js.consumer_info("FIREBREAK_ALERTS", "firebreak-ingest")
                now = time.perf_counter()
                new = info.ack_floor.stream_seq if info.ack_floor and info.ack_floor.stream_seq else 0
                for seq in range(floor + 1, new + 1):
                    acked_at[seq] = now
                floor = max(floor, new)
                await asyncio.sleep(0.01)
            done.set()

        async def one(body: bytes) -> None:
            ack = await js.publish("firebreak.alerts.generic", body)
            published[ack.seq] = time.perf_counter()

        watcher = asyncio.create_task(watch())
        started = time.perf_counter()
        tasks = []
        for n, body in enumerate(bodies):
            delay = started + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(body)))
        await asyncio.gather(*tasks)
        await asyncio.wait_for(done.wait(), timeout=600)
        await watcher
        elapsed = max(acked_at.values()) - started
        latencies = [(acked_at[seq] - published[seq]) * 1000 for seq in published]
        numbers = {
            "alerts_per_s": alerts / elapsed,
            "ack_p50_ms": percentile(latencies, 0.50),
            "ack_p99_ms": percentile(latencies, 0.99),
        }
    finally:
        if nc is not None:
            await nc.close()
        if consumer is not None:
            consumer.terminate()
            consumer.wait(timeout=30)
        broker.terminate()
        broker.wait(timeout=10)
    totals = [x for x in (workdir / "consumer.log").read_text().splitlines() if "ingest totals" in x]
    return numbers, run, totals[-1].split("ingest totals: ")[1] if totals else ""


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--incidents", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--group", type=int, default=25, help="alerts of one incident per grouped request")
    parser.add_argument("--rate", type=float, default=2500, help="alerts/s offered in the paced storm")
    parser.add_argument("--api-env", action="append", default=[], help="KEY=VALUE for the API process")
    parser.add_argument("--profile", help="write py-spy's raw (collapsed) stacks of the API here")
    parser.add_argument("--no-bus", action="store_true", help="skip the NATS JetStream phase")
    parser.add_argument(
        "--bus-rate", type=float, help="alerts/s published in the bus phase (default: --rate)"
    )
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="firebreak-bench-"))
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=shutil.which("temporal") or str(Path(sys.executable).parent / "temporal"),
        data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_database_filename=str(workdir / "temporal.sqlite"),
        dev_server_extra_args=[
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=normal",
        ],
    )
    client = env.client
    target = client.service_client.config.target_host
    queue = f"bench-{secrets.token_hex(3)}"  # no worker polls it: we measure ingestion only
    raw = await raw_loop(client, args.alerts, args.incidents, 32, queue)

    port = free_port()
    token = secrets.token_urlsafe(16)
    api = subprocess.Popen(
        [sys.executable, "-m", "api"],
        cwd=ROOT,
        env={
            **os.environ,
            "TEMPORAL_ADDRESS": target,
            "FIREBREAK_API_TOKEN": token,
            "FIREBREAK_API_PORT": str(port),
            "FIREBREAK_TASK_QUEUE": queue,
            "FIREBREAK_SETTLE_SECONDS": "3600",
            **dict(kv.split("=", 1) for kv in args.api_env),
        },
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "api.log").open("wb"),
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        storms: dict[str, dict[str, float]] = {}
        runs: dict[str, str] = {}
        phases = (
            ("per_alert", 1, None),
            ("grouped", args.group, None),
            ("paced", args.group, args.rate),
        )
        for name, group, rate in phases:
            runs[name] = run = secrets.token_hex(3)
            bodies = storm_requests(args.alerts, args.incidents, run, group)
            profiler = None
            if args.profile:
                profiler = subprocess.Popen(
                    [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(api.pid),
                     "--format", "raw", "--output", f"{args.profile}.{name}", "--rate", "200",
                     "--nonblocking"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
            if rate is None:
                storms[name] = await closed_loop(base, token, bodies, args.alerts, args.concurrency)
            else:
                storms[name] = await open_loop(base, token, bodies, args.alerts, rate)
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)
                profiler.wait(timeout=30)
        rss_kb = int(Path(f"/proc/{api.pid}/status").read_text().split("VmRSS:")[1].split()[0])
    finally:
        api.terminate()
        api.wait(timeout=10)
    bus_totals = ""
    if not args.no_bus:
        storms["bus"], runs["bus"], bus_totals = await bus_phase(
            target, queue, workdir, args.alerts, args.incidents, args.bus_rate or args.rate
        )
    lost = {
        name: args.alerts - await count_delivered(client, "incident-", args.incidents, run)
        for name, run in runs.items()
    }
    await env.shutdown()
    totals = [line for line in (workdir / "api.log").read_text().splitlines() if "ingest totals" in line]
    shutil.rmtree(workdir, ignore_errors=True)

    result: dict[str, object] = {
        "alerts": args.alerts,
        "incidents": args.incidents,
        "senders": args.concurrency,
        "raw_signal_with_start_per_s": round(raw["alerts_per_s"], 1),
    }
    for name, storm in storms.items():
        result |= {
            f"{name}_alerts_per_s": round(storm["alerts_per_s"], 1),
            f"{name}_ratio_vs_raw": round(storm["alerts_per_s"] / raw["alerts_per_s"], 2),
            f"{name}_ack_p50_ms": round(storm["ack_p50_ms"], 1),
            f"{name}_ack_p99_ms": round(storm["ack_p99_ms"], 1),
            f"{name}_alerts_lost": lost[name],
        }
        if "retries" in storm:
            result[f"{name}_retries_429_503"] = storm["retries"]
    result |= {
        "paced_offered_alerts_per_s": args.rate,
        "paced_connections": storms["paced"]["connections"],
        "grouped_alerts_per_request": args.group,
        "incidents_created": args.incidents * len(storms),
        "bus_offered_alerts_per_s": None if args.no_bus else args.bus_rate or args.rate,
        "api_rss_mb": round(rss_kb / 1024, 1),
        "load_average_1m_after": round(os.getloadavg()[0], 2),
    }
    if totals:
        result["api_ingest_totals"] = totals[-1].split("ingest totals: ")[1]
    if bus_totals:
        result["consumer_ingest_totals"] = bus_totals
    report(result)


if __name__ == "__main__":
    asyncio.run(main())
