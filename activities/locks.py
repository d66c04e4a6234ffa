"""Ask a target's lock workflow for the lock (signal-with-start, which workflows cannot do)."""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import activity
from temporalio.client import Client

from models.alert import slug
from models.constants import LOCK_WORKFLOW, LOCK_WORKFLOW_ID_PREFIX, SIGNAL_LOCK_ACQUIRE
from models.locks import LockRequest, LockState


class RequestLockInput(BaseModel):
    target: str
    task_queue: str
    request: LockRequest


def lock_workflow_id(target: str) -> str:
    return LOCK_WORKFLOW_ID_PREFIX + slug(target)


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
