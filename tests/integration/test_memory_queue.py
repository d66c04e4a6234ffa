"""Memory on its own task queue: an incident worker that cannot serve it, a memory worker that does.

The two roles run as two workers (as `python worker.py --role incident` and `--role memory`
do in two processes), against the session's Temporal server and one Qdrant folder.
"""

from __future__ import annotations

import asyncio

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.client import Client

from memory.service import Memory
from models.constants import memory_task_queue
from policies.catalog import load_catalog
from runtime.settings import PROJECT_ROOT
from tests.integration.conftest import StackFactory, awaiting, open_incident, unique_service
from worker import FirebreakWorker, build_worker

pytestmark = pytest.mark.integration


async def pending_retrieval(
    client: Client, incident_id: str, timeout: float = 60
) -> PendingActivityState.ValueType:
    """The state of the incident's pending retrieve_context, once it is scheduled."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        description = await client.get_workflow_handle(incident_id).describe()
        for pending in description.raw_description.pending_activities:
            if pending.activity_type.name == "retrieve_context":
                return pending.state
        await asyncio.sleep(0.2)
    pytest.fail(f"{incident_id} never scheduled retrieve_context")


async def test_an_incident_gets_its_memory_from_a_separate_memory_worker(
    make_stack: StackFactory, client: Client
) -> None:
    stack = await make_stack(worker_role="incident")
    assert isinstance(stack.worker, FirebreakWorker)
    served = {activity._Definition.must_from_callable(f).name for f in stack.worker.activity_set.functions}
    assert "triage" in served and not served & {"retrieve_context", "record_incident", "action_track_record"}
    assert not stack.worker.companions
    settings = stack.settings
    Memory.from_settings(settings).knowledge.ingest(
        PROJECT_ROOT / "knowledge", known_actions=load_catalog(settings.playbooks_dir).actions
    )

    incident_id = await open_incident(stack, unique_service())
    # Scheduled on the memory queue, which no worker polls yet: it waits there, never started.
    state = await pending_retrieval(client, incident_id)
    assert state == PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED

    memory_worker = build_worker(client, settings.model_copy(update={"worker_role": "memory"}))
    assert memory_worker.config()["task_queue"] == memory_task_queue(settings.task_queue)
    assert not memory_worker.config().get("workflows")
    async with memory_worker:
        incident = await stack.wait_for(incident_id, awaiting)
    assert incident.grounding is not None and incident.grounding.unavailable_reason is None, incident.degraded
    assert any(item.kind == "runbook" for item in incident.grounding.items), incident.grounding
    assert not [r for r in incident.degraded if r.startswith("memory unavailable")], incident.degraded

    history = await stack.handle(incident_id).fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    queues = {a.activity_type.name: a.task_queue.name for a in scheduled}
    assert queues["retrieve_context"] == f"{settings.task_queue}-memory"
    assert queues["triage"] == settings.task_queue
    await stack.handle(incident_id).terminate("test done")
