"""Fuzz the ingress coalescer with random storms: durable answers, ordered batches, one RPC per key.

Each example plays a random interleaving of webhook requests (several incidents, repeated
fingerprints flipping between firing and resolved) against a delivery that takes a random
time per RPC. Whatever the timing:

- a request is answered only once every one of its alerts was delivered (202 = durable);
- an incident never has two RPCs in flight (they would race on one workflow);
- per incident, batches land in the order the alerts arrived, so the status Temporal saw
  last for each fingerprint is the status sent last.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.coalescer import Coalescer
from models.alert import Alert, AlertBatch, AlertStatus, Severity

KEYS = ["cart", "search", "db"]


def alert(key: str, n: int, status: AlertStatus) -> Alert:
    return Alert(
        fingerprint=f"{key}-{n}",
        status=status,
        name="HighErrorRate",
        service=key,
        severity=Severity.P2,
        starts_at=datetime(2026, 11, 21, tzinfo=UTC),
        source="generic",
    )


class Temporal:
    """Records what landed, and checks that no key has two RPCs at once."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.in_flight: set[str] = set()
        self.landed: dict[str, AlertStatus] = {}  # fingerprint -> last status delivered
        self.rpcs = 0

    async def __call__(self, key: str, batch: AlertBatch) -> None:
        assert key not in self.in_flight, f"two RPCs in flight for {key}"
        self.in_flight.add(key)
        try:
            await asyncio.sleep(self.rng.choice([0, 0.001, 0.003, 0.01]))
            for a in batch.alerts:
                self.landed[a.fingerprint] = a.status
            self.rpcs += 1
        finally:
            self.in_flight.discard(key)


requests = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=0.02),  # when the request arrives
        st.lists(
            st.tuples(st.sampled_from(KEYS), st.integers(0, 3), st.sampled_from(list(AlertStatus))),
            min_size=1,
            max_size=6,
        ),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=300, deadline=None)
@given(requests=requests, seed=st.integers(0, 2**32), max_delay=st.sampled_from([0.0, 0.002, 0.01]))
def test_random_storms(
    requests: list[tuple[float, list[tuple[str, int, AlertStatus]]]], seed: int, max_delay: float
) -> None:
    asyncio.run(storm(requests, seed, max_delay))


async def storm(
    requests: list[tuple[float, list[tuple[str, int, AlertStatus]]]], seed: int, max_delay: float
) -> None:
    temporal = Temporal(random.Random(seed))
    ingest = Coalescer(temporal, max_delay=max_delay, max_batch=10_000)
    sent_last: dict[str, AlertStatus] = {}
    order = sorted(range(len(requests)), key=lambda i: requests[i][0])
    for i in order:  # arrival order decides which status is "last"
        for key, n, status in requests[i][1]:
            sent_last[f"{key}-{n}"] = status

    async def one(at: float, alerts: list[Alert]) -> None:
        await asyncio.sleep(at)
        keys = await ingest.submit(alerts)
        for a in alerts:
            assert a.fingerprint in temporal.landed, "answered before its alert was delivered"
        assert keys == sorted({a.incident_key() for a in alerts})

    # Requests start in arrival order; same-time arrivals keep their order (sleep is FIFO).
    await asyncio.gather(
        *(one(requests[i][0], [alert(k, n, s) for k, n, s in requests[i][1]]) for i in order)
    )
    await ingest.drain()
    assert ingest.pending == 0
    assert temporal.landed == sent_last
    assert temporal.rpcs == ingest.stats.batches <= sum(len(r[1]) for r in requests)
