"""Alerts from NATS JetStream: the real broker (Debian `nats-server -js`), the real Temporal.

- 10,000 messages, the consumer process (`firebreak consume`) SIGKILLed twice mid-stream:
  every alert is in its incident exactly once (read back from the workflows by query).
- Temporal SIGKILLed for a while: nothing is acked while it is away, malformed messages are
  still dead-lettered, and after it returns every alert is in its incident.
- Malformed messages: dead-lettered with a reason naming the field, counted in metrics;
  the valid messages around them are delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from temporalio.client import Client
from temporalio.service import RPCError

from api.app import create_app
from consumer.bus import HEADER_REASON, HEADER_SEQUENCE, BusConsumer, temporal_deliver
from ingest import bus as ingest_bus
from ingest.bus import ensure_streams
from integrations.vault import ActionCredentials
from models.alert import AlertBatch
from models.constants import QUERY_STATE, incident_workflow_id
from models.incident import IncidentState
from runtime.metrics import REGISTRY
from runtime.settings import Settings
from tests.chaos.test_temporal_restart import TemporalServer
from tests.conftest import BIN_DIR, VaultServer, free_port, require_binary
from tests.integration.conftest import StackFactory
from tests.payloads import alertmanager_alert, alertmanager_payload
from worker import build_worker

pytestmark = pytest.mark.integration

ACK_WAIT = 3.0  # seconds: how soon a killed consumer's messages come back (default 30)
PREFIX = "firebreak.alerts"
STREAM = "FIREBREAK_ALERTS"
MAX_IN_FLIGHT = 100  # the outage test's bound on unacked messages


@dataclass
class NatsServer:
    """`nats-server -js` on a loopback port, its JetStream store in the test's directory."""

    store: Path
    log: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        argv = [require_binary("nats-server"), "-js", "-a", "127.0.0.1", "-p", str(self.port)]
        argv += ["-sd", str(self.store)]
        # A restart appends to the same log: only what this start wrote counts, or the first
        # start's "Server is ready" lets a restart return before the new server listens.
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while b"Server is ready" not in self.log.read_bytes()[offset:]:
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"nats-server did not start:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(store=tmp_path / "jetstream", log=tmp_path / "nats.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[NATS]:
    nc = await nats.connect(nats_server.url, max_reconnect_attempts=3)
    try:
        yield nc
    finally:
        await nc.close()


@dataclass
class ConsumerProcess:
    """`firebreak consume` as its own process, as an operator runs it."""

    env: dict[str, str]
    log: Path
    metrics_port: int
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [require_binary("firebreak"), "consume"], stdout=out, stderr=subprocess.STDOUT, env=self.env
            )
        self.starts += 1

    def kill(self) -> None:
        """SIGKILL: no drain, no flush of buffered acks."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def alive(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            pytest.fail(f"consumer exited {self.process.returncode}:\n{self.log.read_text()[-3000:]}")

    async def metric(self, name: str, **labels: str) -> float:
        """A sample from the process's own /metrics page (0 when not yet counted)."""
        async with httpx.AsyncClient() as http:
            page = (await http.get(f"http://127.0.0.1:{self.metrics_port}/metrics")).text
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in page.splitlines():
            sample, _, value = line.rpartition(" ")
            if sample == (f"{name}{{{wanted}}}" if labels else name):
                return float(value)
        return 0.0


def consumer_env(nats_url: str, temporal_address: str, settings: Settings, tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("FIREBREAK_CODEC_KEYS", "TEMPORAL_PROFILE") and not k.startswith("FIREBREAK_BUS_")
    }
    return {
        **env,
        "PATH": f"{BIN_DIR}:{env.get('PATH', '')}",
        "TEMPORAL_ADDRESS": temporal_address,
        "FIREBREAK_DATA_DIR": str(tmp_path / "consumer-data"),
        "FIREBREAK_TASK_QUEUE": settings.task_queue,
        # Incidents stay in their settle window while the test counts what reached them.
        "FIREBREAK_SETTLE_SECONDS": "3600",
        "FIREBREAK_BUS_URL": nats_url,
        "FIREBREAK_BUS_ACK_WAIT_SECONDS": str(ACK_WAIT),
        "FIREBREAK_BUS_RETRY_DELAY_SECONDS": "0.5",
        "FIREBREAK_BUS_METRICS_PORT": str(free_port()),
        "FIREBREAK_METRICS_ENABLED": "true",
    }


