"""The ingress coalescer: few RPCs per incident, every request answered only when durable."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from ingest.coalescer import Coalescer, Overloaded, Unavailable
from models.alert import Alert, AlertBatch, AlertStatus, Severity


def alert(service: str, n: int, status: AlertStatus = AlertStatus.FIRING) -> Alert:
    return Alert(
        fingerprint=f"{service}-{n}",
        status=status,
        name="HighErrorRate",
        service=service,
        severity=Severity.P2,
        starts_at=datetime(2026, 11, 21, tzinfo=UTC),
        source="generic",
    )


class Recorder:
    def __init__(self, fail: bool = False, delay: float = 0.0) -> None:
        self.calls: list[tuple[str, AlertBatch]] = []
        self.fail = fail
        self.delay = delay

    async def __call__(self, key: str, batch: AlertBatch) -> None:
        await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("Temporal unreachable")
        self.calls.append((key, batch))


async def test_concurrent_requests_for_one_incident_share_one_rpc() -> None:
    deliver = Recorder()
    ingest = Coalescer(deliver, max_delay=0.05)
    results = await asyncio.gather(*(ingest.submit([alert("cart", i)]) for i in range(100)))
    assert all(r == ["cart"] for r in results)
    assert len(deliver.calls) == 1
    assert len(deliver.calls[0][1].alerts) == 100
    assert ingest.pending == 0 and ingest.stats.batches == 1


async def test_one_request_spanning_incidents_waits_for_all_of_them() -> None:
    deliver = Recorder()
    ingest = Coalescer(deliver, max_delay=0.01)
    keys = await ingest.submit([alert("cart", 1), alert("search", 1), alert("cart", 2)])
    assert keys == ["cart", "search"]
    assert sorted(k for k, _ in deliver.calls) == ["cart", "search"]


async def test_full_batch_flushes_without_waiting_for_the_delay() -> None:
    deliver = Recorder()
    ingest = Coalescer(deliver, max_delay=30, max_batch=10)
    await asyncio.wait_for(ingest.submit([alert("cart", i) for i in range(10)]), timeout=5)
    assert len(deliver.calls) == 1


async def test_duplicates_in_a_batch_keep_the_latest_status() -> None:
    deliver = Recorder()
    ingest = Coalescer(deliver, max_delay=0.02)
    await asyncio.gather(
        ingest.submit([alert("cart", 1)]), ingest.submit([alert("cart", 1, AlertStatus.RESOLVED)])
    )
    ((_, batch),) = deliver.calls
    assert [a.status for a in batch.alerts] == [AlertStatus.RESOLVED]


async def test_failure_fails_every_waiting_request_and_cools_down() -> None:
    deliver = Recorder(fail=True)
    ingest = Coalescer(deliver, max_delay=0.01, cooldown=0.2)
    results = await asyncio.gather(
        *(ingest.submit([alert("cart", i)]) for i in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, Unavailable) for r in results)
    with pytest.raises(Unavailable):
        await ingest.submit([alert("cart", 9)])  # fails fast during the cool-down
    assert deliver.calls == [] and ingest.pending == 0
    await asyncio.sleep(0.25)
    deliver.fail = False
    assert await ingest.submit([alert("cart", 10)]) == ["cart"]


async def test_overload_is_refused_not_queued() -> None:
    deliver = Recorder(delay=0.2)
    ingest = Coalescer(deliver, max_delay=0.0, max_pending=10)
    first = asyncio.create_task(ingest.submit([alert("cart", i) for i in range(8)]))
    await asyncio.sleep(0.01)
    with pytest.raises(Overloaded) as refused:
        await ingest.submit([alert("cart", i) for i in range(8, 12)])
    assert refused.value.retry_after >= 1
    await first
    assert ingest.pending == 0
    assert await ingest.submit([alert("cart", 20)]) == ["cart"]
