"""Real runs under load: a slot before the credential, and heartbeats through every wait.

A storm of approvals once starved `run_playbook`: real runs held the default thread pool for
their whole playbook, so the next run's OpenBao call queued behind them without a heartbeat
and Temporal cancelled it at the heartbeat timeout (bench_scaleout: 46 of 60 runs failed at
load ~30). Now real runs take one of `max_concurrent_runs` slots before minting anything,
run Ansible on threads of their own, and heartbeat while they wait for a slot or for OpenBao;
OpenBao calls have threads of their own as well, apart from the loop's default pool.

Real ansible-runner and a real OpenBao; OpenBao is made slow by a delay before each call.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Iterator

import pytest
from pydantic import SecretStr
from temporalio.testing import ActivityEnvironment

import activities.remediation as remediation
from activities.remediation import RemediationActivities
from integrations.vault import ActionCredential, ActionCredentials
from models.agents import ProposedAction
from models.catalog import ActionSpec
from models.incident import RemediationInput, RemediationResult
from runtime.settings import Settings
from tests.admitted import admission_key, admit
from tests.conftest import VaultServer
from tests.integration.conftest import unique_service
from tests.integration.test_gate_attacks import remediation_activities

pytestmark = pytest.mark.integration

OPENBAO_DELAY_SECONDS = 1.0


class SlowCredentials(ActionCredentials):
    """The real OpenBao client, slowed down, keeping the order of what it minted and revoked."""

    def __init__(self, addr: str, token: SecretStr) -> None:
        super().__init__(addr, token)
        self.events: list[str] = []
        self._lock = threading.Lock()

    def issue(
        self, spec: ActionSpec, incident_id: str, idempotency_key: str, attempt: int = 1
    ) -> ActionCredential:
        time.sleep(OPENBAO_DELAY_SECONDS)
        credential = super().issue(spec, incident_id, idempotency_key, attempt)
        with self._lock:
            self.events.append(f"issue {incident_id}")
        return credential

    def revoke(self, credential: ActionCredential) -> bool:
        time.sleep(OPENBAO_DELAY_SECONDS)
        with self._lock:
            self.events.append("revoke")
        return super().revoke(credential)


@pytest.fixture
def quick_heartbeats(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(remediation, "HEARTBEAT_INTERVAL_SECONDS", 0.2)
    yield


def real_run(settings: Settings, service: str) -> RemediationInput:
    run = RemediationInput(
        incident_id=f"incident-{service}",
        action=ProposedAction(action="restart_service", params={"service": service}, target=service),
        idempotency_key=secrets.token_hex(16),
    )
    return admit(run, admission_key(settings))


def activities_with(
    settings: Settings, vault: VaultServer, credentials: ActionCredentials, slots: int
) -> RemediationActivities:
    return remediation_activities(settings, vault, credentials, max_concurrent_runs=slots)


async def run_watched(
    activities: RemediationActivities, run: RemediationInput
) -> tuple[RemediationResult, list[str]]:
    """Run one activity as the worker would, keeping the task of every heartbeat it sent."""
    beats: list[str] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.extend(str(d.get("task")) for d in details)
    result: RemediationResult = await env.run(activities.run_playbook, run)
    return result, beats


async def test_a_slow_openbao_call_is_heartbeaten_through(
    settings: Settings, vault: VaultServer, quick_heartbeats: None
) -> None:
    credentials = SlowCredentials(vault.addr, vault.worker_token)
    activities = activities_with(settings, vault, credentials, slots=1)
    service = unique_service()

    result, beats = await run_watched(activities, real_run(settings, service))

    assert (result.status, result.credential_revoked) == ("successful", True)
    # A second of OpenBao at 0.2 s intervals: several beats while minting, and while revoking.
    minting = beats[: beats.index("credential issued")]
    assert minting.count("asking OpenBao for a credential") >= 2, beats
    assert beats.count("revoking") >= 2, beats


async def test_runs_past_the_cap_wait_for_a_slot_holding_no_token(
    settings: Settings, vault: VaultServer, quick_heartbeats: None
) -> None:
    credentials = SlowCredentials(vault.addr, vault.worker_token)
    activities = activities_with(settings, vault, credentials, slots=1)
    services = [unique_service() for _ in range(3)]

    outcomes = await asyncio.gather(*(run_watched(activities, real_run(settings, s)) for s in services))

    assert [result.status for result, _ in outcomes] == ["successful"] * 3
    # One slot: each token is revoked before the next one is minted, never two alive at once.
    assert [event.split()[0] for event in credentials.events] == ["issue", "revoke"] * 3, credentials.events
    waited = [beats for _, beats in outcomes if "waiting for a run slot" in beats]
    assert len(waited) >= 2, [beats[:5] for _, beats in outcomes]
    for beats in waited:  # the wait came before anything was minted for that run
        assert beats.index("waiting for a run slot") < beats.index("asking OpenBao for a credential")
    # Each target restarted exactly once.
    for service in services:
        log = settings.resolved_target_state_dir() / service / "restarts.log"
        assert len(log.read_text().splitlines()) == 1, log.read_text()


async def test_openbao_calls_never_queue_behind_the_default_thread_pool(
    settings: Settings, vault: VaultServer
) -> None:
    """Memory retrieval and log mining run on the event loop's default pool, and a storm can
    fill it. A real run's OpenBao calls (mint, revoke) go on threads of their own: with every
    default thread blocked, the run still mints, restarts once and revokes."""
    activities = remediation_activities(settings, vault)
    service = unique_service()
    release = threading.Event()
    # More blocked calls than any default pool has threads (min(32, cores + 4)).
    blockers = [asyncio.ensure_future(asyncio.to_thread(release.wait, 120)) for _ in range(40)]
    try:
        await asyncio.sleep(0.2)  # the blockers hold every default thread
        result = await asyncio.wait_for(
            ActivityEnvironment().run(activities.run_playbook, real_run(settings, service)), timeout=30
        )
    finally:
        release.set()
        await asyncio.gather(*blockers)
    assert (result.status, result.credential_revoked) == ("successful", True), result.summary
    log = settings.resolved_target_state_dir() / service / "restarts.log"
    assert len(log.read_text().splitlines()) == 1, log.read_text()


def test_a_worker_needs_at_least_one_run_slot(settings: Settings, vault: VaultServer) -> None:
    with pytest.raises(ValueError, match="max_concurrent_runs"):
        activities_with(settings, vault, ActionCredentials(vault.addr, vault.worker_token), slots=0)