@pytest.fixture
def make_consumer(tmp_path: Path) -> Iterator[list[ConsumerProcess]]:
    started: list[ConsumerProcess] = []
    yield started
    for process in started:
        process.stop()


def new_consumer(started: list[ConsumerProcess], env: dict[str, str], log: Path) -> ConsumerProcess:
    process = ConsumerProcess(env=env, log=log, metrics_port=int(env["FIREBREAK_BUS_METRICS_PORT"]))
    started.append(process)
    return process


# --- messages -----------------------------------------------------------------------------------


def alert_message(service: str, fingerprint: str, *, generic: bool = False) -> tuple[str, bytes]:
    """One alert for `prod-<service>`, as an Alertmanager group or as a generic alert."""
    if generic:
        body: Any = {
            "name": "HighLatency",
            "service": service,
            "severity": "warning",
            "labels": {"namespace": "prod"},
            "fingerprint": fingerprint,
        }
        return f"{PREFIX}.generic", json.dumps(body).encode()
    alert = alertmanager_alert("KubePodCrashLooping", service, fingerprint=fingerprint)
    return f"{PREFIX}.alertmanager", json.dumps(alertmanager_payload(alert)).encode()


async def publish(js: JetStreamContext, messages: list[tuple[str, bytes]]) -> None:
    """Publish with the broker's ack for each (stored), a few hundred at a time."""
    for start in range(0, len(messages), 500):
        chunk = messages[start : start + 500]
        await asyncio.gather(*(js.publish(subject, data) for subject, data in chunk))


@dataclass(frozen=True)
class Progress:
    """The durable consumer as the broker sees it."""

    acked: int  # ack floor: every message up to this stream sequence is acked or terminated
    in_flight: int  # delivered, not acked (includes naked ones waiting for their redelivery)
    waiting: int  # not delivered yet


async def progress(js: JetStreamContext) -> Progress | None:
    try:
        info = await js.consumer_info("FIREBREAK_ALERTS", "firebreak-ingest")
    except nats.js.errors.NotFoundError:
        return None
    return Progress(
        acked=info.ack_floor.stream_seq if info.ack_floor and info.ack_floor.stream_seq else 0,
        in_flight=info.num_ack_pending or 0,
        waiting=info.num_pending or 0,
    )


async def ready(js: JetStreamContext, consumer: ConsumerProcess) -> None:
    """Until the consumer process has created the streams and its durable consumer."""
    deadline = time.monotonic() + 30
    while await progress(js) is None:
        consumer.alive()
        assert time.monotonic() < deadline, consumer.log.read_text()[-2000:]
        await asyncio.sleep(0.1)


async def wait_consumed(
    js: JetStreamContext, last_seq: int, timeout: float, alive: ConsumerProcess | None = None
) -> Progress:
    """Until every message up to `last_seq` is acked (or terminated) by the durable consumer."""
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = await progress(js)
        if seen is not None and seen.acked >= last_seq and seen.in_flight == 0 and seen.waiting == 0:
            return seen
        if alive is not None:
            alive.alive()
        await asyncio.sleep(0.2)
    pytest.fail(f"not every message was acked within {timeout}s: {seen}")


async def wait_acked(js: JetStreamContext, at_least: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    acked = 0
    while time.monotonic() < deadline:
        seen = await progress(js)
        acked = seen.acked if seen is not None else 0
        if acked >= at_least:
            return acked
        await asyncio.sleep(0.02)
    pytest.fail(f"only {acked} messages acked within {timeout}s")


async def incident_alerts(client: Client, incident_id: str, timeout: float = 60.0) -> IncidentState:
    deadline = time.monotonic() + timeout
    while True:
        try:
            state: IncidentState = await client.get_workflow_handle(incident_id).query(
                QUERY_STATE, result_type=IncidentState
            )
            return state
        except RPCError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)


