"""Bounded history: an incident flooded with alerts while it waits for approval continues as
new (here every 5 alert signals), carrying its whole state, and approving afterwards works.

The incident is started the way the API starts one (signal-with-start), but with
`max_signals_per_run=5` in its input; later alerts come through the real webhook.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from models.alert import AlertBatch, AlertmanagerPayload
from models.constants import INCIDENT_WORKFLOW, SIGNAL_ALERTS, SIGNAL_APPROVE, incident_workflow_id
from models.incident import ApprovalSignal, IncidentWorkflowInput, Outcome, Phase, Stage
from tests.integration.conftest import StackFactory, awaiting, replay_and_keep, unique_service
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
    alerts = AlertmanagerPayload.model_validate(alertmanager_payload(first_alert)).to_alerts()
    key = alerts[0].incident_key()
    handle = await stack.client.start_workflow(
        INCIDENT_WORKFLOW,
        IncidentWorkflowInput(
            key=key,
            settle_seconds=stack.settings.settle_seconds,
            approval_timeout_seconds=stack.settings.approval_timeout_seconds,
            verify_window_seconds=stack.settings.verify_window_seconds,
            max_signals_per_run=5,
        ),
        id=incident_workflow_id(key),
        task_queue=stack.settings.task_queue,
        start_signal=SIGNAL_ALERTS,
        start_signal_args=[AlertBatch(alerts=alerts, received_at=datetime.now(UTC))],
    )
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
    verifying = await stack.wait_for(incident_id, lambda s: s.phase == Phase.VERIFYING)
    (line,) = stack.restarts(service)
    assert incident_id in line
    # More signals while verifying (the same alert again: a duplicate, still a signal): the
    # verify wait continues as new too, with what is left of its window.
    for _ in range(5):
        response = await stack.post_alertmanager(alertmanager_payload(first_alert))
        assert response.status_code == 202
    state = await stack.wait_for(incident_id, lambda s: s.runs > verifying.runs)
    assert state.phase == Phase.VERIFYING and state.remediations == verifying.remediations
    assert state.decisions[-1].kind == "continue_as_new" and "(verify)" in state.decisions[-1].summary
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
