"""Alert-storm ingestion: bare signal-with-start vs Firebreak's webhook API.

    .venv/bin/python bench/bench_ingest.py [--alerts 10000] [--incidents 50] [--concurrency 64]

Starts a Temporal dev server (SQLite, WAL) and the API as a real uvicorn subprocess, then:
1. raw: a bare client loop of signal-with-starts, one per alert (the ceiling without batching);
2. firebreak, per alert: one HTTP request per alert (the worst case for the API) from
   concurrent senders;
3. firebreak, grouped: `--group` alerts per request, as Alertmanager sends a group.
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
import signal
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


class Connection:
    """A minimal HTTP/1.1 keep-alive client: the load generator must not be the bottleneck.

    httpx spends ~4 ms of CPU per request here, more than the API it measures; this writes
    the request and parses the status line, headers and Content-Length body, nothing more.
    """

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port, self.token = host, port, token
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, dict[str, str]]:
        if self.writer is None or self.reader is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: Bearer {self.token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("server closed the connection")
        headers: dict[str, str] = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            self.writer.close()
        return int(status_line.split()[1]), headers

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def api_storm(
    base_url: str, token: str, total: int, incidents: int, concurrency: int, run: str, group: int = 1
) -> dict[str, float]:
    """`group` alerts per request: 1 is the worst case, Alertmanager groups many per webhook."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    retries = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(0, total, group):
        queue.put_nowait(i)
    host, port = base_url.removeprefix("http://").rsplit(":", 1)

    async def sender() -> None:
        nonlocal retries
        connection = Connection(host, int(port), token)
        try:
            while not queue.empty():
                i = queue.get_nowait()
                alerts = [alert_body(j, incidents, run) for j in range(i, min(i + group, total))]
                body = json.dumps(alerts[0] if group == 1 else alerts).encode()
                while True:
                    t0 = time.perf_counter()
                    try:
                        status, headers = await connection.post("/alerts/generic", body)
                    except (ConnectionError, OSError, asyncio.IncompleteReadError):
                        retries += 1  # a dropped keep-alive connection: send again
                        connection.close()
                        connection = Connection(host, int(port), token)
                        continue
                    statuses[status] = statuses.get(status, 0) + 1
                    if status == 202:
                        latencies.append(time.perf_counter() - t0)
                        break
                    retries += 1  # a sender honours 429/503 by retrying: nothing is dropped
                    await asyncio.sleep(float(headers.get("retry-after", "1")))
        finally:
            connection.close()

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
    parser.add_argument("--group", type=int, default=25, help="alerts per request in the grouped storm")
    parser.add_argument("--api-env", action="append", default=[], help="KEY=VALUE for the API process")
    parser.add_argument("--profile", help="write py-spy's raw (collapsed) stacks of the API here")
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
        for name, group in (("per_alert", 1), ("grouped", args.group)):
            runs[name] = run = secrets.token_hex(3)
            profiler = None
            if args.profile:
                profiler = subprocess.Popen(
                    [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(api.pid),
                     "--format", "raw", "--output", f"{args.profile}.{name}", "--rate", "200",
                     "--nonblocking"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
            storms[name] = await api_storm(
                base, token, args.alerts, args.incidents, args.concurrency, run, group
            )
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)
                profiler.wait(timeout=30)
        rss_kb = int(Path(f"/proc/{api.pid}/status").read_text().split("VmRSS:")[1].split()[0])
    finally:
        api.terminate()
        api.wait(timeout=10)
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
            f"{name}_retries_429_503": storm["retries"],
            f"{name}_alerts_lost": lost[name],
        }
    result |= {
        "grouped_alerts_per_request": args.group,
        "incidents_created": args.incidents * len(storms),
        "api_rss_mb": round(rss_kb / 1024, 1),
        "load_average_1m_after": round(os.getloadavg()[0], 2),
    }
    if totals:
        result["api_ingest_totals"] = totals[-1].split("ingest totals: ")[1]
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
