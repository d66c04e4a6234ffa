"""Deliver alerts to incident workflows, coalescing a storm into few RPCs.

Alerts for the same incident that arrive within `max_delay` of each other (or until a
batch holds `max_batch` alerts) travel in one signal-with-start. At most one RPC per
incident is in flight: what arrives meanwhile waits for it and goes in the next batch, so
batches grow with Temporal's latency instead of piling concurrent signal-with-starts onto
one workflow (they serialize on it anyway), and an incident's batches land in the order
they were sent (a "resolved" never overtakes its "firing"). Every request still gets its
answer only after Temporal accepted the batches holding its alerts, so 202 keeps its
meaning: durable. Memory stays bounded: past `max_pending` alerts waiting to be flushed,
new requests are refused with 429 + Retry-After instead of queueing; after Temporal fails,
requests are refused with 503 for a short cool-down rather than piling up behind it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from models.alert import Alert, AlertBatch

logger = logging.getLogger("firebreak.api.ingest")

Deliver = Callable[[str, AlertBatch], Awaitable[None]]


class Overloaded(Exception):
    """Too many alerts are waiting; the sender should retry after `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"overloaded; retry after {retry_after}s")
        self.retry_after = retry_after


class Unavailable(Exception):
    """Temporal did not accept the batch; nothing of it was delivered."""


@dataclass
class _Batch:
    key: str
    alerts: dict[str, Alert] = field(default_factory=dict)  # by fingerprint: last status wins
    count: int = 0  # alerts added, duplicates included (for the pending bound)
    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    timer: asyncio.TimerHandle | None = None


@dataclass
class IngestStats:
    requests: int = 0
    alerts: int = 0
    batches: int = 0
    rejected_overload: int = 0
    rejected_unavailable: int = 0
    delivery_seconds: float = 0.0  # summed over accepted batches: mean RPC time = this / batches


class Coalescer:
    def __init__(
        self,
        deliver: Deliver,
        *,
        max_delay: float = 0.02,
        max_batch: int = 500,
        max_pending: int = 50_000,
        max_inflight: int = 64,
        cooldown: float = 1.0,
    ) -> None:
        self._deliver = deliver
        self._max_delay = max_delay
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._inflight = asyncio.Semaphore(max_inflight)
        self._cooldown = cooldown
        self._open: dict[str, _Batch] = {}  # accepting alerts
        self._ready: dict[str, deque[_Batch]] = {}  # closed, behind the key's RPC in flight
        self._sending: set[str] = set()  # keys with an RPC in flight
        self._pending = 0
        self._down_until = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self.stats = IngestStats()

    @property
    def pending(self) -> int:
        return self._pending

    async def submit(self, alerts: list[Alert]) -> list[str]:
        """Queue alerts into their incidents' batches; return once all are accepted."""
        if time.monotonic() < self._down_until:
            self.stats.rejected_unavailable += 1
            raise Unavailable("Temporal failed moments ago; retry later")
        if self._pending + len(alerts) > self._max_pending:
            self.stats.rejected_overload += 1
            raise Overloaded(retry_after=1)
        self.stats.requests += 1
        self.stats.alerts += len(alerts)
        waits: dict[str, asyncio.Future[None]] = {}
        for alert in alerts:
            key = alert.incident_key()
            batch = self._open.get(key)
            if batch is None:
                batch = self._open[key] = _Batch(key=key)
                if key not in self._sending:
                    # Otherwise it goes as soon as the batch in flight lands.
                    batch.timer = asyncio.get_running_loop().call_later(self._max_delay, self._flush, key)
            batch.alerts[alert.fingerprint] = alert
            batch.count += 1
            self._pending += 1
            waits[key] = batch.done
            if batch.count >= self._max_batch:
                self._flush(key)
        # Every batch holding one of our alerts must land; any failure fails the request.
        await asyncio.gather(*waits.values())
        return sorted(waits)

    def _flush(self, key: str) -> None:
        """Close the key's open batch: send it now, or after the one in flight."""
        batch = self._open.pop(key, None)
        if batch is None:
            return
        if batch.timer is not None:
            batch.timer.cancel()
        if key in self._sending:
            self._ready.setdefault(key, deque()).append(batch)
        else:
            self._start(batch)

    def _start(self, batch: _Batch) -> None:
        self._sending.add(batch.key)
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _next(self, key: str) -> None:
        """The key's RPC landed: send what waited for it, oldest first."""
        self._sending.discard(key)
        ready = self._ready.get(key)
        if ready:
            self._start(ready.popleft())
            if not ready:
                del self._ready[key]
        elif key in self._open:
            self._flush(key)

    async def _send(self, batch: _Batch) -> None:
        try:
            async with self._inflight:
                started = time.monotonic()
                await self._deliver(
                    batch.key, AlertBatch(alerts=list(batch.alerts.values()), received_at=datetime.now(UTC))
                )
                self.stats.delivery_seconds += time.monotonic() - started
        except Exception as exc:
            self._down_until = time.monotonic() + self._cooldown
            logger.warning("batch for %s not accepted: %s", batch.key, type(exc).__name__)
            if not batch.done.done():
                batch.done.set_exception(Unavailable(type(exc).__name__))
            # The waiting requests read the exception; don't warn that nobody retrieved it.
            batch.done.exception()
        else:
            self.stats.batches += 1
            if not batch.done.done():
                batch.done.set_result(None)
        finally:
            self._pending -= batch.count
            self._next(batch.key)

    async def drain(self) -> None:
        """Flush everything open and wait for it, and for what queued behind it (shutdown)."""
        while self._open or self._tasks:
            for key in list(self._open):
                self._flush(key)
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
