"""Check-mode previews in a storm share Ansible runs and are capped (integrations/previews.py).

The real run_playbook activity, with the worker's admission key, real ansible-runner and a
real OpenBao behind its credentials (a check-mode run asks it for nothing): several admitted
previews at once, each through its own ActivityEnvironment as the worker would run them.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from activities.remediation import RemediationActivities
from integrations.previews import PreviewLimits
from models.agents import ProposedAction
from models.incident import RemediationInput, RemediationResult
from runtime.settings import Settings
from tests.admitted import admission_key, admit, parent_worker, start_admitted
from tests.conftest import VaultServer
from tests.integration.conftest import unique_service
from tests.integration.test_gate_attacks import (
    assert_no_canary,
    canary,
    hostile_values,
    remediation_activities,
)
from worker import build_activities, build_worker

pytestmark = pytest.mark.integration

__all__ = ["canary"]  # the fixture, used by name below

# Wide enough that previews started together always land in one batch, on a loaded box too.
GATHER_SECONDS = 2.0


def activities_with(settings: Settings, vault: VaultServer, limits: PreviewLimits) -> RemediationActivities:
    return remediation_activities(settings, vault, preview_limits=limits)


def preview(settings: Settings, action: str, service: str, **params: Any) -> RemediationInput:
    run = RemediationInput(
        incident_id=f"incident-{service}",
        action=ProposedAction(action=action, params={"service": service, **params}, target=service),
        idempotency_key=secrets.token_hex(16),
        check_mode=True,
    )
    return admit(run, admission_key(settings))


async def run_all(activities: RemediationActivities, runs: list[RemediationInput]) -> list[RemediationResult]:
    """All at once, each in its own activity context, as concurrent activity tasks of a worker."""
    return list(await asyncio.gather(*(ActivityEnvironment().run(activities.run_playbook, r) for r in runs)))


def others(runs: list[RemediationInput], mine: RemediationInput) -> list[str]:
    """What only the other requests carry: their keys, incidents and targets."""
    return [
        value
        for run in runs
        if run is not mine
        for value in (run.idempotency_key, run.incident_id, run.action.target)
    ]


async def test_same_playbook_previews_share_one_run_and_each_sees_only_its_own(
    settings: Settings, vault: VaultServer
) -> None:
    activities = activities_with(settings, vault, PreviewLimits(gather_seconds=GATHER_SECONDS))
    runs = [
        preview(settings, "restart_service", service, reason=f"because {service} is stuck")
        for service in (unique_service() for _ in range(6))
    ]
    results = await run_all(activities, runs)

    assert activities.runner.runs_started == 1, "six previews of one playbook were not one Ansible run"
    for run, result in zip(runs, results, strict=True):
        assert result.status == "successful", result.summary
        assert result.check_mode and result.changed
        assert result.target == run.action.target
        assert result.idempotency_key == run.idempotency_key
        diffs = "\n".join(change.diff for change in result.changes)
        # Its own restart line and its own reason, as the single run shows them...
        assert f"{run.idempotency_key} restarted by firebreak for {run.incident_id}" in diffs
        assert f"because {run.action.target} is stuck" in diffs
        # ...and nothing of any other request's.
        dumped = result.model_dump_json()
        leaked = [value for value in others(runs, run) if value in dumped]
        assert leaked == [], f"{run.action.target}'s result holds other requests' values: {leaked}"
        # Check mode: nothing happened on the target.
        assert not (settings.resolved_target_state_dir() / run.action.target / "restarts.log").exists()


async def test_approval_previews_of_a_storm_through_temporal_share_one_run(
    client: Client, settings: Settings
) -> None:
    """Admitted check-mode RemediationWorkflow children of four incidents, on the real worker
    (its settings, locks, heartbeats): one Ansible run, each child its own target's result."""
    settings = settings.model_copy(update={"preview_gather_seconds": GATHER_SECONDS})
    worker_activities = build_activities(settings)
    assert worker_activities.incident is not None
    (run_playbook,) = [
        f for f in worker_activities.incident.functions if getattr(f, "__name__", "") == "run_playbook"
    ]
    activities: RemediationActivities = run_playbook.__self__  # type: ignore[attr-defined]
    runs = [preview(settings, "restart_service", unique_service()) for _ in range(4)]
    async with build_worker(client, settings, activities=worker_activities), parent_worker(client) as parents:
        handles = [await start_admitted(client, parents, run, settings.task_queue) for run in runs]
        results = await asyncio.gather(*(handle.result() for handle in handles))

    assert activities.runner.runs_started == 1
    for run, result in zip(runs, results, strict=True):
        assert (result.status, result.check_mode, result.target) == ("successful", True, run.action.target)
        assert run.idempotency_key in "\n".join(change.diff for change in result.changes)
        assert [value for value in others(runs, run) if value in result.model_dump_json()] == []


