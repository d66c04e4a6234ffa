"""Delivering a batch of alerts to its incident: signal-with-start on `incident-<key>`.

Shared by the webhook (api/) and the bus consumer (consumer/).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError

from models.alert import AlertBatch
from models.constants import INCIDENT_WORKFLOW, SA_PHASE, SA_SERVICE, SIGNAL_ALERTS, incident_workflow_id
from models.incident import IncidentWorkflowInput, Phase
from runtime.settings import Settings

RPC_TIMEOUT = timedelta(seconds=5)
# The SDK retries an unreachable server for ~10 s inside one call; a sender should hear 503
# sooner than that. Past this bound the batch counts as not accepted (a late success is
# harmless: the retried delivery is deduplicated by fingerprint in the workflow).
DELIVERY_TIMEOUT = RPC_TIMEOUT.total_seconds()
ClientFactory = Callable[[], Awaitable[Client]]


class TemporalGateway:
    """Holds the Temporal client, reconnecting lazily after an outage."""

    def __init__(self, factory: ClientFactory) -> None:
        self._factory = factory
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def client(self) -> Client:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    self._client = await self._factory()
        return self._client

    async def reachable(self) -> tuple[bool, str]:
        try:
            client = await self.client()
            await client.service_client.check_health(timeout=timedelta(seconds=2))
        except (RPCError, RuntimeError, OSError) as exc:
            return False, f"unreachable: {type(exc).__name__}"
        return True, "reachable"


async def signal_with_start(client: Client, settings: Settings, key: str, batch: AlertBatch) -> None:
    first = batch.alerts[0]
    service = first.service
    await client.start_workflow(
        INCIDENT_WORKFLOW,
        IncidentWorkflowInput(
            key=key,
            settle_seconds=settings.settle_seconds,
            approval_timeout_seconds=settings.approval_timeout_seconds,
            verify_window_seconds=settings.verify_window_seconds,
        ),
        id=incident_workflow_id(key),
        task_queue=settings.task_queue,
        start_signal=SIGNAL_ALERTS,
        start_signal_args=[batch],
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(SA_SERVICE, service[:256]),
                SearchAttributePair(SA_PHASE, Phase.SETTLING.value),
            ]
        ),
        # The Temporal UI shows it in the workflow list and as the incident's Summary.
        static_summary=f"{first.severity} {first.name} on {service}"[:200],
        rpc_timeout=RPC_TIMEOUT,
    )
