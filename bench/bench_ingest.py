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
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from bench_common import free_port, percentile, report
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models.alert import AlertBatch  # noqa: E402
from models.constants import SEARCH_ATTRIBUTES  # noqa: E402


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


def storm_requests(total: int, incidents: int, run: str, group: int) -> list[bytes]:
    """Request bodies in storm order. group 1: one alert each; otherwise up to `group` alerts of
    one incident each, the incidents' groups interleaved as their webhooks would be."""
    if group == 1:
        return [json.dumps(alert_body(i, incidents, run)).encode() for i in range(total)]
    by_incident: list[list[int]] = [list(range(n, total, incidents)) for n in range(incidents)]
    chunks = [[ids[k : k + group] for k in range(0, len(ids), group)] for ids in by_incident]
    bodies = []
    for round_ in range(max(len(c) for c in chunks)):
        for incident_chunks in chunks:
            if round_ < len(incident_chunks):
                alerts = [alert_body(j, incidents, run) for j in incident_chunks[round_]]
                bodies.append(json.dumps(alerts).encode())
    return bodies


class Sender:
    """Posts one body until it is accepted, retrying 429/503 after Retry-After and dropped
    connections at once; records the ack latency of the attempt that was accepted."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port, self.token = host, port, token
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.retries = 0

    async def send(self, connection: Connection, body: bytes) -> Connection:
        while True:
            t0 = time.perf_counter()
            try:
                status, headers = await connection.post("/alerts/generic", body)
            except (ConnectionError, OSError, asyncio.IncompleteReadError):
                self.retries += 1  # a dropped keep-alive connection: send again
                connection.close()
                connection = Connection(self.host, self.port, self.token)
                continue
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if status == 202:
                self.latencies.append(time.perf_counter() - t0)
                return connection
            self.retries += 1  # a sender honours 429/503 by retrying: nothing is dropped
            await asyncio.sleep(float(headers.get("retry-after", "1")))

    def summary(self, alerts: int, elapsed: float) -> dict[str, float]:
        return {
            "alerts_per_s": alerts / elapsed,
            "seconds": elapsed,
            "ack_p50_ms": statistics.median(self.latencies) * 1000,
            "ack_p99_ms": percentile(self.latencies, 0.99) * 1000,
            "retries": self.retries,
            "statuses": self.statuses,  # type: ignore[dict-item]
        }


async def closed_loop(
    base_url: str, token: str, bodies: list[bytes], alerts: int, senders: int
) -> dict[str, float]:
    """`senders` senders, each posting its next body once the last was accepted: the ceiling."""
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    sender = Sender(host, int(port), token)
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def one() -> None:
        connection = Connection(host, int(port), token)
        try:
            while not queue.empty():
                connection = await sender.send(connection, queue.get_nowait())
        finally:
            connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(senders)))
    return sender.summary(alerts, time.perf_counter() - started)


async def open_loop(
    base_url: str, token: str, bodies: list[bytes], alerts: int, rate: float
) -> dict[str, float]:
    """Bodies sent on a fixed schedule (`rate` alerts/s) whatever the answers: the latency a
    sender sees at that load. Connections are pooled; a late answer never delays the next send."""
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    sender = Sender(host, int(port), token)
    idle: list[Connection] = []
    per_request = alerts / len(bodies)
    interval = per_request / rate

    async def one(body: bytes) -> None:
        connection = idle.pop() if idle else Connection(host, int(port), token)
        idle.append(await sender.send(connection, body))

    started = time.perf_counter()
    tasks = []
    for n, body in enumerate(bodies):
        delay = started + n * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(body)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    for connection in idle:
        connection.close()
    return sender.summary(alerts, elapsed) | {"connections": len(idle)}


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
