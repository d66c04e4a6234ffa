"""The incident spine end to end on real servers.

Webhook (the real ASGI app) -> Temporal dev server -> IncidentWorkflow -> Rego policy ->
approval signal -> RemediationWorkflow -> ansible-runner playbook with a token minted by a
real OpenBao -> verification -> close. The demo playbook's effect (restarts.log on the
local target) is what the tests observe.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import hvac
import hvac.exceptions
import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata

from models.constants import SIGNAL_APPROVE, SIGNAL_REJECT
from models.incident import ApprovalSignal, Outcome, Phase
from runtime.settings import PROJECT_ROOT
from tests.conftest import VaultServer, vault_client
from tests.integration.conftest import (
    StackFactory,
    awaiting,
    open_incident,
    replay_and_keep,
    resolve,
    unique_service,
)
from tests.payloads import alertmanager_alert, alertmanager_payload
from tests.secret_scan import stored_text

pytestmark = pytest.mark.integration


async def test_approved_incident_runs_playbook_once_with_short_lived_credential(
    make_stack: StackFactory, vault: VaultServer
) -> None:
    stack = await make_stack()
    service = unique_service()
    incident_id = await open_incident(stack, service)
    assert incident_id == f"incident-prod-{service}"

    state = await stack.wait_for(incident_id, awaiting)
    assert state.plan is not None and state.plan_hash
    assert state.plan.actions[0].action == "restart_service"
    assert state.plan.actions[0].params == {"service": service}
    assert state.policy is not None and state.policy.verdict == "needs_approval"
    assert stack.restarts(service) == [], "nothing may run before approval"

    # The Temporal UI's "Current Details" show the pending decision and the exact signal.
    metadata = await stack.handle(incident_id).query(
        "__temporal_workflow_metadata", result_type=WorkflowMetadata
    )
    details = metadata.current_details
    assert "Pending: approval" in details
    assert f'"plan_hash": "{state.plan_hash}"' in details
    assert "`approve`" in details and "`reject`" in details
    assert f"restart_service` on `{service}`" in details
    signals = {d.name for d in metadata.definition.signal_definitions}
    assert {"alerts", "approve", "reject"} <= signals

    await stack.handle(incident_id).signal(
        SIGNAL_APPROVE,
        ApprovalSignal(by="alice@example.com", reason="looks right", plan_hash=state.plan_hash),
    )
    state = await stack.wait_for(incident_id, lambda s: s.phase == Phase.VERIFYING)
    (line,) = stack.restarts(service)
    assert incident_id in line

    await resolve(stack, service)
    result = await stack.handle(incident_id).result()
    assert result.outcome == Outcome.REMEDIATED
    state = await stack.state(incident_id)
    (remediation,) = state.remediations
    assert remediation.status == "successful" and remediation.changed
    assert [a.by for a in state.approvals] == ["alice@example.com"]
    assert len(stack.restarts(service)) == 1, "the side effect happened exactly once"

    # The credential: minted once, TTL within the action's timeout, revoked, dead.
    (credential,) = stack.credentials.issued
    assert state.plan is not None
    assert credential.ttl_seconds <= state.plan.actions[0].timeout_seconds
    assert remediation.credential_accessor == credential.accessor
    assert remediation.credential_revoked
    with (
        vault_client(vault.addr, credential.token.get_secret_value()) as revoked,
        pytest.raises(hvac.exceptions.Forbidden),
    ):
        revoked.auth.token.lookup_self()

    # No credential value anywhere in the history (the audit log) or in the results.
    await replay_and_keep(stack, incident_id, "approved_remediated")
    # Every payload decoded (tests/secret_scan.py), not the base64 of to_json().
    history = await stored_text(await stack.handle(incident_id).fetch_history())
    assert remediation.credential_accessor in history, "the scan reads the decoded results"
    token = credential.token.get_secret_value()
    assert token not in history
    assert vault.worker_token.get_secret_value() not in history
    assert token not in state.model_dump_json()
    with vault.root() as root:
        secret = root.secrets.kv.v2.read_secret_version(
            path="firebreak/actions/restart_service",
            mount_point="secret",
            raise_on_deleted_version=True,
        )["data"]["data"]["api_key"]
    assert secret not in history
    # ... nor left on the target or in any file the run wrote.
    for path in stack.settings.resolved_target_state_dir().rglob("*"):
        if path.is_file():
            assert token not in path.read_text()


async def test_rejected_incident_never_runs_playbook(make_stack: StackFactory) -> None:
    stack = await make_stack()
    service = unique_service()
    incident_id = await open_incident(stack, service)
    state = await stack.wait_for(incident_id, awaiting)
    await stack.handle(incident_id).signal(
        SIGNAL_REJECT,
        ApprovalSignal(by="bob", reason="deploy in progress", plan_hash=state.plan_hash),
    )
    result = await stack.handle(incident_id).result()
    await replay_and_keep(stack, incident_id, "rejected")
    assert result.outcome == Outcome.REJECTED
    assert "bob" in result.summary and "deploy in progress" in result.summary
    assert stack.restarts(service) == []
    assert stack.credentials.issued == []


async def test_stale_plan_hash_is_refused_and_gate_stays_open(make_stack: StackFactory) -> None:
    stack = await make_stack()
    service = unique_service()
    incident_id = await open_incident(stack, service)
    state = await stack.wait_for(incident_id, awaiting)
    await stack.handle(incident_id).signal(
        SIGNAL_APPROVE, ApprovalSignal(by="mallory", reason="yolo", plan_hash="0000")
    )
    state = await stack.wait_for(incident_id, lambda s: len(s.approvals) == 1)
    assert state.phase == Phase.AWAITING_APPROVAL
    assert state.approvals[0].decision == "refused" and state.approvals[0].by == "mallory"
    assert stack.restarts(service) == []
    await stack.handle(incident_id).signal(
        SIGNAL_REJECT, ApprovalSignal(by="carol", reason="cleanup", plan_hash=state.plan_hash)
    )
    assert (await stack.handle(incident_id).result()).outcome == Outcome.REJECTED


async def test_approval_timeout_escalates_without_acting(make_stack: StackFactory) -> None:
    stack = await make_stack(approval_timeout_seconds=2)
    service = unique_service()
    incident_id = await open_incident(stack, service)
    result = await stack.handle(incident_id).result()
    assert result.outcome == Outcome.ESCALATED
    assert "no approval within" in result.summary
    assert stack.restarts(service) == []
    assert stack.credentials.issued == []


async def test_policy_deny_never_runs(make_stack: StackFactory, tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(PROJECT_ROOT / "policies", policies, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (policies / "data.yaml").write_text(
        "firebreak:\n  deny_list:\n    actions: [restart_service]\n    targets: []\n"
        "  approver_groups: {low: sre, medium: sre, high: sre-leads}\n"
    )
    stack = await make_stack(policies_dir=policies)
    service = unique_service()
    incident_id = await open_incident(stack, service)
    result = await stack.handle(incident_id).result()
    assert result.outcome == Outcome.DENIED
    assert "deny list" in result.summary
    state = await stack.state(incident_id)
    assert state.policy is not None and state.policy.verdict == "deny"
    assert stack.restarts(service) == []
    assert stack.credentials.issued == []


async def test_same_webhook_three_times_is_one_incident(make_stack: StackFactory) -> None:
    stack = await make_stack(approval_timeout_seconds=60)
    service = unique_service()
    payload = alertmanager_payload(
        alertmanager_alert("KubePodCrashLooping", service),
        alertmanager_alert("HighErrorRate", service, severity="warning"),
    )
    ids = set()
    for _ in range(3):
        response = await stack.post_alertmanager(payload)
        assert response.status_code == 202, response.text
        ids.update(response.json()["incidents"])
    (incident_id,) = ids
    state = await stack.wait_for(incident_id, lambda s: s.alert_signals == 3)
    assert len(state.alerts) == 2
    assert state.duplicate_alerts == 4
    await stack.handle(incident_id).terminate("test done")


async def test_alerts_resolving_within_settle_window_close_as_transient(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(settle_seconds=5)
    service = unique_service()
    incident_id = await open_incident(stack, service)
    await resolve(stack, service)
    result = await stack.handle(incident_id).result()
    assert result.outcome == Outcome.TRANSIENT
    state = await stack.state(incident_id)
    assert state.triage is None, "a transient incident is not even triaged"
    assert stack.restarts(service) == []


async def test_resolution_while_awaiting_approval_withdraws_request(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack()
    service = unique_service()
    incident_id = await open_incident(stack, service)
    await stack.wait_for(incident_id, awaiting)
    await resolve(stack, service)
    result = await stack.handle(incident_id).result()
    assert result.outcome == Outcome.SELF_RESOLVED
    assert "withdrawn" in result.summary
    assert stack.restarts(service) == []


async def test_unknown_alert_escalates_with_reason(make_stack: StackFactory) -> None:
    stack = await make_stack()
    service = unique_service()
    incident_id = await open_incident(stack, service, alertname="QuantumFluxCapacitorDrift")
    result = await stack.handle(incident_id).result()
    assert result.outcome == Outcome.ESCALATED
    assert "no rule covers QuantumFluxCapacitorDrift" in result.summary


async def test_new_alerts_for_incident_in_progress_are_recorded(make_stack: StackFactory) -> None:
    stack = await make_stack()
    service = unique_service()
    incident_id = await open_incident(stack, service)
    first = await stack.wait_for(incident_id, awaiting)
    response = await stack.post_alertmanager(
        alertmanager_payload(alertmanager_alert("HighErrorRate", service, severity="warning"))
    )
    assert response.json()["incidents"] == [incident_id]
    state = await stack.wait_for(incident_id, lambda s: len(s.alerts) == 2)
    assert state.phase == Phase.AWAITING_APPROVAL and state.plan_hash == first.plan_hash
    description = await stack.handle(incident_id).describe()
    assert description.run_id == (await stack.handle(incident_id).describe()).run_id
    await stack.handle(incident_id).terminate("test done")


async def test_history_json_is_valid(make_stack: StackFactory) -> None:
    stack = await make_stack(approval_timeout_seconds=1)
    incident_id = await open_incident(stack, unique_service())
    await stack.handle(incident_id).result()
    history = json.loads((await stack.handle(incident_id).fetch_history()).to_json())
    assert history["events"][0]["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED"


async def test_unusable_memory_folder_degrades_the_incident_and_says_so(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    """Qdrant's local folder cannot be written (a file where its parent should be: unwritable
    even for root). The incident still gets a plan and a human decision, and says what it lacks."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    stack = await make_stack(qdrant_path=blocker / "qdrant")
    service = unique_service()
    incident_id = await open_incident(stack, service)
    state = await stack.wait_for(incident_id, awaiting)
    memory_down = [r for r in state.degraded if r.startswith("memory unavailable")]
    assert memory_down and "local Qdrant folder" in memory_down[0], state.degraded
    assert str(blocker) in memory_down[0]
    assert state.grounding is not None and state.grounding.unavailable_reason == memory_down[0]
    assert state.proposal is not None and state.proposal.actions, "no plan without memory"
    context = next(d for d in state.decisions if d.kind == "context")
    assert memory_down[0] in context.reasons

    await stack.handle(incident_id).signal(
        SIGNAL_APPROVE, ApprovalSignal(by="erin", reason="restart", plan_hash=state.plan_hash)
    )
    await stack.wait_for(incident_id, lambda s: s.phase == Phase.VERIFYING)
    await resolve(stack, service)
    assert (await stack.handle(incident_id).result()).outcome == Outcome.REMEDIATED
    closed = await stack.state(incident_id)
    assert closed.memory_record is None
    assert any(r.startswith("episodic memory not written") for r in closed.degraded), closed.degraded