async def assert_exactly_once(client: Client, expected: dict[str, set[str]]) -> tuple[int, int]:
    """Each incident holds exactly its fingerprints; (alerts, duplicates absorbed)."""
    total = duplicates = 0
    for incident_id, fingerprints in expected.items():
        state = await incident_alerts(client, incident_id)
        held = set(state.alerts)
        assert held == fingerprints, (
            incident_id,
            f"missing {len(fingerprints - held)}: {sorted(fingerprints - held)[:5]}",
            f"foreign {len(held - fingerprints)}: {sorted(held - fingerprints)[:5]}",
        )
        total += len(held)
        duplicates += state.duplicate_alerts
    return total, duplicates


def metric_value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --- tests --------------------------------------------------------------------------------------


@pytest.mark.timeout(240)
async def test_ten_thousand_messages_two_sigkills_every_alert_exactly_once(
    client: Client,
    settings: Settings,
    make_stack: StackFactory,
    nats_server: NatsServer,
    bus: NATS,
    make_consumer: list[ConsumerProcess],
    tmp_path: Path,
) -> None:
    js = bus.jetstream()
    run = secrets.token_hex(3)
    services = [f"bus-{run}-{n:02d}" for n in range(20)]
    messages: list[tuple[str, bytes]] = []
    expected: dict[str, set[str]] = {incident_workflow_id(f"prod-{s}"): set() for s in services}
    for n in range(10_000):
        service = services[n % len(services)]
        fingerprint = f"{run}-{n:05d}"
        messages.append(alert_message(service, fingerprint, generic=n % 5 == 0))
        expected[incident_workflow_id(f"prod-{service}")].add(fingerprint)

    env = consumer_env(nats_server.url, client.service_client.config.target_host, settings, tmp_path)
    consumer = new_consumer(make_consumer, env, tmp_path / "consumer.log")
    consumer.start()
    await ready(js, consumer)
    started = time.monotonic()
    publisher = asyncio.create_task(publish(js, messages))

    # Two SIGKILLs while messages are in flight; each time a new process takes over.
    kills = []
    for at in (2_500, 6_000):
        await wait_acked(js, at, timeout=90)
        seen = await progress(js)
        assert seen is not None
        consumer.kill()
        kills.append((seen.acked, seen.in_flight))
        assert seen.acked < len(messages), "killed after the stream was done"
        consumer.start()
    await publisher
    await wait_consumed(js, len(messages), timeout=120, alive=consumer)
    elapsed = time.monotonic() - started

    await make_stack()  # a worker, so the incidents can be queried
    total, duplicates = await assert_exactly_once(client, expected)
    assert total == 10_000
    print(
        f"\n10,000 messages in {elapsed:.1f}s ({10_000 / elapsed:.0f}/s) with {len(kills)} SIGKILLs "
        f"(acked/in flight at each: {kills}); redelivered duplicates absorbed: {duplicates}"
    )
    for incident_id in expected:
        await client.get_workflow_handle(incident_id).terminate("test done")


