"""Alert-storm ingestion: bare signal-with-start vs Firebreak's webhook API.

    .venv/bin/python bench/bench_ingest.py [--alerts 10000] [--incidents 50] [--concurrency 64]

Starts a Temporal dev server (SQLite, WAL) and the API as a real uvicorn subprocess, then:
1. raw: a bare client loop of signal-with-starts, one per alert (the ceiling without batching);
2. firebreak: one HTTP request per alert (the worst case for the API) from concurrent senders.
Alerts lost = alerts sent minus distinct fingerprints found in the workflows' histories.
Prints a table and one JSON line. Numbers, not pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models.alert import AlertBatch  # noqa: E402
from models.constants import SEARCH_ATTRIBUTES  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def alert_body(i: int, incidents: int, run: str) -> dict[str, object]:
    return {
        "name": "HighErrorRate",
        "service": f"storm-{run}-{i % incidents}",
        "severity": "warning",
        "fingerprint": f"{run}-{i}",
        "summary": f"5xx ratio above 5% (sample {i})",
    }


async def raw_loop(
    client: Client, total: int, incidents: int, concurrency: int, queue: str
) -> dict[str, float]:
    run = secrets.token_hex(3)
    sem = asyncio.Semaphore(concurrency)
    from models.alert import GenericAlert
    from models.incident import IncidentWorkflowInput

    now = datetime.now(UTC)

    async def one(i: int) -> None:
        alert = GenericAlert.model_validate(alert_body(i, incidents, run)).to_alert(now)
        async with sem:
            await client.start_workflow(
                "IncidentWorkflow",
                IncidentWorkflowInput(key=alert.incident_key(), settle_seconds=3600),
                id=f"raw-{alert.incident_key()}",
                task_queue=queue,
                start_signal="alerts",
                start_signal_args=[AlertBatch(alerts=[alert], received_at=now)],
            )

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(total)))
    elapsed = time.perf_counter() - started
    return {"alerts_per_s": total / elapsed, "seconds": elapsed}


async def count_delivered(client: Client, prefix: str, incidents: int, run: str) -> int:
    fingerprints: set[str] = set()
    for n in range(incidents):
        handle = client.get_workflow_handle(f"{prefix}storm-{run}-{n}")
        history = await handle.fetch_history()
        for event in history.events:
            if event.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
                continue
            (batch,) = await client.data_converter.decode(
                list(event.workflow_execution_signaled_event_attributes.input.payloads), [AlertBatch]
            )
            fingerprints.update(a.fingerprint for a in batch.alerts)
    return len(fingerprints)


async def api_storm(
    base_url: str, token: str, total: int, incidents: int, concurrency: int, run: str
) -> dict[str, float]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    retries = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as http:

        async def sender() -> None:
            nonlocal retries
            while not queue.empty():
                i = queue.get_nowait()
                while True:
                    t0 = time.perf_counter()
                    try:
                        response = await http.post(
                            "/alerts/generic",
                            json=alert_body(i, incidents, run),
                            headers={"Authorization": f"Bearer {token}"},
                        )
                    except httpx.TransportError:
                        retries += 1  # a dropped keep-alive connection: send again
                        continue
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                    if response.status_code == 202:
                        latencies.append(time.perf_counter() - t0)
                        break
                    retries += 1  # a sender honours 429/503 by retrying: nothing is dropped
                    await asyncio.sleep(float(response.headers.get("retry-after", "1")))

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {
        "alerts_per_s": total / elapsed,
        "seconds": elapsed,
        "ack_p50_ms": statistics.median(latencies) * 1000,
        "ack_p99_ms": percentile(latencies, 0.99) * 1000,
        "retries": retries,
        "statuses": statuses,  # type: ignore[dict-item]
    }


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--incidents", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=64)
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
        run = secrets.token_hex(3)
        storm = await api_storm(base, token, args.alerts, args.incidents, args.concurrency, run)
        rss_kb = int(Path(f"/proc/{api.pid}/status").read_text().split("VmRSS:")[1].split()[0])
    finally:
        api.terminate()
        api.wait(timeout=10)
    delivered = await count_delivered(client, "incident-", args.incidents, run)
    await env.shutdown()
    shutil.rmtree(workdir, ignore_errors=True)

    result = {
        "alerts": args.alerts,
        "incidents": args.incidents,
        "raw_signal_with_start_per_s": round(raw["alerts_per_s"], 1),
        "firebreak_alerts_per_s": round(storm["alerts_per_s"], 1),
        "ratio": round(storm["alerts_per_s"] / raw["alerts_per_s"], 2),
        "ack_p50_ms": round(storm["ack_p50_ms"], 1),
        "ack_p99_ms": round(storm["ack_p99_ms"], 1),
        "retries_429_503": storm["retries"],
        "alerts_lost": args.alerts - delivered,
        "incidents_created": args.incidents,
        "api_rss_mb": round(rss_kb / 1024, 1),
    }
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
