"""The memory activities on a real Temporal server: payloads round-trip, errors map to their types.

A small probe workflow stands in for the incident workflow (which another change wires):
it retrieves context, records the incident at close, adds feedback, and reads the track record.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel
from temporalio import workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.memory import MemoryActivities
from memory.service import Memory
from memory.store import QdrantStore, StoreConfig
from models.memory import (
    ActionOutcome,
    FeedbackInput,
    FeedbackResult,
    IncidentRecord,
    RecordResult,
    RetrievedContext,
    RetrieveInput,
    TrackRecordInput,
    TrackRecordResult,
)
from policies.catalog import load_catalog
from runtime.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration

TIMEOUT = timedelta(seconds=60)
RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(milliseconds=100))


class ProbeInput(BaseModel):
    retrieve: RetrieveInput
    record: IncidentRecord


class ProbeResult(BaseModel):
    context: RetrievedContext
    recorded: RecordResult
    feedback: FeedbackResult
    track: TrackRecordResult
    unknown_error: str
    unknown_retryable: bool


@workflow.defn(name="MemoryProbe")
class MemoryProbe:
    @workflow.run
    async def run(self, input: ProbeInput) -> ProbeResult:
        context = await workflow.execute_activity_method(
            MemoryActivities.retrieve_context,
            input.retrieve,
            start_to_close_timeout=TIMEOUT,
            retry_policy=RETRY,
        )
        record = input.record.model_copy(update={"cited": context.citations[:2]})
        recorded = await workflow.execute_activity_method(
            MemoryActivities.record_incident, record, start_to_close_timeout=TIMEOUT, retry_policy=RETRY
        )
        feedback = await workflow.execute_activity_method(
            MemoryActivities.record_feedback,
            FeedbackInput(
                incident_id=record.incident_id, useful=True, by="dana", note="quick fix", at=workflow.now()
            ),
            start_to_close_timeout=TIMEOUT,
            retry_policy=RETRY,
        )
        track = await workflow.execute_activity_method(
            MemoryActivities.action_track_record,
            TrackRecordInput(actions=["restart_service"]),
            start_to_close_timeout=TIMEOUT,
            retry_policy=RETRY,
        )
        try:
            await workflow.execute_activity_method(
                MemoryActivities.record_feedback,
                FeedbackInput(incident_id="incident-never", useful=False, by="x", at=workflow.now()),
                start_to_close_timeout=TIMEOUT,
                retry_policy=RETRY,
            )
            unknown, retryable = "", True
        except ActivityError as exc:
            cause = exc.cause
            assert isinstance(cause, ApplicationError)
            unknown, retryable = cause.type or "", not cause.non_retryable
        return ProbeResult(
            context=context,
            recorded=recorded,
            feedback=feedback,
            track=track,
            unknown_error=unknown,
            unknown_retryable=retryable,
        )


async def test_memory_activities_through_a_workflow(client: Client, tmp_path: Path) -> None:
    memory = Memory(QdrantStore(StoreConfig(path=tmp_path / "q")), None)
    memory.knowledge.ingest(
        PROJECT_ROOT / "knowledge", known_actions=load_catalog(PROJECT_ROOT / "playbooks").actions
    )
    activities = MemoryActivities(memory)
    queue = f"memory-{uuid.uuid4()}"
    t0 = datetime(2025, 11, 6, 8, 0, tzinfo=UTC)
    record = IncidentRecord(
        incident_id="incident-prod-cart",
        run_id="run-1",
        opened_at=t0,
        closed_at=t0 + timedelta(minutes=3),
        outcome="remediated",
        alert_names=["KubePodCrashLooping"],
        services=["cart"],
        actions=[
            ActionOutcome(
                action="restart_service", target="cart", status="successful", verified=True, approved_by="lee"
            )
        ],
        time_to_resolve_seconds=180.0,
    )
    async with Worker(
        client,
        task_queue=queue,
        workflows=[MemoryProbe],
        activities=[
            activities.retrieve_context,
            activities.record_incident,
            activities.record_feedback,
            activities.action_track_record,
        ],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        result = await client.execute_workflow(
            MemoryProbe.run,
            ProbeInput(
                retrieve=RetrieveInput(
                    text="cart pods are in CrashLoopBackOff",
                    alert_names=["KubePodCrashLooping"],
                    services=["cart"],
                ),
                record=record,
            ),
            id=f"memory-probe-{uuid.uuid4()}",
            task_queue=queue,
        )
    assert result.context.passages[0].doc_id == "runbook:service-down"
    assert result.context.suggestions[0].action == "restart_service"
    assert result.recorded.record_id == "incident-prod-cart@run-1" and result.recorded.created
    assert [f.note for f in result.feedback.feedback] == ["quick fix"]
    restart = result.track.records["restart_service"]
    assert (restart.incidents, restart.successes, restart.approvals, restart.useful) == (1, 1, 0, 1)
    assert result.unknown_error == "RecordNotFound" and not result.unknown_retryable
    stored = memory.episodes.get("incident-prod-cart")
    assert stored.cited == result.context.citations[:2] and stored.cited[0].startswith(
        "runbook:service-down#"
    )
