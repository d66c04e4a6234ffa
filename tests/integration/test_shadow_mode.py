"""Shadow mode and earned autonomy in real incidents.

- `recommend` (shadow): the playbook runs with --check --diff only; the incident records
  what would have changed and closes as `recommended`; memory counts a shadow run.
- Promotion only by rule: four approved successes are not enough, five are (data.yaml);
  the promoted class then runs without an approval, and the change of level is a decision.
- Demotion on failure: a class configured autonomous with a bad record needs approval.

Track records are seeded into the stack's own memory (local Qdrant) before each incident.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowHandle

from memory.service import Memory
from models.incident import Outcome, Phase
from models.memory import ActionOutcome, ApprovalNote, IncidentRecord
from runtime.settings import PROJECT_ROOT, Settings
from tests.integration.conftest import Stack, StackFactory, awaiting, open_incident, resolve, unique_service
from tests.integration.test_policy_flow import policies_with
from tests.payloads import alertmanager_alert, alertmanager_payload

pytestmark = pytest.mark.integration

T0 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
# Scaling at P3 needs an approval outside maintenance windows; these tests are about
# autonomy, not the clock, so their policy data lets it run at any hour.
ANY_HOUR = {
    "windows": [],
    "outside_window": {"scale_service": {"P1": "allow", "P2": "allow", "P3": "allow", "P4": "allow"}},
}


def catalog_with(directory: Path, **autonomy: str) -> Path:
    """A copy of the playbooks whose catalog gives these actions these autonomy levels."""
    shutil.copytree(PROJECT_ROOT / "playbooks", directory)
    catalog = yaml.safe_load((directory / "catalog.yaml").read_text())
    for action, level in autonomy.items():
        catalog["actions"][action]["autonomy"] = level
    (directory / "catalog.yaml").write_text(yaml.safe_dump(catalog))
    return directory


def seed(settings: Settings, action: str, outcomes: list[bool], start: int = 0) -> None:
    """Past incidents in which a human approved `action`: True verified, False failed."""
    memory = Memory.from_settings(settings)
    for i, ok in enumerate(outcomes, start):
        memory.record(
            IncidentRecord(
                incident_id=f"incident-seed-{i}",
                run_id=f"seed-run-{i}",
                opened_at=T0 + timedelta(days=i),
                closed_at=T0 + timedelta(days=i, minutes=12),
                summary=f"seeded history {i}",
                alert_names=[f"SeedAlert{i}"],
                services=[f"seed-{i}"],
                actions=[
                    ActionOutcome(
                        action=action,
                        target=f"seed-{i}",
                        status="successful" if ok else "failed",
                        verified=True if ok else None,
                        approved_by="dana",
                    )
                ],
                approvals=[ApprovalNote(decision="approved", by="dana", at=T0, actions=[action])],
                outcome="remediated" if ok else "escalated",
            )
        )


async def open_p3_latency(stack: Stack, service: str) -> str:
    """A P3 (warning) latency incident: the saturation rule plans scale_service, 4 replicas."""
    alert = alertmanager_alert("HighLatency", service, severity="warning")
    response = await stack.post_alertmanager(alertmanager_payload(alert))
    assert response.status_code == 202, response.text
    (incident_id,) = response.json()["incidents"]
    return str(incident_id)


async def details(handle: WorkflowHandle[Any, Any]) -> str:
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    return str(metadata.current_details)


async def test_shadow_mode_records_what_would_change_and_applies_nothing(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    stack = await make_stack(playbooks_dir=catalog_with(tmp_path / "playbooks", restart_service="recommend"))
    service = unique_service()
    incident_id = await open_incident(stack, service)
    result = await stack.handle(incident_id).result()

    assert result.outcome == Outcome.RECOMMENDED
    assert result.summary.startswith("shadow mode, nothing applied; would change:")
    assert "Restart the service" in result.summary
    assert stack.restarts(service) == [], "shadow mode never applies"
    assert stack.credentials.issued == [], "and never holds a credential"
    state = await stack.state(incident_id)
    assert state.policy is not None and state.policy.mode == "check"
    assert state.approvals == [] and state.previews == []
    (run,) = state.remediations
    assert run.check_mode and run.status == "successful" and run.changed
    (restart,) = [c for c in run.changes if c.task.startswith("Restart the service")]
    assert f"+{run.idempotency_key} restarted by firebreak for {incident_id}" in restart.diff
    assert any(d.kind == "remediation" and d.summary.startswith("shadow:") for d in state.decisions)
    shown = await details(stack.handle(incident_id))
    assert "(shadow: check mode only)" in shown and "```diff" in shown

    # Memory counts it as a shadow run, not a success: it proves nothing about applying.
    (record,) = Memory.from_settings(stack.settings).track_record(["restart_service"]).values()
    assert (record.shadow_runs, record.successes, record.failures) == (1, 0, 0)


async def test_five_approved_successes_promote_a_class_to_autonomous(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    stack = await make_stack(policies_dir=policies_with(tmp_path / "policies", maintenance=ANY_HOUR))
    seed(stack.settings, "scale_service", [True] * 4)

    # Four are not enough (data.yaml: five successes and five approvals, no failure).
    first = unique_service()
    waiting_id = await open_p3_latency(stack, first)
    state = await stack.wait_for(waiting_id, awaiting)
    (decision,) = state.policy_decisions
    assert decision.autonomy is not None and decision.autonomy.change is None
    assert decision.autonomy.progress == [
        "promotion approve -> autonomous needs approvals 4 < 5, successes 4 < 5"
    ]
    assert not any(d.kind == "autonomy" for d in state.decisions)
    await stack.handle(waiting_id).terminate("test: seen waiting")

    seed(stack.settings, "scale_service", [True], start=4)
    service = unique_service()
    incident_id = await open_p3_latency(stack, service)
    state = await stack.wait_for(incident_id, lambda s: s.phase == Phase.VERIFYING)
    assert state.approvals == [] and state.previews == [], "an autonomous class runs without asking"
    replicas = stack.settings.resolved_target_state_dir() / service / "replicas"
    assert replicas.read_text().strip() == "4"
    assert state.policy is not None and state.policy.verdict == "allow"
    assert state.policy.autonomy is not None and state.policy.autonomy.change == "promoted"
    (change,) = [d for d in state.decisions if d.kind == "autonomy"]
    assert change.summary == "scale_service promoted: approve -> autonomous"
    assert change.reasons == [
        "scale_service promoted approve -> autonomous by its track record (approvals 5 >= 5, "
        "failures 0 <= 0, rejections 0 <= 1, successes 5 >= 5, wrong 0 <= 0)"
    ]
    assert "**Autonomy changes:**" in await details(stack.handle(incident_id))

    await resolve(stack, service, alertname="HighLatency")
    assert (await stack.handle(incident_id).result()).outcome == Outcome.REMEDIATED
    assert len(stack.credentials.issued) == 1


async def test_failures_demote_an_autonomous_class_to_approval(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    stack = await make_stack(
        playbooks_dir=catalog_with(tmp_path / "playbooks", scale_service="autonomous"),
        policies_dir=policies_with(tmp_path / "policies", maintenance=ANY_HOUR),
    )
    seed(stack.settings, "scale_service", [True, False, False])
    service = unique_service()
    incident_id = await open_p3_latency(stack, service)
    state = await stack.wait_for(incident_id, awaiting)
    assert state.policy is not None and state.policy.verdict == "needs_approval"
    assert state.policy.autonomy is not None
    assert (state.policy.autonomy.configured, state.policy.autonomy.effective) == ("autonomous", "approve")
    (change,) = [d for d in state.decisions if d.kind == "autonomy"]
    assert change.summary == "scale_service demoted: autonomous -> approve"
    assert "2 failure(s) in 3 run(s), above 0.2" in change.reasons[0]
    assert "**Autonomy changes:**" in await details(stack.handle(incident_id))
    assert not (stack.settings.resolved_target_state_dir() / service / "replicas").exists()
    await stack.handle(incident_id).terminate("test done")