@pytest.mark.timeout(180)
async def test_broker_sigkilled_and_restarted_consumer_carries_on(
    client: Client,
    settings: Settings,
    make_stack: StackFactory,
    nats_server: NatsServer,
    make_consumer: list[ConsumerProcess],
    tmp_path: Path,
) -> None:
    """nats-server dies mid-stream and comes back on its store: the consumer process rides it out."""
    run = secrets.token_hex(3)
    services = [f"broker-{run}-{n}" for n in range(5)]
    expected: dict[str, set[str]] = {incident_workflow_id(f"prod-{s}"): set() for s in services}
    messages = []
    for n in range(2_000):
        service = services[n % len(services)]
        messages.append(alert_message(service, f"{run}-{n:04d}", generic=n % 4 == 0))
        expected[incident_workflow_id(f"prod-{service}")].add(f"{run}-{n:04d}")
    env = consumer_env(nats_server.url, client.service_client.config.target_host, settings, tmp_path)
    consumer = new_consumer(make_consumer, env, tmp_path / "consumer.log")
    consumer.start()

    nc = await nats.connect(nats_server.url, max_reconnect_attempts=3)
    try:
        js = nc.jetstream()
        await ready(js, consumer)
        await publish(js, messages[:1_000])
        await wait_acked(js, 300, timeout=60)
    finally:
        await nc.close()
    assert nats_server.process is not None
    nats_server.process.send_signal(signal.SIGKILL)
    nats_server.process.wait(timeout=10)
    await asyncio.sleep(3)  # the consumer's fetches and acks fail meanwhile
    consumer.alive()
    nats_server.start()  # the same port and JetStream store
    nc = await nats.connect(nats_server.url, max_reconnect_attempts=3)
    try:
        js = nc.jetstream()
        await publish(js, messages[1_000:])
        await wait_consumed(js, len(messages), timeout=90, alive=consumer)
    finally:
        await nc.close()
    await make_stack()
    total, duplicates = await assert_exactly_once(client, expected)
    assert total == len(messages)
    assert "reconnected" in consumer.log.read_text()
    print(f"\nbroker SIGKILLed and restarted: {total} alerts exactly once, {duplicates} duplicates absorbed")
    for incident_id in expected:
        await client.get_workflow_handle(incident_id).terminate("test done")


@pytest.mark.timeout(240)
async def test_temporal_down_nothing_acked_nothing_lost(
    settings: Settings,
    vault: VaultServer,
    nats_server: NatsServer,
    bus: NATS,
    make_consumer: list[ConsumerProcess],
    tmp_path: Path,
) -> None:
    temporal = TemporalServer(db=tmp_path / "t.sqlite", log=tmp_path / "temporal.log", marker="bus")
    try:
        temporal.start()
        await temporal.ready()
        await _outage(temporal, settings, vault, nats_server, bus, make_consumer, tmp_path)
    finally:
        temporal.stop()


async def _outage(
    temporal: TemporalServer,
    settings: Settings,
    vault: VaultServer,
    nats_server: NatsServer,
    bus: NATS,
    make_consumer: list[ConsumerProcess],
    tmp_path: Path,
) -> None:
    js = bus.jetstream()
    run = secrets.token_hex(3)
    services = [f"outage-{run}-{n}" for n in range(4)]
    expected: dict[str, set[str]] = {incident_workflow_id(f"prod-{s}"): set() for s in services}

    def batch(tag: str, count: int) -> list[tuple[str, bytes]]:
        out = []
        for n in range(count):
            service = services[n % len(services)]
            fingerprint = f"{run}-{tag}-{n:04d}"
            out.append(alert_message(service, fingerprint, generic=n % 3 == 0))
            expected[incident_workflow_id(f"prod-{service}")].add(fingerprint)
        return out

    env = consumer_env(nats_server.url, temporal.address, settings, tmp_path)
    env["FIREBREAK_BUS_MAX_IN_FLIGHT"] = str(MAX_IN_FLIGHT)
    consumer = new_consumer(make_consumer, env, tmp_path / "consumer.log")
    consumer.start()
    await ready(js, consumer)
    before = batch("before", 400)
    await publish(js, before)
    await wait_consumed(js, len(before), timeout=60, alive=consumer)

    temporal.kill()
    down = time.monotonic()
    during = batch("during", 400)
    malformed = [(f"{PREFIX}.alertmanager", b"{not json"), (f"{PREFIX}.generic", b'{"service": "x"}')]
    # Within the first in-flight window: behind 100 stuck messages nothing else is delivered.
    await publish(js, during[:50] + malformed + during[50:])
    last = len(before) + len(during) + len(malformed)
    # Away for a while: several redelivery rounds, and nothing Temporal did not take is acked.
    await asyncio.sleep(8)
    consumer.alive()
    seen = await progress(js)
    assert seen is not None
    unacked = seen.in_flight + seen.waiting
    assert unacked == len(during), f"{unacked} unacked of {len(during)} sent while Temporal was down: {seen}"
    assert seen.acked == len(before), seen
    # Backpressure: the broker holds the rest back instead of handing the consumer all of it.
    assert 0 < seen.in_flight <= MAX_IN_FLIGHT < seen.waiting, seen
    # The stream kept flowing for what can never be valid: dead-lettered during the outage.
    dead = await dead_letters(js, 2)
    assert [d["reason"].split(":")[0] for d in dead] == ["body", "invalid payload"], dead
    retried = await consumer.metric("firebreak_bus_messages_total", outcome="retry_unavailable")
    assert retried >= MAX_IN_FLIGHT, retried  # each message in the window was refused, and came back

    temporal.start()  # the same SQLite file and port
    client = await temporal.ready()
    outage = time.monotonic() - down
    await wait_consumed(js, last, timeout=120, alive=consumer)
    configured = settings.model_copy(update={"settle_seconds": 3600})
    worker = build_worker(client, configured, ActionCredentials(vault.addr, vault.worker_token))
    task = asyncio.create_task(worker.run())
    try:
        total, duplicates = await assert_exactly_once(client, expected)
        assert total == len(before) + len(during), total
        for incident_id in expected:
            await client.get_workflow_handle(incident_id).terminate("test done")
    finally:
        await worker.shutdown()
        await task
    print(
        f"\noutage {outage:.1f}s: {len(during)} messages held unacked, then delivered; "
        f"{retried:.0f} naks; {duplicates} duplicates absorbed"
    )


