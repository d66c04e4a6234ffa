"""The alert bus (NATS JetStream): its settings, its streams, and the webhook's way onto it.

Shared by the bus consumer (consumer/, which moves messages on to Temporal) and the API,
which with `FIREBREAK_API_ACK=bus` answers a webhook 202 once JetStream has *stored* its
body instead of once Temporal has signalled it. A stored message is delivered by the
consumer exactly as one a publisher put on the bus (validated again, coalesced per
incident, acked only when Temporal holds its alerts, redelivered until then), so nothing
accepted is lost; what the sender saves is waiting for a Temporal RPC per request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from urllib.parse import urlsplit

import nats
from nats.aio.client import Client as NATS
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import NotFoundError

from ingest.coalescer import Overloaded, Unavailable
from ingest.delivery import DELIVERY_TIMEOUT
from runtime.settings import Settings

logger = logging.getLogger("firebreak.ingest.bus")

STREAM_MAX_AGE = 14 * 86_400.0  # streams created here keep two weeks; yours keep yours
DUPLICATE_WINDOW = 120.0  # seconds JetStream remembers a Nats-Msg-Id
BACKLOG_REFRESH_SECONDS = 1.0  # how stale the backlog figure behind a 429 may be
CONNECT_TIMEOUT = 2.0
HEALTH_TIMEOUT = 3.0  # /healthz answers within this, broker or not


class ConfigurationError(RuntimeError):
    """The bus settings cannot work; the message names the setting."""


def redacted(url: str) -> str:
    """The URL without its credentials (nats://user:password@host), for logs and errors."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or 4222}"


def check_settings(settings: Settings) -> str:
    """The bus URL, or a ConfigurationError naming the setting that is wrong."""
    if settings.bus_url is None:
        raise ConfigurationError("FIREBREAK_BUS_URL is not set (e.g. nats://127.0.0.1:4222)")
    alerts, dead = settings.bus_subject_prefix, settings.bus_dead_letter_prefix
    if dead == alerts or dead.startswith(alerts + ".") or alerts.startswith(dead + "."):
        raise ConfigurationError(
            f"FIREBREAK_BUS_DEAD_LETTER_PREFIX ({dead}) overlaps FIREBREAK_BUS_SUBJECT_PREFIX ({alerts}): "
            "dead letters would be consumed again"
        )
    if settings.bus_stream == settings.bus_dead_letter_stream:
        raise ConfigurationError("FIREBREAK_BUS_DEAD_LETTER_STREAM must differ from FIREBREAK_BUS_STREAM")
    return settings.bus_url


async def ensure_streams(js: JetStreamContext, settings: Settings) -> None:
    """Create the alert and dead-letter streams when missing; existing ones are left as they are."""
    for name, prefix in (
        (settings.bus_stream, settings.bus_subject_prefix),
        (settings.bus_dead_letter_stream, settings.bus_dead_letter_prefix),
    ):
        try:
            await js.stream_info(name)
        except NotFoundError:
            await js.add_stream(
                StreamConfig(
                    name=name,
                    subjects=[f"{prefix}.>"],
                    storage=StorageType.FILE,
                    max_age=STREAM_MAX_AGE,
                    duplicate_window=DUPLICATE_WINDOW,
                )
            )
            logger.info("created stream %s for %s.>", name, prefix)


class BusPublisher:
    """Puts webhook bodies on the alert stream for the API; 202 means JetStream stored them.

    One connection, made on first use and re-made by the client after a broker restart.
    Refuses with `Unavailable` (503) when the broker does not store a body within the
    delivery timeout, and with `Overloaded` (429) when more than `bus_max_backlog` messages
    wait for the consumer: a stalled consumer (Temporal down) fills the broker's disk no
    further than that.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._url = check_settings(settings)
        self._nc: NATS | None = None
        self._js: JetStreamContext | None = None
        self._lock = asyncio.Lock()
        self._backlog = 0
        self._backlog_at = float("-inf")
        self._backlog_lock = asyncio.Lock()

    async def _jetstream(self) -> JetStreamContext:
        if self._js is not None:
            return self._js
        async with self._lock:
            if self._js is None:
                token = self._settings.bus_token
                where = redacted(self._url)

                async def error(exc: Exception) -> None:
                    logger.warning("bus %s: %s", where, type(exc).__name__)

                async def disconnected() -> None:
                    logger.warning("bus %s: disconnected; reconnecting", where)

                nc = await nats.connect(
                    self._url,
                    name="firebreak-api",
                    token=token.get_secret_value() if token else None,
                    connect_timeout=CONNECT_TIMEOUT,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=1,
                    error_cb=error,
                    disconnected_cb=disconnected,
                )
                js = nc.jetstream(timeout=DELIVERY_TIMEOUT)
                try:
                    await ensure_streams(js, self._settings)
                except BaseException:
                    await nc.close()
                    raise
                self._nc, self._js = nc, js
        assert self._js is not None
        return self._js

    async def publish(self, source: str, body: bytes) -> None:
        """Store one webhook body under `<prefix>.<source>`; return only once JetStream has it."""
        try:
            js = await self._jetstream()
            if await self._backlog_now(js) > self._settings.bus_max_backlog:
                raise Overloaded(retry_after=int(self._settings.bus_retry_delay_seconds) or 1)
            await js.publish(
                f"{self._settings.bus_subject_prefix}.{source}",
                body,
                timeout=DELIVERY_TIMEOUT,
                stream=self._settings.bus_stream,
            )
        except (NatsError, OSError, TimeoutError) as exc:
            logger.warning("bus %s did not store a webhook body: %s", redacted(self._url), type(exc).__name__)
            raise Unavailable from None

    async def _backlog_now(self, js: JetStreamContext) -> int:
        """Messages not yet acked by the consumer (all of the stream's, before it first ran);
        read at most once per BACKLOG_REFRESH_SECONDS, by one request at a time."""
        if time.monotonic() - self._backlog_at < BACKLOG_REFRESH_SECONDS or self._backlog_lock.locked():
            return self._backlog
        async with self._backlog_lock:
            try:
                info = await js.consumer_info(self._settings.bus_stream, self._settings.bus_durable)
                self._backlog = info.num_pending + info.num_ack_pending
            except NotFoundError:
                self._backlog = (await js.stream_info(self._settings.bus_stream)).state.messages
            self._backlog_at = time.monotonic()
        return self._backlog

    async def reachable(self) -> tuple[bool, str]:
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT):
                js = await self._jetstream()
                await js.stream_info(self._settings.bus_stream)
        except (NatsError, OSError, TimeoutError) as exc:
            return False, f"unreachable: {type(exc).__name__}"
        return True, "reachable"

    async def close(self) -> None:
        if self._nc is not None:
            nc, self._nc, self._js = self._nc, None, None
            try:
                await nc.drain()  # flushes what is still buffered
            except NatsError:  # the broker is gone: nothing buffered can reach it anyway
                await nc.close()
