"""The policy in real incidents: approver groups, the approval request (check-mode diff and
blast radius from the topology), and blast-radius denial.

Each test runs on a copy of the shipped policies with its own data, so a roster or a limit
here never depends on what data.yaml ships.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.api.sdk.v1 import WorkflowMetadata

from audit.render import render_text
from audit.timeline import build_timeline
from models.constants import SIGNAL_APPROVE, SIGNAL_REJECT
from models.incident import ApprovalSignal, Outcome, Phase
from runtime.settings import PROJECT_ROOT
from tests.integration.conftest import (
    StackFactory,
    awaiting,
    open_incident,
    replay_and_keep,
    resolve,
    unique_service,
)

pytestmark = pytest.mark.integration

# The preview waits this long for others to share its Ansible run: long enough to be seen
# still going at the gate and to answer before it is back, as in a storm.
PREVIEW_HELD_SECONDS = 8.0


def policies_with(directory: Path, **patch: Any) -> Path:
    """A copy of the shipped policies whose data.firebreak has `patch` merged in."""
    shutil.copytree(
        PROJECT_ROOT / "policies", directory, ignore=shutil.ignore_patterns("*.py", "__pycache__")
    )
    data = yaml.safe_load((directory / "data.yaml").read_text())
    data["firebreak"].update(patch)
    (directory / "data.yaml").write_text(yaml.safe_dump(data))
    return directory


def topology_with(path: Path, target: str, dependents: list[str]) -> Path:
    services: dict[str, Any] = {target: {"kind": "service"}}
    services.update({name: {"depends_on": [target]} for name in dependents})
    path.write_text(yaml.safe_dump({"services": services}))
    return path


async def test_an_approver_outside_the_group_is_refused_and_the_gate_stays_open(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    service = unique_service()
    stack = await make_stack(
        policies_dir=policies_with(
            tmp_path / "policies", approvers={"sre": ["alice@example.com"], "sre-leads": ["lead@example.com"]}
        ),
        topology_file=topology_with(tmp_path / "topology.yaml", service, ["storefront", "mobile-api"]),
    )
    incident_id = await open_incident(stack, service)
    state = await stack.wait_for(incident_id, awaiting)
    assert state.policy is not None and state.policy.approver_group == "sre"
    (decision,) = state.policy_decisions
    assert decision.approvers == ["alice@example.com"]
    assert decision.blast_radius is not None and decision.blast_radius.known
    assert decision.blast_radius.services == ["mobile-api", "storefront"]
    # The request shows what would change: the check-mode run, with nothing changed for real.
    (preview,) = state.previews
    assert preview.check_mode and preview.status == "successful" and preview.changed
    assert any(f"restarted by firebreak for {incident_id}" in c.diff for c in preview.changes)
    assert stack.restarts(service) == []
    assert stack.credentials.issued == [], "nothing is minted for a plan nobody approved"

    handle = stack.handle(incident_id)
    await handle.signal(SIGNAL_APPROVE, ApprovalSignal(by="mallory", reason="me", plan_hash=state.plan_hash))
    state = await stack.wait_for(incident_id, lambda s: len(s.approvals) == 1)
    (refused,) = state.approvals
    assert refused.decision == "refused" and refused.by == "mallory"
    assert refused.note == "approved: mallory is not in the approver group for this plan (sre)"
    assert state.phase == Phase.AWAITING_APPROVAL
    assert stack.restarts(service) == [] and stack.credentials.issued == []

    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    details = metadata.current_details
    for expected in (
        "Pending: approval (group `sre`)",
        "**May approve:** alice@example.com",
        "Check mode (`--check --diff`): what would change",
        f"+{preview.idempotency_key} restarted by firebreak for {incident_id}",
        "blast radius: 2 dependent service(s): mobile-api, storefront",
        "mallory: approved: mallory is not in the approver group",
        f'"plan_hash": "{state.plan_hash}"',
    ):
        assert expected in details, f"{expected!r} missing from:\n{details}"

    await handle.signal(
        SIGNAL_APPROVE, ApprovalSignal(by="Alice@Example.com", reason="on call", plan_hash=state.plan_hash)
    )
    await stack.wait_for(incident_id, lambda s: s.phase == Phase.VERIFYING)
    await resolve(stack, service)
    assert (await handle.result()).outcome == Outcome.REMEDIATED
    (line,) = stack.restarts(service)
    assert preview.idempotency_key not in line, "the restart is the approved run, not the preview"
    state = await stack.state(incident_id)
    assert [(a.decision, a.by) for a in state.approvals] == [
        ("refused", "mallory"),
        ("approved", "Alice@Example.com"),
    ]
    assert len(stack.credentials.issued) == 1

    text = render_text(
        incident_id, await build_timeline(await handle.fetch_history(), stack.client.data_converter)
    )
    assert "approver group sre" in text and "runs only with approval (autonomy: approve)" in text
    assert "approve by mallory" in text and "approve by Alice@Example.com" in text


async def test_the_request_goes_out_at_the_verdict_and_nothing_runs_or_closes_before_its_preview(
    make_stack: StackFactory,
) -> None:
    """A storm's previews queue behind each other; the approver is asked at the verdict. An
    answer given while the preview is still going is acted on only once the preview is back:
    an approved plan runs after it, a rejected incident closes with its preview recorded."""
    stack = await make_stack(preview_gather_seconds=PREVIEW_HELD_SECONDS)
    approved, rejected = unique_service(), unique_service()
    incidents = {service: await open_incident(stack, service) for service in (approved, rejected)}
    states = {}
    for service, incident_id in incidents.items():
        state = await stack.wait_for(incident_id, lambda s: s.phase == Phase.AWAITING_APPROVAL)
        assert state.previews == [], "the gate opened before the preview came back"
        metadata = await stack.handle(incident_id).query(
            "__temporal_workflow_metadata", result_type=WorkflowMetadata
        )
        assert "The check-mode run is still going" in metadata.current_details
        states[service] = state

    for service, signal in ((approved, SIGNAL_APPROVE), (rejected, SIGNAL_REJECT)):
        await stack.handle(incidents[service]).signal(
            signal, ApprovalSignal(by="oncall", reason="early", plan_hash=states[service].plan_hash)
        )
    for service in (approved, rejected):
        state = await stack.wait_for(incidents[service], lambda s: s.approvals != [])
        assert state.previews == [] and state.remediations == [] and stack.restarts(service) == []
    assert stack.credentials.issued == [], "no credential while the preview is still going"

    result = await stack.handle(incidents[rejected]).result()
    assert result.outcome == Outcome.REJECTED
    previews = (await stack.state(incidents[rejected])).previews
    assert len(previews) == 1, "the incident closed before its preview came back"
    assert previews[0].check_mode and previews[0].status == "successful"

    state = await stack.wait_for(incidents[approved], lambda s: s.phase == Phase.VERIFYING, timeout=120)
    (preview,) = state.previews
    assert preview.check_mode and preview.status == "successful"
    kinds = [d.kind for d in state.decisions]
    assert kinds.index("preview") < kinds.index("remediation"), kinds
    (line,) = stack.restarts(approved)
    assert preview.idempotency_key not in line, "the restart is the approved run, not the preview"
    assert stack.restarts(rejected) == []
    await resolve(stack, approved)
    assert (await stack.handle(incidents[approved]).result()).outcome == Outcome.REMEDIATED
    await replay_and_keep(stack, incidents[approved], "approved_before_preview")


async def test_too_wide_a_blast_radius_is_denied_before_anything_runs(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    service = unique_service()
    limits = {"limits": {"medium": {"approve_above": 0, "deny_above": 1}}, "unknown": "needs_approval"}
    stack = await make_stack(
        policies_dir=policies_with(tmp_path / "policies", blast_radius=limits),
        topology_file=topology_with(tmp_path / "topology.yaml", service, ["web", "api", "batch"]),
    )
    incident_id = await open_incident(stack, service)
    result = await stack.handle(incident_id).result()
    assert result.outcome == Outcome.DENIED
    assert result.summary == f"blast radius 3 exceeds 1 for a medium-risk action ({service} dependents)"
    state = await stack.state(incident_id)
    assert state.previews == [] and state.remediations == []
    assert stack.restarts(service) == [] and stack.credentials.issued == []
