"""What the benchmarks share: a free loopback port, a percentile, how results are printed,
and the storm load generator (payloads, a lean HTTP client, closed- and open-loop senders
that spread posts over one or more API replicas, the bare signal-with-start loop and the
count of alerts delivered to the workflows)."""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import socket
import statistics
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(result: Mapping[str, object]) -> None:
    """An aligned table for people, then one JSON line for scripts."""
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    print(json.dumps(result))


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
    from models.alert import AlertBatch, GenericAlert
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
    """Distinct fingerprints signalled to the storm's incidents, over every run of each (an
    incident that continued as new has its earlier alerts in the earlier runs' histories)."""
    fingerprints: set[str] = set()
    for n in range(incidents):
        workflow_id = f"{prefix}storm-{run}-{n}"
        runs = client.list_workflows(f"WorkflowId = '{workflow_id}'")
        run_ids: list[str | None] = [e.run_id async for e in runs]
        for run_id in run_ids or [None]:
            await _add_fingerprints(client, workflow_id, run_id, fingerprints)
    return len(fingerprints)


async def _add_fingerprints(client: Client, workflow_id: str, run_id: str | None, into: set[str]) -> None:
    from models.alert import AlertBatch

    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    for event in history.events:
        if event.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            continue
        (batch,) = await client.data_converter.decode(
            list(event.workflow_execution_signaled_event_attributes.input.payloads), [AlertBatch]
        )
        into.update(a.fingerprint for a in batch.alerts)


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
    """Posts one body until it is accepted (any 2xx), retrying 429/503 after Retry-After and
    dropped connections at once; records the ack latency of the attempt that was accepted and
    which replica accepted it."""

    def __init__(self, path: str = "/alerts/generic") -> None:
        self.path = path
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.accepted_by: dict[str, int] = {}  # "host:port" -> posts that replica accepted
        self.retries = 0

    async def send(self, connection: Connection, body: bytes) -> Connection:
        while True:
            t0 = time.perf_counter()
            try:
                status, headers = await connection.post(self.path, body)
            except (ConnectionError, OSError, asyncio.IncompleteReadError):
                self.retries += 1  # a dropped keep-alive connection: send again
                connection.close()
                connection = Connection(connection.host, connection.port, connection.token)
                continue
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if 200 <= status < 300:
                self.latencies.append(time.perf_counter() - t0)
                replica = f"{connection.host}:{connection.port}"
                self.accepted_by[replica] = self.accepted_by.get(replica, 0) + 1
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
            "accepted_by": self.accepted_by,  # type: ignore[dict-item]
        }


class Replicas:
    """The API replicas a load balancer would front: each post goes to the next one in turn
    (round-robin per request, as an L7 balancer spreads keep-alive traffic)."""

    def __init__(self, base_urls: str | Sequence[str], token: str) -> None:
        urls = [base_urls] if isinstance(base_urls, str) else list(base_urls)
        if not urls:
            raise ValueError("base_urls: at least one API replica")
        self.token = token
        self.addresses = [
            (host, int(port)) for host, port in (u.removeprefix("http://").rsplit(":", 1) for u in urls)
        ]
        self._turn = itertools.cycle(range(len(self.addresses)))

    def next(self) -> int:
        return next(self._turn)

    def connect(self, replica: int) -> Connection:
        host, port = self.addresses[replica]
        return Connection(host, port, self.token)


async def closed_loop(
    base_urls: str | Sequence[str],
    token: str,
    bodies: list[bytes],
    alerts: int,
    senders: int,
    path: str = "/alerts/generic",
) -> dict[str, float]:
    """`senders` senders, each posting its next body once the last was accepted: the ceiling.
    Each sender keeps one connection per replica; the bodies go to the replicas in turn."""
    replicas = Replicas(base_urls, token)
    sender = Sender(path)
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def one() -> None:
        connections = [replicas.connect(n) for n in range(len(replicas.addresses))]
        try:
            while not queue.empty():
                body = queue.get_nowait()
                n = replicas.next()
                connections[n] = await sender.send(connections[n], body)
        finally:
            for connection in connections:
                connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(senders)))
    return sender.summary(alerts, time.perf_counter() - started)


async def open_loop(
    base_urls: str | Sequence[str],
    token: str,
    bodies: list[bytes],
    alerts: int,
    rate: float,
    path: str = "/alerts/generic",
) -> dict[str, float]:
    """Bodies sent on a fixed schedule (`rate` alerts/s) whatever the answers: the latency a
    sender sees at that load. Connections are pooled per replica and the bodies go to the
    replicas in turn; a late answer never delays the next send."""
    replicas = Replicas(base_urls, token)
    sender = Sender(path)
    idle: list[list[Connection]] = [[] for _ in replicas.addresses]
    per_request = alerts / len(bodies)
    interval = per_request / rate

    async def one(body: bytes, n: int) -> None:
        connection = idle[n].pop() if idle[n] else replicas.connect(n)
        idle[n].append(await sender.send(connection, body))

    started = time.perf_counter()
    tasks = []
    for k, body in enumerate(bodies):
        delay = started + k * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(body, replicas.next())))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    pooled = [connection for pool in idle for connection in pool]
    for connection in pooled:
        connection.close()
    return sender.summary(alerts, elapsed) | {"connections": len(pooled)}
