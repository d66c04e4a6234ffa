"""Verification and rollback on real servers: the action runs, the alerts stay, the catalog's
rollback playbook restores what the action changed (its own run, own idempotency key, own
short-lived credential), and the incident escalates with all of it recorded."""

from __future__ import annotations

import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowFailureError

from audit.render import render_text
from audit.timeline import build_timeline
from models.agents import ProposedAction
from models.constants import SIGNAL_APPROVE
from models.incident import ApprovalSignal, Outcome, Phase, RemediationInput, RemediationResult
from tests.admitted import admission_key, admit, parent_worker, start_admitted
from tests.integration.conftest import StackFactory, awaiting, open_incident, unique_service

pytestmark = pytest.mark.integration


async def test_failed_verification_rolls_back_the_scale_and_escalates(make_stack: StackFactory) -> None:
    stack = await make_stack(verify_window_seconds=3)
    service = unique_service()
    target = stack.settings.resolved_target_state_dir() / service
    target.mkdir(parents=True)
    (target / "replicas").write_text("2\n")

    incident_id = await open_incident(stack, service, alertname="HighLatency")
    state = await stack.wait_for(incident_id, awaiting)
    assert state.plan is not None
    (action,) = state.plan.actions
    assert action.action == "scale_service" and action.params["replicas"] == 4
    (preview,) = state.previews
    assert preview.check_mode and preview.rollback_available
    assert any("+4" in c.diff for c in preview.changes), preview.changes
    assert (target / "replicas").read_text() == "2\n", "the check-mode preview changed nothing"

    await stack.handle(incident_id).signal(
        SIGNAL_APPROVE, ApprovalSignal(by="alice", reason="scale out", plan_hash=state.plan_hash)
    )
    await stack.wait_for(incident_id, lambda s: s.phase == Phase.VERIFYING)
    assert (target / "replicas").read_text().strip() == "4"

    # The latency alert never resolves: after the verify window the scale is undone.
    result = await stack.handle(incident_id).result()
    assert result.outcome == Outcome.ESCALATED
    assert "still firing 3s after remediation: HighLatency" in result.summary
    assert "rolled back: scale_service on" in result.summary and "rollback successful" in result.summary
    assert (target / "replicas").read_text().strip() == "2", "the previous replica count is restored"

    state = await stack.state(incident_id)
    (forward,) = state.remediations
    (rollback,) = state.rollbacks
    assert forward.status == "successful" and forward.changed and not forward.check_mode
    assert rollback.status == "successful" and rollback.changed
    assert rollback.rollback_of == forward.idempotency_key
    assert rollback.idempotency_key not in (forward.idempotency_key, preview.idempotency_key)
    assert (target / "applied" / forward.idempotency_key).exists()
    assert (target / "applied" / rollback.idempotency_key).exists()
    # Each real run held its own credential, revoked; the preview held none.
    assert len(stack.credentials.issued) == 2
    assert {forward.credential_accessor, rollback.credential_accessor} == {
        c.accessor for c in stack.credentials.issued
    }
    assert forward.credential_revoked and rollback.credential_revoked
    assert preview.credential_accessor is None

    kinds = [d.kind for d in state.decisions]
    assert kinds.index("verification") < kinds.index("rollback") < kinds.index("close")
    (rolled,) = [d for d in state.decisions if d.kind == "rollback"]
    assert f"undoes run {forward.idempotency_key}" in rolled.reasons[0]

    metadata = await stack.handle(incident_id).query(
        "__temporal_workflow_metadata", result_type=WorkflowMetadata
    )
    assert "**Rollbacks:**" in metadata.current_details
    assert "scale_service rollback on" in metadata.current_details

    text = render_text(
        incident_id,
        await build_timeline(await stack.handle(incident_id).fetch_history(), stack.client.data_converter),
    )
    assert "scale_service rollback on" in text
    assert "(check mode)" in text, "the audit shows the preview run too"


async def test_a_rollback_is_idempotent_on_its_own_key(make_stack: StackFactory) -> None:
    """Re-running a rollback with the same key changes nothing (a retried activity)."""
    stack = await make_stack()
    service = unique_service()
    target = stack.settings.resolved_target_state_dir() / service
    action = ProposedAction(
        action="scale_service", params={"service": service, "replicas": 6}, target=service
    )

    key = admission_key(stack.settings)

    async def run(spec: RemediationInput, name: str) -> RemediationResult:
        async with parent_worker(stack.client) as parents:
            handle = await start_admitted(
                stack.client,
                parents,
                admit(spec.model_copy(update={"incident_id": f"incident-{name}-{service}"}), key),
                stack.settings.task_queue,
                child_id=f"{name}-{service}",
            )
            return await handle.result()

    forward = await run(
        RemediationInput(incident_id="i", action=action, idempotency_key="fwd-" + service), "f"
    )
    assert (target / "replicas").read_text().strip() == "6"
    assert (target / "applied" / f"fwd-{service}.previous").read_text().strip() == "none"
    undo = RemediationInput(
        incident_id="i", action=action, idempotency_key="undo-" + service, rollback_of=forward.idempotency_key
    )
    first = await run(undo, "u1")
    assert first.status == "successful" and first.changed
    assert not (target / "replicas").exists(), "there was no replica count before: it is removed again"
    (target / "replicas").write_text("9\n")  # someone scales by hand afterwards
    again = await run(undo, "u2")
    assert again.status == "successful" and not again.changed
    assert (target / "replicas").read_text() == "9\n", "the same rollback key never acts twice"

    no_rollback = RemediationInput(
        incident_id="i",
        action=ProposedAction(action="restart_service", params={"service": service}, target=service),
        idempotency_key="r-" + service,
        rollback_of="anything",
    )
    with pytest.raises(WorkflowFailureError) as failure:
        await run(no_rollback, "r")
    causes: list[str] = []
    error: BaseException | None = failure.value.cause
    while error is not None:
        causes.append(str(error))
        error = error.__cause__
    assert any("declares no rollback playbook" in c for c in causes), causes