@pytest.mark.timeout(120)
async def test_malformed_messages_dead_lettered_with_reason_stream_keeps_flowing(
    client: Client, settings: Settings, make_stack: StackFactory, bus: NATS
) -> None:
    js = bus.jetstream()
    run = secrets.token_hex(3)
    service = f"dlq-{run}"
    incident_id = incident_workflow_id(f"prod-{service}")
    good = [alert_message(service, f"{run}-{n}", generic=n % 2 == 1) for n in range(6)]
    no_alertname = alertmanager_payload(alertmanager_alert("X", service))
    del no_alertname["alerts"][0]["labels"]["alertname"]
    bad_time = alertmanager_payload(alertmanager_alert("X", service))
    bad_time["alerts"][0]["startsAt"] = 1700000000
    bad: list[tuple[tuple[str, bytes], str]] = [
        ((f"{PREFIX}.alertmanager", b"\xff\xfe not json"), "body: not valid JSON"),
        ((f"{PREFIX}.alertmanager", json.dumps(no_alertname).encode()), "alerts.0.labels"),
        ((f"{PREFIX}.alertmanager", json.dumps(bad_time).encode()), "alerts.0.startsAt"),
        ((f"{PREFIX}.generic", json.dumps({"name": "A", "service": service, "sql": 1}).encode()), "sql"),
        ((f"{PREFIX}.generic", json.dumps([]).encode()), "List should have at least 1 item"),
        ((f"{PREFIX}.pagerduty", b"{}"), "subject: 'firebreak.alerts.pagerduty' names no format"),
        ((f"{PREFIX}.generic", b" " * 5000), "body: larger than 4096 bytes (5000)"),
    ]
    # Bad messages between good ones: each good one still lands, each bad one is set aside.
    interleaved: list[tuple[str, bytes]] = []
    for n, (message, _) in enumerate(bad):
        interleaved += [*good[n : n + 1], message]
    interleaved += good[len(bad) :]

    configured = settings.model_copy(
        update={"bus_url": "nats://unused:4222", "settle_seconds": 3600, "api_max_body_bytes": 4096}
    )
    kinds = ("body", "subject", "payload")
    before = {kind: metric_value("firebreak_bus_dead_letters_total", kind=kind) for kind in kinds}
    await ensure_streams(js, configured)
    await publish(js, interleaved)

    async def client_factory() -> Client:
        return client

    stop = asyncio.Event()
    consumer = BusConsumer(configured, temporal_deliver(configured, client_factory))
    running = asyncio.create_task(consumer.run(stop, bus))
    try:
        await wait_consumed(js, len(interleaved), timeout=60)
        # A publisher's retry, after the first copy reached the incident: a duplicate on the bus.
        await publish(js, good[:1])
        await wait_consumed(js, len(interleaved) + 1, timeout=60)
    finally:
        stop.set()
        await running

    dead = await dead_letters(js, len(bad))
    assert len(dead) == len(bad), dead
    for (_, wanted), letter in zip(bad, dead, strict=True):
        assert wanted in letter["reason"], (wanted, letter)
    by_kind = {
        kind: metric_value("firebreak_bus_dead_letters_total", kind=kind) - before[kind] for kind in kinds
    }
    assert by_kind == {"body": 2, "subject": 1, "payload": 4}, by_kind
    # The dead letter keeps the message as it came, and where it came from.
    assert dead[0]["data"] == b"\xff\xfe not json"
    assert dead[0]["sequence"] == "2"

    await make_stack()
    state = await incident_alerts(client, incident_id)
    assert set(state.alerts) == {f"{run}-{n}" for n in range(6)}
    assert state.duplicate_alerts == 1, state.duplicate_alerts  # the retry was absorbed
    await client.get_workflow_handle(incident_id).terminate("test done")


