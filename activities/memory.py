"""Memory activities: retrieve context for a plan, record a closed incident, feedback, track records.

Qdrant calls and embeddings are blocking and CPU-bound, so each runs in a thread. Errors
map to Temporal error types named after the memory errors: `StoreBusy` and
`StoreUnavailable` are retryable (local mode's folder is held by another process, or the
server is down); the rest are not.

The first call in a process may load the dense model (seconds): give `retrieve_context`
a start-to-close timeout of a minute or more, or call `Memory.warm()` at worker start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from temporalio import activity

from activities.errors import to_application_error
from memory.errors import MemoryStoreError
from memory.service import Memory
from models.memory import (
    FeedbackInput,
    FeedbackResult,
    IncidentRecord,
    RecordResult,
    RetrievedContext,
    RetrieveInput,
    TrackRecordInput,
    TrackRecordResult,
)

T = TypeVar("T")


async def _run(fn: Callable[[], T]) -> T:
    try:
        return await asyncio.to_thread(fn)
    except MemoryStoreError as exc:
        raise to_application_error(exc) from None


class MemoryActivities:
    def __init__(self, memory: Memory) -> None:
        self._memory = memory

    @activity.defn
    async def retrieve_context(self, input: RetrieveInput) -> RetrievedContext:
        """Top runbook and post-mortem passages, similar past incidents, and actions ranked from both."""
        return await _run(lambda: self._memory.retrieve(input))

    @activity.defn
    async def record_incident(self, record: IncidentRecord) -> RecordResult:
        """Write the closed incident into episodic memory (an upsert: safe to retry)."""
        return await _run(lambda: self._memory.record(record))

    @activity.defn
    async def record_feedback(self, input: FeedbackInput) -> FeedbackResult:
        """Add a human's judgement to an incident's record; the same note twice counts once."""
        return await _run(lambda: self._memory.feedback(input))

    @activity.defn
    async def action_track_record(self, input: TrackRecordInput) -> TrackRecordResult:
        """Per action class: incidents, successes, failures, rejections, approvals, feedback."""
        records = await _run(lambda: self._memory.track_record(input.actions))
        return TrackRecordResult(records=records)
