"""ResourceLockWorkflow: at most one remediation per target, most severe first.

One lock workflow per target (`lock-<target>`). Remediations ask for it with
signal-with-start (through the `request_lock` activity: a workflow cannot signal-with-start),
and the lock answers by signalling `lock_granted` back to the requester. Waiting requests
are ordered by severity, then arrival, so a P1 queued behind a P3 goes first. A grant is a
lease: a holder that neither releases nor finishes within it (its worker died, it was
terminated) loses the lock, which is recorded, so one lost holder cannot block a target
forever. The workflow continues-as-new with its queue before its history grows large.

`LockClient` is the other side, inside the workflow that wants the lock:
`async with lock.hold(target, request, wait):` asks, waits for the grant (or raises
`LockNotGranted` when none comes within `wait`), and releases however the block ends.
The holding workflow routes its `lock_granted` signal to `LockClient.granted`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities import table
    from models.constants import (
        LOCK_WORKFLOW,
        SIGNAL_LOCK_ACQUIRE,
        SIGNAL_LOCK_GRANTED,
        SIGNAL_LOCK_RELEASE,
    )
    from models.locks import (
        LockGrant,
        LockRelease,
        LockRequest,
        LockState,
        RequestLockInput,
        lock_workflow_id,
    )

# How long an idle lock workflow lingers for late requests before it completes.
IDLE_GRACE = timedelta(seconds=5)
MAX_GRANTS_PER_RUN = 200


@workflow.defn(name=LOCK_WORKFLOW)
class ResourceLockWorkflow:
    @workflow.init
    def __init__(self, state: LockState) -> None:
        self._state = state
        self._released: set[str] = set()

    @workflow.signal(name=SIGNAL_LOCK_ACQUIRE)
    def acquire(self, request: LockRequest) -> None:
        state = self._state
        known = {r.request_id for r in state.queue}
        if state.holder is not None:
            known.add(state.holder.request_id)
        if request.request_id in known:
            return  # a retried request activity: already queued or held
        state.queue.append(request.model_copy(update={"seq": state.next_seq}))
        state.next_seq += 1

    @workflow.signal(name=SIGNAL_LOCK_RELEASE)
    def release(self, release: LockRelease) -> None:
        self._released.add(release.request_id)
        self._state.queue = [r for r in self._state.queue if r.request_id != release.request_id]

    @workflow.query
    def lock_state(self) -> LockState:
        return self._state

    @workflow.run
    async def run(self, state: LockState) -> LockState:
        while True:
            if not state.queue:
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(lambda: bool(state.queue), timeout=IDLE_GRACE)
                if not state.queue:
                    await workflow.wait_condition(workflow.all_handlers_finished)
                    if not state.queue:
                        return state
                    continue
            state.queue.sort(key=lambda r: (r.severity_rank, r.seq))
            holder = state.queue.pop(0)
            state.holder = holder
            state.grants += 1
            try:
                await workflow.get_external_workflow_handle(holder.workflow_id).signal(
                    SIGNAL_LOCK_GRANTED, LockGrant(request_id=holder.request_id, target=state.target)
                )
            except Exception as exc:  # the requester is gone: serve the next one
                workflow.logger.warning("could not grant %s: %s", holder.request_id, exc)
                state.holder = None
                continue
            held = holder.request_id
            try:
                await workflow.wait_condition(
                    lambda held=held: held in self._released,  # type: ignore[misc]
                    timeout=timedelta(seconds=holder.lease_seconds),
                )
            except TimeoutError:
                state.expired_leases.append(holder.request_id)
                workflow.logger.warning("lease of %s on %s expired", holder.request_id, state.target)
            self._released.discard(holder.request_id)
            state.holder = None
            if state.grants >= MAX_GRANTS_PER_RUN or workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(state.model_copy(update={"grants": 0}))


class LockNotGranted(Exception):
    """No grant within the wait: another remediation holds the target."""


class LockClient:
    """A workflow's side of a target's lock: `async with lock.hold(...)`."""

    def __init__(self) -> None:
        self._granted: str | None = None

    def granted(self, grant: LockGrant) -> None:
        """Call from the holder's `lock_granted` signal handler."""
        self._granted = grant.request_id

    @contextlib.asynccontextmanager
    async def hold(self, target: str, request: LockRequest, wait: timedelta) -> AsyncIterator[None]:
        """Hold `target`'s lock for the block; `LockNotGranted` if no grant within `wait`."""
        await table.execute(
            table.REQUEST_LOCK,
            RequestLockInput(target=target, task_queue=workflow.info().task_queue, request=request),
        )
        try:
            await workflow.wait_condition(lambda: self._granted == request.request_id, timeout=wait)
        except TimeoutError:
            await self._release(target, request.request_id)
            raise LockNotGranted(target) from None
        try:
            yield
        finally:
            await self._release(target, request.request_id)

    async def _release(self, target: str, request_id: str) -> None:
        try:
            await workflow.get_external_workflow_handle(lock_workflow_id(target)).signal(
                SIGNAL_LOCK_RELEASE, LockRelease(request_id=request_id)
            )
        except Exception as exc:  # the lease expires it anyway
            workflow.logger.warning("could not release lock on %s: %s", target, exc)