@pytest.mark.timeout(60)
async def test_an_empty_pull_timing_out_the_builtin_way_does_not_stop_the_consumer(
    settings: Settings, bus: NATS, monkeypatch: pytest.MonkeyPatch
) -> None:
    """nats-py's batch fetch raises the builtin TimeoutError, not its own, when the deadline runs
    out between its two pull requests: what a loaded CI box hit. The consumer took it for the
    broker being gone and exited 1. Here the first pulls fail that way; the messages still land."""
    js = bus.jetstream()
    run = secrets.token_hex(3)
    messages = [alert_message(f"pull-{run}", f"{run}-{n}") for n in range(5)]
    configured = settings.model_copy(update={"bus_url": "nats://unused:4222"})
    await ensure_streams(js, configured)
    await publish(js, messages)

    real_fetch = JetStreamContext.PullSubscription.fetch
    timed_out = 0

    async def fetch(self: JetStreamContext.PullSubscription, *args: Any, **kwargs: Any) -> list[Any]:
        nonlocal timed_out
        if timed_out < 3:
            timed_out += 1
            raise TimeoutError  # nats-py's `_fetch_n`, deadline spent after the no-wait probe
        return await real_fetch(self, *args, **kwargs)

    monkeypatch.setattr(JetStreamContext.PullSubscription, "fetch", fetch)
    delivered: list[str] = []

    async def deliver(workflow_id: str, batch: AlertBatch) -> None:
        delivered.extend(alert.fingerprint for alert in batch.alerts)

    stop = asyncio.Event()
    running = asyncio.create_task(BusConsumer(configured, deliver).run(stop, bus))
    try:
        await wait_consumed(js, len(messages), timeout=30)
    finally:
        stop.set()
        await running  # re-raises what stopped it
    assert timed_out == 3
    assert sorted(delivered) == sorted(f"{run}-{n}" for n in range(5))


