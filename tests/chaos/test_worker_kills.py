"""SIGKILL workers at random moments while many incidents go webhook -> approval -> remediation.

Two workers poll the incidents' task queue; every 0.3-1.5 s (at random) one of them, chosen
at random, is SIGKILLed and a new one started, fifty times in all, while incidents open in
a stream so that the kills land in every phase: settling, the agents' activities, the
approval wait, the lock, the playbook (often after its effect and before the activity
completed), verification. Afterwards every incident must finish as remediated, and each
service's restarts.log must hold exactly one line (each execution writes its own, naming its
attempt): no remediation ran twice. Every token minted for these runs is revoked, or is one
that OpenBao will expire within the action's timeout. The kills are random, so where they
land is counted and printed here; tests/chaos/test_kill_points.py aims one at each point.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import statistics
import time
from collections import Counter
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.service import RPCError

from models.constants import SA_PHASE, SIGNAL_APPROVE
from models.incident import ApprovalSignal, Outcome, Phase
from runtime.settings import Settings
from tests.chaos.conftest import (
    Api,
    PoolFactory,
    WorkerPool,
    api_for,
    incident,
    marked_pids,
    query_state,
    restarts,
)
from tests.conftest import VaultServer
from tests.payloads import alertmanager_alert, alertmanager_payload

pytestmark = pytest.mark.integration

KILLS = 50
WORKERS = 2
INCIDENTS = 12
OPEN_EVERY = 2.0  # seconds between new incidents, so kills find them in every phase
KILL_INTERVAL = (0.3, 1.5)
COLD_EVERY = 20  # every 20th replacement is a fresh `python worker.py` (~5 s of CPU), the rest forks
DEADLINE = 360.0  # for the whole run; a crash costs an incident at most an activity timeout (90 s)


async def phase_of(client: Client, incident_id: str) -> str | None:
    """The phase search attribute: readable from the server while no worker is alive."""
    description = await incident(client, incident_id).describe()
    return description.typed_search_attributes.get(SA_PHASE)


async def drive(
    client: Client, api: Api, settings: Settings, service: str, deadline: float, trace: list[str]
) -> Outcome:
    """One incident through the whole loop, the way a person and Alertmanager would."""
    firing = alertmanager_payload(alertmanager_alert("KubePodCrashLooping", service))
    response = await api.post_until_accepted("/alerts/alertmanager", firing)
    (incident_id,) = response.json()["incidents"]
    handle = incident(client, incident_id)

    # Approve once the plan waits for it, with the plan hash the state query shows.
    while True:
        if time.monotonic() > deadline:
            pytest.fail(f"{incident_id} never reached the approval gate; trace: {trace}")
        try:
            if await phase_of(client, incident_id) == Phase.AWAITING_APPROVAL.value:
                state = await query_state(client, incident_id)
                if state.phase == Phase.AWAITING_APPROVAL and state.plan_hash:
                    await handle.signal(
                        SIGNAL_APPROVE,
                        ApprovalSignal(by="chaos", reason="kill test", plan_hash=state.plan_hash),
                    )
                    trace.append(f"{time.monotonic() - deadline + DEADLINE:.1f} {incident_id} approved")
                    break
        except RPCError:
            pass  # the worker that would answer the query was just killed
        await asyncio.sleep(0.3)

    # Once the restart is done, the service recovers: Alertmanager sends the resolution.
    while not restarts(settings, service):
        if time.monotonic() > deadline:
            pytest.fail(f"{incident_id}: the restart never happened; trace: {trace}")
        await asyncio.sleep(0.2)
    resolved = alertmanager_payload(alertmanager_alert("KubePodCrashLooping", service, status="resolved"))
    await api.post_until_accepted("/alerts/alertmanager", resolved)
    result = await asyncio.wait_for(handle.result(), timeout=max(1.0, deadline - time.monotonic()))
    trace.append(f"{time.monotonic() - deadline + DEADLINE:.1f} {incident_id} {result.outcome}")
    return result.outcome


async def killer(pool: WorkerPool, rng: random.Random, trace: list[str]) -> None:
    replacements = 0
    started = time.monotonic()
    while pool.kills < KILLS:
        due = time.monotonic() + rng.uniform(*KILL_INTERVAL)
        while True:
            ready = [w for w in pool.running() if w.ready()]  # also times each startup
            # With no worker polling yet, a kill would only test imports: wait for one.
            if ready and time.monotonic() >= due:
                break
            await asyncio.sleep(0.05)
        victim = rng.choice(ready)
        pool.sigkill(victim)
        replacements += 1
        pool.spawn(cold=replacements % COLD_EVERY == 0)
        cold = " (cold)" if victim.cold else ""
        trace.append(f"{time.monotonic() - started:.1f} kill {pool.kills}: {victim.pid}{cold}")


async def crash_marks(client: Client, incident_ids: list[str]) -> dict[str, int]:
    """Where crashes show in the histories: activities that needed another attempt, task timeouts."""
    marks: Counter[str] = Counter()
    workflow_ids = list(incident_ids)  # remediation children join as they are found
    for workflow_id in workflow_ids:
        try:
            history = await client.get_workflow_handle(workflow_id).fetch_history()
        except RPCError:
            marks["not started"] += 1
            continue
        scheduled: dict[int, str] = {}
        for event in history.events:
            if event.HasField("activity_task_scheduled_event_attributes"):
                scheduled[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
            elif event.HasField("activity_task_started_event_attributes"):
                attrs = event.activity_task_started_event_attributes
                if attrs.attempt > 1:
                    marks[scheduled[attrs.scheduled_event_id]] += attrs.attempt - 1
            elif event.HasField("workflow_task_timed_out_event_attributes"):
                marks["workflow task timeout"] += 1
            elif event.HasField("child_workflow_execution_started_event_attributes"):
                child = event.child_workflow_execution_started_event_attributes.workflow_execution
                workflow_ids.append(child.workflow_id)
    return dict(marks)


async def stuck(client: Client, incident_ids: list[str]) -> str:
    """For a failure message: what each unfinished incident (and its children) waits on."""
    lines: list[str] = []
    queue = list(incident_ids)
    for workflow_id in queue:
        try:
            description = await client.get_workflow_handle(workflow_id).describe()
        except RPCError as exc:
            lines.append(f"{workflow_id}: {exc.message}")
            continue
        raw = description.raw_description
        if description.status is not None and description.status.name != "RUNNING":
            continue
        lines.append(f"{workflow_id}: {description.typed_search_attributes.get(SA_PHASE)}")
        for activity in raw.pending_activities:
            failure = activity.last_failure.message[:120] if activity.HasField("last_failure") else ""
            lines.append(f"  activity {activity.activity_type.name} attempt {activity.attempt} {failure}")
        for child in raw.pending_children:
            lines.append(f"  child {child.workflow_id}")
            queue.append(child.workflow_id)
        if raw.HasField("pending_workflow_task"):
            task = raw.pending_workflow_task
            lines.append(f"  workflow task {task.state} attempt {task.attempt}")
    return "\n".join(lines)


@pytest.mark.timeout(420)  # ~150 s on a quiet box; room for a loaded one
async def test_fifty_worker_sigkills_every_incident_remediated_exactly_once(
    client: Client,
    settings: Settings,
    vault: VaultServer,
    make_pool: PoolFactory,
    chaos_marker: str,
    tmp_path: Path,
) -> None:
    seed = secrets.randbits(32)
    rng = random.Random(seed)
    configured = settings.model_copy(
        update={"settle_seconds": 0.0, "approval_timeout_seconds": 600.0, "verify_window_seconds": 300.0}
    )
    # No workflow cache: a cached incident whose worker dies waits out the sticky queue's 10 s
    # schedule-to-start timeout, so with a kill a second nothing would progress. Uncached,
    # a kill costs only what was in flight, and every workflow task replays the history.
    pool: WorkerPool = make_pool(configured, FIREBREAK_WORKER_MAX_CACHED_WORKFLOWS="0")
    first = [pool.spawn(cold=n == 0) for n in range(WORKERS)]  # one fresh `python worker.py`, one fork
    # Start once one polls: on a loaded box a cold start alone can take a minute.
    startup_deadline = time.monotonic() + 120
    while not any(p.ready() for p in first):
        assert all(p.alive() for p in first), [p.log.read_text()[-2000:] for p in first]
        assert time.monotonic() < startup_deadline, "no worker polled within 120 s"
        await asyncio.sleep(0.1)

    async def same_client() -> Client:
        return client

    run = secrets.token_hex(3)
    services = [f"chaos-{run}-{i}" for i in range(INCIDENTS)]
    trace: list[str] = [f"seed {seed}"]
    deadline = time.monotonic() + DEADLINE
    started = time.monotonic()
    async with api_for(configured, same_client) as api:

        async def staggered(i: int, service: str) -> Outcome:
            await asyncio.sleep(i * OPEN_EVERY)
            return await drive(client, api, configured, service, deadline, trace)

        kills = asyncio.create_task(killer(pool, rng, trace))
        drivers = asyncio.gather(*(staggered(i, s) for i, s in enumerate(services)))
        try:
            await asyncio.wait_for(asyncio.shield(kills), timeout=DEADLINE)
            kill_phase = time.monotonic() - started
            outcomes = await drivers
        except BaseException:
            print(f"\nworkers: {[(w.pid, w.ready()) for w in pool.running()]}; startups {pool.startups}")
            print("\n".join(trace))
            print(await stuck(client, [f"incident-prod-{s}" for s in services]))
            raise
        finally:
            kills.cancel()
            drivers.cancel()
            await asyncio.gather(kills, drivers, return_exceptions=True)
    elapsed = time.monotonic() - started
    cold = [t for c, t in pool.startups if c]
    forked = [t for c, t in pool.startups if not c]
    hits = await crash_marks(client, [f"incident-prod-{s}" for s in services])
    print(
        f"\nseed {seed}: {pool.kills} SIGKILLs in {kill_phase:.0f}s; {INCIDENTS} incidents finished "
        f"{elapsed:.0f}s after the first opened; API statuses {api.statuses}\n"
        f"worker start to polling: cold {statistics.mean(cold or [0]):.1f}s (n={len(cold)}), "
        f"forked {statistics.mean(forked or [0]):.1f}s (n={len(forked)})\n"
        f"what the kills interrupted (retried activity attempts by type, workflow task timeouts): {hits}"
    )

    assert pool.kills >= KILLS
    assert Counter(outcomes) == {Outcome.REMEDIATED: INCIDENTS}, trace
    for service in services:
        lines = restarts(configured, service)
        assert len(lines) == 1, f"{service} restarted {len(lines)} times: {lines}"
        assert f"incident-prod-{service}" in lines[0]
    keys: dict[str, str] = {}
    for service in services:
        state = await query_state(client, f"incident-prod-{service}")
        (remediation,) = [r for r in state.remediations if not r.check_mode]  # not the preview
        assert remediation.status == "successful" and remediation.credential_revoked
        keys[remediation.idempotency_key] = service

    # Where the kills that hit a playbook run landed, read from OpenBao's audit log (tokens
    # per attempt) and the targets' records (the attempt that executed the effect); and no
    # token minted for these runs, by a killed attempt or not, lives on past its TTL.
    landings: Counter[str] = Counter()
    minted = [
        t for t in vault.minted("firebreak-restart-service") if (t.get("metadata") or {}).get("key") in keys
    ]
    for key, service in keys.items():
        token_attempts = {
            int((t.get("metadata") or {}).get("attempt", 0)) for t in minted if t["metadata"]["key"] == key
        }
        effect_attempts = [
            int(line.split("(attempt ", 1)[1].split()[0])
            for line in restarts(configured, service)
            if "(attempt " in line
        ]
        final = max(token_attempts | set(effect_attempts))
        for attempt in range(1, final):
            if attempt not in token_attempts:
                landings["before the credential"] += 1
            elif attempt not in effect_attempts:
                landings["after the credential, before the effect"] += 1
            else:
                landings["after the effect, before completion"] += 1
    revoked = expiring = 0
    for token in minted:
        live = vault.lookup_accessor(str(token["accessor"]))
        if live is None:
            revoked += 1
            continue
        assert not live["renewable"] and 0 < int(live["explicit_max_ttl"]) <= 300, live
        expiring += 1
    print(
        f"playbook attempts killed, by where: {dict(landings)}; tokens revoked {revoked}, expiring {expiring}"
    )

    leftovers = pool.close()
    assert pool.running() == []
    assert marked_pids(chaos_marker) == [], "a worker or one of its children outlived the test"
    # Orphans of killed workers (ansible runs) that cleanup had to hunt, for the record.
    print(f"processes hunted down at cleanup: {len(leftovers)}")
