"""NATS JetStream -> incident workflows, acknowledging a message only once Temporal has it.

Why JetStream (not RabbitMQ): one small binary (Debian `nats-server`) that starts in well
under a second, durable pull consumers whose `max_ack_pending` bounds what is in flight,
per-message `nak(delay)` for "Temporal is down, try later", and redelivery after `ack_wait`
when a consumer dies. See the README, "Alerts from a message bus".

Delivery, message by message:
- validated exactly as the webhook validates (`consumer.messages`), then submitted to the
  webhook's own coalescing ingest (`ingest.coalescer.Coalescer`) with its signal-with-start;
- acked only after every batch holding its alerts was accepted by Temporal;
- Temporal unavailable or ingest full: `nak` with a delay, so it comes back; never dropped
  (`max_deliver` is unlimited);
- never valid: copied to the dead-letter stream with the reason in a header (and a
  `Nats-Msg-Id`, so a crash between the copy and the `term` cannot copy it twice), then
  terminated; counted in `firebreak_bus_dead_letters`;
- a consumer killed mid-stream leaves its unacked messages to be redelivered after
  `ack_wait`; alerts that did reach Temporal before the kill come again and are absorbed by
  the workflow's fingerprint dedupe.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client import Counter, Gauge, Histogram
from temporalio.client import Client

from consumer.messages import Decoded, Rejected, decode, header_safe
from ingest.bus import check_settings, ensure_streams, redacted
from ingest.coalescer import Coalescer, Overloaded, Unavailable
from ingest.delivery import DELIVERY_TIMEOUT, TemporalGateway, signal_with_start
from models.alert import AlertBatch
from runtime.metrics import REGISTRY
from runtime.settings import Settings

logger = logging.getLogger("firebreak.consumer")

FETCH_BATCH = 256  # messages per pull request, at most (what is free of max_in_flight)
FETCH_WAIT = 1.0  # seconds a pull request waits for messages; also how soon a stop is seen
HEADER_REASON = "Firebreak-Dead-Reason"
HEADER_SUBJECT = "Firebreak-Original-Subject"
HEADER_SEQUENCE = "Firebreak-Original-Sequence"
HEADER_DELIVERIES = "Firebreak-Deliveries"

MESSAGES = Counter(
    "firebreak_bus_messages",
    "Bus messages by outcome: accepted (acked: Temporal holds the alerts), dead_lettered, "
    "retry_unavailable / retry_overloaded (nak: redelivered later).",
    ["outcome"],
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "firebreak_bus_dead_letters",
    "Messages that can never be valid, moved to the dead-letter stream, by what was wrong "
    "(subject, body or payload; the full reason travels in the message's header).",
    ["kind"],
    registry=REGISTRY,
)
BUS_ALERTS = Counter(
    "firebreak_bus_alerts",
    "Alerts from the bus accepted by Temporal, by source and status.",
    ["source", "status"],
    registry=REGISTRY,
)
ACK_SECONDS = Histogram(
    "firebreak_bus_ack_seconds",
    "From a message's delivery to the consumer to its ack (Temporal holds its alerts).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
IN_FLIGHT = Gauge("firebreak_bus_in_flight", "Bus messages delivered and not yet acked.", registry=REGISTRY)

Deliver = Callable[[str, AlertBatch], Awaitable[None]]


def temporal_deliver(settings: Settings, client_factory: Callable[[], Awaitable[Client]]) -> Deliver:
    """The webhook's delivery: signal-with-start, bounded so an outage fails fast."""
    gateway = TemporalGateway(client_factory)

    async def deliver(key: str, batch: AlertBatch) -> None:
        async with asyncio.timeout(DELIVERY_TIMEOUT):
            await signal_with_start(await gateway.client(), settings, key, batch)

    return deliver


def consumer_config(settings: Settings) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=settings.bus_durable,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=settings.bus_ack_wait_seconds,
        max_deliver=-1,  # a message Temporal has not taken yet is never given up on
        max_ack_pending=settings.bus_max_in_flight,  # backpressure at the server, too
        filter_subject=f"{settings.bus_subject_prefix}.>",
    )