@pytest.mark.timeout(120)
async def test_api_acks_once_the_bus_stored_the_body_and_the_consumer_delivers_it(
    client: Client,
    settings: Settings,
    make_stack: StackFactory,
    nats_server: NatsServer,
    bus: NATS,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """FIREBREAK_API_ACK=bus (what `make dev` runs): 202 once JetStream stored the body, before
    Temporal has seen it; the consumer then delivers it. Past the backlog bound 429, bad input
    422, broker down 503: nothing of a refused request is stored."""
    monkeypatch.setattr(ingest_bus, "BACKLOG_REFRESH_SECONDS", 0.0)  # read the backlog every time
    js = bus.jetstream()
    run = secrets.token_hex(3)
    service = f"apibus-{run}"
    incident_id = incident_workflow_id(f"prod-{service}")
    configured = settings.model_copy(
        update={"bus_url": nats_server.url, "api_ack": "bus", "settle_seconds": 3600, "bus_max_backlog": 2}
    )
    assert configured.api_token is not None
    headers = {
        "Authorization": f"Bearer {configured.api_token.get_secret_value()}",
        "Content-Type": "application/json",
    }

    async def client_factory() -> Client:
        return client

    app = create_app(configured, client_factory)
    bodies = [alert_message(service, f"{run}-{n}", generic=True)[1] for n in range(4)]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        for body in bodies[:3]:
            answer = await http.post("/alerts/generic", content=body, headers=headers)
            assert answer.status_code == 202, answer.text
            assert answer.json() == {"accepted": 1, "incidents": [incident_id]}
        # Stored as sent, on the subject naming its format; Temporal has not been asked yet.
        stored = [await js.get_msg(STREAM, seq) for seq in (1, 2, 3)]
        assert [(m.subject, m.data) for m in stored] == [(f"{PREFIX}.generic", b) for b in bodies[:3]]
        with pytest.raises(RPCError):
            await client.get_workflow_handle(incident_id).describe()

        # Three wait for the consumer, the bound is two: refused, and not stored.
        full = await http.post("/alerts/generic", content=bodies[3], headers=headers)
        assert full.status_code == 429, full.text
        assert full.headers["retry-after"] == "2"
        bad = await http.post("/alerts/generic", content=b'{"name": "X"}', headers=headers)
        assert bad.status_code == 422 and "service" in bad.text, bad.text
        assert (await js.stream_info(STREAM)).state.messages == 3

        # The consumer delivers what was stored, each alert once.
        stop = asyncio.Event()
        consumer = BusConsumer(configured, temporal_deliver(configured, client_factory))
        running = asyncio.create_task(consumer.run(stop, bus))
        try:
            await wait_consumed(js, 3, timeout=60)
        finally:
            stop.set()
            await running
        await make_stack()
        state = await incident_alerts(client, incident_id)
        assert set(state.alerts) == {f"{run}-{n}" for n in range(3)}
        assert state.duplicate_alerts == 0

        # Broker down: 503 naming the bus, and health says so; back up: accepted again.
        nats_server.stop()
        down = await http.post("/alerts/generic", content=bodies[3], headers=headers)
        assert down.status_code == 503, down.text
        assert "the alert bus is unavailable" in down.json()["error"]
        health = await http.get("/healthz")
        assert health.status_code == 503 and health.json()["bus"].startswith("unreachable"), health.text
        nats_server.start()
        deadline = time.monotonic() + 30
        while (
            again := await http.post("/alerts/generic", content=bodies[3], headers=headers)
        ).status_code != 202:
            assert again.status_code == 503 and time.monotonic() < deadline, again.text
            await asyncio.sleep(0.5)
        await app.state.bus.close()
    after = await nats.connect(nats_server.url)  # the fixture's connection gave up during the outage
    try:
        assert (await after.jetstream().stream_info(STREAM)).state.messages == 4
    finally:
        await after.close()
    await client.get_workflow_handle(incident_id).terminate("test done")


async def dead_letters(js: JetStreamContext, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
    """The first `count` messages of the dead-letter stream, oldest first."""
    sub = await js.subscribe("firebreak.dead.>", stream="FIREBREAK_ALERTS_DEAD", ordered_consumer=True)
    found: list[dict[str, Any]] = []
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while len(found) < count:
                    msg = await sub.next_msg(timeout=timeout)
                    headers = msg.headers or {}
                    found.append(
                        {
                            "subject": msg.subject,
                            "reason": headers.get(HEADER_REASON, ""),
                            "sequence": headers.get(HEADER_SEQUENCE, ""),
                            "data": msg.data,
                        }
                    )
    finally:
        await sub.unsubscribe()
    return found