async def test_a_hostile_value_in_one_preview_stays_data_and_stays_its_own(
    settings: Settings, vault: VaultServer, canary: Path
) -> None:
    """Templates, shell and YAML in one preview's free text (and references to the other
    hosts' vars) reach its own diff verbatim, execute nowhere, and appear in no other result."""
    # The catalog bounds `reason` at 200 characters: the template attacks that fit, and short
    # forms of the shell and YAML ones.
    hostile = {name: value for name, value in hostile_values(canary).items() if name.startswith("jinja")}
    hostile["shell"] = f"$(touch {canary}); `touch {canary}`"
    hostile["yaml"] = f"yaml-attack\n- hosts: all\n  tasks: [{{shell: 'touch {canary}'}}]"
    hostile["other-hosts-vars"] = "{{ hostvars['preview-0'].incident_id }} {{ groups['all'] | join(',') }}"
    activities = activities_with(settings, vault, PreviewLimits(gather_seconds=GATHER_SECONDS))
    clean = [preview(settings, "restart_service", unique_service(), reason="clean") for _ in range(2)]
    # Each tagged, so a leak names whose value it was (one attack's text can contain another's).
    dirty = [
        preview(settings, "restart_service", unique_service(), reason=f"<{name}> {value}")
        for name, value in hostile.items()
    ]
    runs = clean + dirty
    results = await run_all(activities, runs)

    assert activities.runner.runs_started == 1
    assert_no_canary(canary)
    for run, result in zip(runs, results, strict=True):
        assert result.status == "successful", result.summary
        diffs = "\n".join(change.diff for change in result.changes)
        reason = run.action.params["reason"]
        assert reason.splitlines()[0] in diffs, f"{reason!r} did not reach its own diff verbatim"
        dumped = result.model_dump_json()
        for other in runs:
            if other is not run and other.action.params["reason"] != "clean":
                assert other.action.params["reason"].splitlines()[0] not in dumped
        assert [value for value in others(runs, run) if value in dumped] == []


async def test_one_failing_host_fails_only_its_own_preview(settings: Settings, vault: VaultServer) -> None:
    activities = activities_with(settings, vault, PreviewLimits(gather_seconds=GATHER_SECONDS))
    services = [unique_service() for _ in range(4)]
    broken = services[1]
    # Its target dir is a file: "Prepare the target's state directory" fails, for it alone.
    targets = settings.resolved_target_state_dir()
    targets.mkdir(parents=True, exist_ok=True)
    (targets / broken).write_text("not a directory\n")
    runs = [preview(settings, "restart_service", service) for service in services]
    results = await run_all(activities, runs)

    assert activities.runner.runs_started == 1
    by_target = {result.target: result for result in results}
    assert by_target[broken].status == "failed"
    assert by_target[broken].failed_tasks == ["Prepare the target's state directory"]
    for service in services:
        if service != broken:
            assert by_target[service].status == "successful", by_target[service].summary
            assert by_target[service].failed_tasks == []
            assert by_target[service].changed


@pytest.mark.parametrize("cap", [1, 2])
async def test_concurrent_preview_runs_never_exceed_the_cap(
    settings: Settings, vault: VaultServer, cap: int
) -> None:
    """Three playbooks' previews cannot share a run: three runs, never more than `cap` at once."""
    activities = activities_with(settings, vault, PreviewLimits(max_concurrent_runs=cap, gather_seconds=0.0))
    runs = [
        preview(settings, "restart_service", unique_service()),
        preview(settings, "scale_service", unique_service(), replicas=3),
        preview(settings, "clear_disk_space", unique_service()),
    ]
    results = await run_all(activities, runs)

    assert [result.status for result in results] == ["successful"] * 3, [r.summary for r in results]
    assert activities.runner.runs_started == 3
    assert 1 <= activities.previews.max_running <= cap


async def test_a_preview_waiting_for_the_cap_keeps_heartbeating(
    settings: Settings, vault: VaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A preview queued behind the cap heartbeats all along, so Temporal does not time it out."""
    monkeypatch.setattr("activities.remediation.HEARTBEAT_INTERVAL_SECONDS", 0.05)
    activities = activities_with(settings, vault, PreviewLimits(max_concurrent_runs=1, gather_seconds=0.0))
    heartbeats: list[dict[str, Any]] = []
    queued = ActivityEnvironment()
    queued.on_heartbeat = lambda *details: heartbeats.append(details[0])
    first = preview(settings, "scale_service", unique_service(), replicas=2)
    second = preview(settings, "restart_service", unique_service())
    results = await asyncio.gather(
        ActivityEnvironment().run(activities.run_playbook, first), queued.run(activities.run_playbook, second)
    )
    assert [r.status for r in results] == ["successful", "successful"]
    assert activities.previews.max_running == 1
    waiting = [beat for beat in heartbeats if beat["task"] == "waiting for a preview slot"]
    # The first run takes a second or more; a beat every 0.05 s while queued behind it.
    assert len(waiting) >= 2, heartbeats


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("preview_max_concurrent_runs", 0),
        ("preview_gather_seconds", -1),
        ("preview_max_batch_hosts", 0),
        ("preview_max_forks", 0),
    ],
)
def test_bad_preview_settings_are_refused_naming_the_setting(field: str, value: float) -> None:
    with pytest.raises(ValidationError, match=field):
        Settings(_env_file=None, **{field: value})  # type: ignore[arg-type]