async def test_context_is_gathered_and_the_next_incident_cites_the_last(make_stack: StackFactory) -> None:
    """Prometheus is absent here: diagnosis goes on, degraded, and says so. Memory remembers."""
    stack = await make_stack()
    service = unique_service()
    first_id = await open_incident(stack, service)
    state = await stack.wait_for(first_id, awaiting)
    assert any("Prometheus" in reason for reason in state.degraded), state.degraded
    assert state.grounding is not None and state.grounding.unavailable_reason is None
    assert any(d.kind == "context" for d in state.decisions)
    await stack.handle(first_id).signal(
        SIGNAL_APPROVE, ApprovalSignal(by="erin", reason="runbook says restart", plan_hash=state.plan_hash)
    )
    await stack.wait_for(first_id, lambda s: s.phase == Phase.VERIFYING)
    await resolve(stack, service)
    assert (await stack.handle(first_id).result()).outcome == Outcome.REMEDIATED
    first = await stack.state(first_id)
    assert first.memory_record is not None and first.memory_record.startswith(first_id + "@")

    # The same failure again: a new run of the same incident id, grounded in the first.
    second_id = await open_incident(stack, service)
    assert second_id == first_id
    second = await stack.wait_for(
        second_id, lambda s: s.phase == Phase.AWAITING_APPROVAL and s.memory_record is None
    )
    assert second.grounding is not None
    past = [i for i in second.grounding.items if i.kind == "incident"]
    assert [i.id for i in past] == [first.memory_record]
    assert past[0].succeeded == ["restart_service"] and past[0].approved_by == "erin"
    assert second.proposal is not None and first.memory_record in second.proposal.citations
    await stack.handle(second_id).terminate("test done")
