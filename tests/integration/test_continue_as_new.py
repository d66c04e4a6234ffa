"""Bounded history: an incident flooded with alerts while it waits for approval continues as
new (here every 5 alert signals), carrying its whole state, and approving afterwards works.

The incident is started the way the API starts one (signal-with-start), but with
`max_signals_per_run=5` in its input; later alerts come through the real webhook.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from models.constants import SIGNAL_APPROVE
from models.incident import (
    ApprovalSignal,
    IncidentWorkflowInput,
    Outcome,
    Phase,
    Stage,
)
from tests.integration.conftest import (
    StackFactory,
    awaiting,
    replay_and_keep,
    resolve,
    start_incident,
    unique_service,
)
from tests.payloads import alertmanager_alert, alertmanager_payload
from worker import WORKFLOWS

pytestmark = pytest.mark.integration

FLOOD = 12  # alert signals while waiting: two continue-as-new at 5 per run


async def test_alert_flood_while_awaiting_approval_continues_as_new_with_state_intact(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(approval_timeout_seconds=180, verify_window_seconds=60)
    service = unique_service()
    first_alert = alertmanager_alert("KubePodCrashLooping", service)
    handle = await start_incident(stack, first_alert, max_signals_per_run=5)
    incident_id = handle.id
    before = await stack.wait_for(incident_id, awaiting)
    first_run = handle.result_run_id
    assert before.plan_hash and before.runs == 1 and len(before.previews) == 1
    # A refused answer before the flood: it must survive the new runs as well.
    await handle.signal(SIGNAL_APPROVE, ApprovalSignal(by="mallory", reason="x", plan_hash="stale"))
    await stack.wait_for(incident_id, lambda s: len(s.approvals) == 1)

    for i in range(FLOOD):
        extra = alertmanager_alert(f"HighErrorRate{i}", service, severity="warning")
        response = await stack.post_alertmanager(alertmanager_payload(extra))
        assert response.status_code == 202 and response.json()["incidents"] == [incident_id]

    state = await stack.wait_for(incident_id, lambda s: len(s.alerts) == 1 + FLOOD and s.runs >= 3)
    assert state.phase == Phase.AWAITING_APPROVAL
    assert state.plan_hash == before.plan_hash and state.plan == before.plan
    assert state.alert_signals == 1 + FLOOD, "every signal counted, across runs"
    assert [(a.decision, a.by) for a in state.approvals] == [("refused", "mallory")]
    assert state.previews == before.previews, "the check-mode diff is still the one shown"
    assert state.decisions[: len(before.decisions)] == before.decisions
    moves = [d for d in state.decisions if d.kind == "continue_as_new"]
    assert len(moves) == state.runs - 1 and all("(approval)" in d.summary for d in moves)
    assert stack.restarts(service) == []

    # The first run ended by continuing as new; the latest started from its resume point.
    first_history = await stack.client.get_workflow_handle(incident_id, run_id=first_run).fetch_history()
    assert first_history.events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    await Replayer(workflows=list(WORKFLOWS), data_converter=pydantic_data_converter).replay_workflow(
        first_history
    )
    latest = await handle.describe()
    assert latest.run_id != first_run
    started = (await stack.handle(incident_id).fetch_history()).events[0]
    payload = started.workflow_execution_started_event_attributes.input.payloads[0].data
    resumed = IncidentWorkflowInput.model_validate(json.loads(payload))
    assert resumed.resume is not None and resumed.resume.stage == Stage.APPROVAL
    assert resumed.max_signals_per_run == 5

    # Approving the plan (same hash) works in the new run.
    await stack.handle(incident_id).signal(
        SIGNAL_APPROVE, ApprovalSignal(by="alice", reason="after the flood", plan_hash=before.plan_hash)
    )
    await stack.wait_for(incident_id, lambda s: s.phase == Phase.VERIFYING)
    (line,) = stack.restarts(service)
    assert incident_id in line
    resolved = [
        alertmanager_alert(name, service, status="resolved")
        for name in ["KubePodCrashLooping", *(f"HighErrorRate{i}" for i in range(FLOOD))]
    ]
    response = await stack.post_alertmanager(alertmanager_payload(*resolved))
    assert response.status_code == 202
    result = await stack.handle(incident_id).result()
    assert result.outcome == Outcome.REMEDIATED
    final = await stack.state(incident_id)
    assert len(final.remediations) == 1 and len(stack.restarts(service)) == 1
    assert [(a.decision, a.by) for a in final.approvals] == [("refused", "mallory"), ("approved", "alice")]
    assert final.memory_record == f"{incident_id}@{first_run}", "one memory record for the whole incident"
    await replay_and_keep(stack, incident_id, "continued_as_new")


async def test_settle_and_verify_waits_continue_as_new_too(make_stack: StackFactory) -> None:
    """The same alert again is a duplicate, and still a signal: five of them move the run on."""
    stack = await make_stack(approval_timeout_seconds=120, verify_window_seconds=60)
    service = unique_service()
    alert = alertmanager_alert("KubePodCrashLooping", service)
    handle = await start_incident(stack, alert, max_signals_per_run=5, settle_seconds=20)
    incident_id = handle.id

    async def repeat(times: int) -> None:
        for _ in range(times):
            response = await stack.post_alertmanager(alertmanager_payload(alert))
            assert response.status_code == 202

    await repeat(5)  # while settling (20 s): the settle wait continues as new, keeping its deadline
    state = await stack.wait_for(incident_id, lambda s: s.runs == 2)
    assert state.phase == Phase.SETTLING and state.triage is None
    assert [d.summary for d in state.decisions] == [
        "history bounded: run 1 continues as new while waiting (settle)"
    ]
    assert state.duplicate_alerts == 5 and len(state.alerts) == 1
    started = (await stack.handle(incident_id).fetch_history()).events[0]
    payload = started.workflow_execution_started_event_attributes.input.payloads[0].data
    resume = IncidentWorkflowInput.model_validate(json.loads(payload)).resume
    assert resume is not None and resume.stage == Stage.SETTLE
    assert resume.deadline == state.opened_at + timedelta(seconds=20), "the settle window is not restarted"
    state = await stack.wait_for(incident_id, awaiting, timeout=90)
    assert state.runs == 2 and state.triage is not None

    await stack.handle(incident_id).signal(
        SIGNAL_APPROVE, ApprovalSignal(by="alice", reason="ok", plan_hash=state.plan_hash)
    )
    verifying = await stack.wait_for(incident_id, lambda s: s.phase == Phase.VERIFYING)
    await repeat(5)  # while verifying: the verify wait continues as new with what is left of it
    state = await stack.wait_for(incident_id, lambda s: s.runs == 3)
    assert state.phase == Phase.VERIFYING and state.remediations == verifying.remediations
    assert state.decisions[-1].summary == "history bounded: run 2 continues as new while waiting (verify)"
    await resolve(stack, service)
    assert (await stack.handle(incident_id).result()).outcome == Outcome.REMEDIATED
    assert len(stack.restarts(service)) == 1
