"""Ask a target's lock workflow for the lock (signal-with-start, which workflows cannot do)."""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client

from models.constants import LOCK_WORKFLOW, SIGNAL_LOCK_ACQUIRE
from models.locks import LockState, RequestLockInput, lock_workflow_id


class LockActivities:
    def __init__(self, client: Client) -> None:
        self._client = client

    @activity.defn
    async def request_lock(self, input: RequestLockInput) -> str:
        """Queue the request on the target's lock, starting the lock workflow if needed."""
        handle = await self._client.start_workflow(
            LOCK_WORKFLOW,
            LockState(target=input.target),
            id=lock_workflow_id(input.target),
            task_queue=input.task_queue,
            start_signal=SIGNAL_LOCK_ACQUIRE,
            start_signal_args=[input.request],
        )
        return handle.id