class BusConsumer:
    """Pulls alert messages from JetStream and delivers them through the coalescing ingest."""

    def __init__(self, settings: Settings, deliver: Deliver) -> None:
        self._settings = settings
        self._url = check_settings(settings)
        self._ingest = Coalescer(
            deliver,
            max_delay=settings.ingest_max_delay_ms / 1000,
            max_batch=settings.ingest_max_batch,
            max_pending=settings.ingest_max_pending,
        )
        self._max = settings.bus_max_in_flight
        self._in_flight = 0
        self._room = asyncio.Event()
        self._room.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._js: JetStreamContext | None = None

    async def connect(self) -> NATS:
        """Connect, retrying until the broker answers: one it is not up yet, or restarting, is waited for."""
        token = self._settings.bus_token
        where = redacted(self._url)

        async def error(exc: Exception) -> None:
            # One line, not the client's default traceback per attempt.
            logger.warning("bus %s: %s: %s", where, type(exc).__name__, exc)

        async def disconnected() -> None:
            logger.warning("bus %s: disconnected; reconnecting", where)

        async def reconnected() -> None:
            logger.info("bus %s: reconnected", where)

        return await nats.connect(
            self._url,
            name="firebreak-consumer",
            token=token.get_secret_value() if token else None,
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
            connect_timeout=5,
            error_cb=error,
            disconnected_cb=disconnected,
            reconnected_cb=reconnected,
        )

    async def run(self, stop: asyncio.Event, nc: NATS | None = None) -> None:
        """Consume until `stop` is set, then finish what is in flight and close."""
        own = nc is None
        if nc is None:
            connecting = asyncio.create_task(self.connect())
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not connecting.done():  # asked to stop before the broker ever answered
                connecting.cancel()
                await asyncio.gather(connecting, return_exceptions=True)
                return
            nc = connecting.result()
        try:
            js = self._js = nc.jetstream()
            await ensure_streams(js, self._settings)
            await js.add_consumer(self._settings.bus_stream, consumer_config(self._settings))
            sub = await js.pull_subscribe_bind(
                durable=self._settings.bus_durable, stream=self._settings.bus_stream
            )
            logger.info(
                "consuming %s.> from stream %s (durable %s, at most %d in flight)",
                self._settings.bus_subject_prefix,
                self._settings.bus_stream,
                self._settings.bus_durable,
                self._max,
            )
            while not stop.is_set():
                await self._room.wait()
                want = min(self._max - self._in_flight, FETCH_BATCH)
                try:
                    msgs = await sub.fetch(want, timeout=FETCH_WAIT)
                except TimeoutError:
                    # An empty pull. nats-py raises its own TimeoutError or, when the deadline runs
                    # out between its two pull requests (a busy box), the builtin one: both mean
                    # "nothing yet", never "stop consuming".
                    continue
                # In order: an incident's messages enter the ingest in stream order.
                for msg in msgs:
                    self._take()
                    task = asyncio.create_task(self._handle(msg))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
            await self._ingest.drain()
            await sub.unsubscribe()
        finally:
            if own:
                await nc.drain()  # flushes the acks still buffered
        logger.info("consumer stopped; ingest totals: %s", self._ingest.stats)

    def _take(self) -> None:
        self._in_flight += 1
        IN_FLIGHT.set(self._in_flight)
        if self._in_flight >= self._max:
            self._room.clear()

    def _release(self) -> None:
        self._in_flight -= 1
        IN_FLIGHT.set(self._in_flight)
        self._room.set()

    async def _handle(self, msg: Msg) -> None:
        received = time.monotonic()
        try:
            meta = msg.metadata
            stored = meta.timestamp or datetime.now(UTC)
            decoded = decode(
                msg.subject,
                msg.data,
                prefix=self._settings.bus_subject_prefix,
                max_bytes=self._settings.api_max_body_bytes,
                now=stored if stored.tzinfo else stored.replace(tzinfo=UTC),
            )
            if isinstance(decoded, Rejected):
                await self._dead_letter(msg, decoded.reason)
                return
            await self._deliver(msg, decoded, received)
        except Exception as exc:
            # Not acked: JetStream redelivers it after ack_wait. Nothing of it is lost.
            MESSAGES.labels(outcome="retry_error").inc()
            logger.warning("message not handled, left for redelivery: %s", type(exc).__name__)
        finally:
            self._release()

    async def _deliver(self, msg: Msg, decoded: Decoded, received: float) -> None:
        try:
            await self._ingest.submit(decoded.alerts)
        except Unavailable:
            MESSAGES.labels(outcome="retry_unavailable").inc()
            await msg.nak(delay=self._settings.bus_retry_delay_seconds)
            return
        except Overloaded as exc:
            MESSAGES.labels(outcome="retry_overloaded").inc()
            await msg.nak(delay=max(float(exc.retry_after), self._settings.bus_retry_delay_seconds))
            return
        await msg.ack()
        MESSAGES.labels(outcome="accepted").inc()
        ACK_SECONDS.observe(time.monotonic() - received)
        for alert in decoded.alerts:
            BUS_ALERTS.labels(source=decoded.source, status=alert.status.value).inc()

    async def _dead_letter(self, msg: Msg, reason: str) -> None:
        """Copy to the dead-letter stream first, then terminate: a crash between them copies nothing twice."""
        assert self._js is not None
        meta = msg.metadata
        sequence = meta.sequence.stream if meta.sequence else 0
        suffix = msg.subject[len(self._settings.bus_subject_prefix) + 1 :] or "unknown"
        await self._js.publish(
            f"{self._settings.bus_dead_letter_prefix}.{suffix}",
            msg.data,
            stream=self._settings.bus_dead_letter_stream,
            headers={
                "Nats-Msg-Id": f"{meta.stream}-{sequence}",
                HEADER_REASON: header_safe(reason),
                HEADER_SUBJECT: header_safe(msg.subject),
                HEADER_SEQUENCE: str(sequence),
                HEADER_DELIVERIES: str(meta.num_delivered or 1),
            },
        )
        await msg.term()
        kind = reason.split(":", 1)[0] if reason.startswith(("subject:", "body:")) else "payload"
        MESSAGES.labels(outcome="dead_lettered").inc()
        DEAD_LETTERS.labels(kind=kind).inc()
        logger.info("dead-lettered message %s: %s", sequence, header_safe(reason)[:200])
