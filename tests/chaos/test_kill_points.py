"""SIGKILL the worker at each point of a remediation that matters for exactly-once and for
credentials, on purpose rather than by chance, and check where each kill really landed.

The three points, each on a worker (subprocess) and task queue of its own, side by side:
- before the credential: run_playbook has started and OpenBao has minted nothing for the
  run (the worker reaches OpenBao through a local proxy that holds each new connection for
  a moment, so this window is wide enough to hit);
- after the credential, before the effect: OpenBao minted the attempt's token and Temporal
  holds the accessor in the attempt's heartbeat, and the target shows no effect yet;
- after the effect, before completion: the target's record shows this attempt's effect.

Where a kill landed is read back from evidence, not from intent: OpenBao's audit log (the
tokens minted per run and attempt), the target's record (one line per execution, naming
its attempt) and the activity's attempts. Then: each action's effect happened exactly
once, and every token minted for it, by the killed attempt too, is revoked (asked of
OpenBao), because the retry revokes what the killed attempt's heartbeat named.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client

from models.agents import ProposedAction
from models.incident import RemediationInput
from runtime.settings import Settings
from tests.admitted import admission_key, admit, parent_worker, start_admitted
from tests.chaos.conftest import PoolFactory, WorkerPool, WorkerProcess, restarts
from tests.conftest import VaultServer, free_port

pytestmark = pytest.mark.integration

ROLE = "firebreak-restart-service"
VAULT_HOLD_SECONDS = 2.0
POINTS = (
    "before the credential",
    "after the credential, before the effect",
    "after the effect, before completion",
)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


@contextlib.asynccontextmanager
async def slow_vault(addr: str) -> AsyncIterator[str]:
    """A TCP proxy to OpenBao that holds every new connection for VAULT_HOLD_SECONDS."""
    upstream = urlsplit(addr)
    assert upstream.hostname and upstream.port

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(VAULT_HOLD_SECONDS)
        try:
            up_reader, up_writer = await asyncio.open_connection(upstream.hostname, upstream.port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    port = free_port()
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


@dataclass
class Case:
    point: str
    service: str
    run: RemediationInput
    child_id: str


def effect_attempts(settings: Settings, case: Case) -> list[int]:
    """The attempts whose execution of the effect the target recorded."""
    return [
        int(line.split("(attempt ", 1)[1].split()[0])
        for line in restarts(settings, case.service)
        if line.startswith(case.run.idempotency_key) and "(attempt " in line
    ]


def tokens_for(vault: VaultServer, key: str) -> list[dict[str, Any]]:
    return [t for t in vault.minted(ROLE) if (t.get("metadata") or {}).get("key") == key]


async def pending_playbook(client: Client, child_id: str) -> tuple[int, dict[str, Any]] | None:
    """The running run_playbook attempt of the child and its last heartbeat, if one runs."""
    try:
        description = await client.get_workflow_handle(child_id).describe()
    except Exception:
        return None
    for pending in description.raw_description.pending_activities:
        if (
            pending.activity_type.name == "run_playbook"
            and pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
        ):
            details: dict[str, Any] = {}
            if pending.heartbeat_details.payloads:
                with contextlib.suppress(ValueError):
                    details = json.loads(pending.heartbeat_details.payloads[-1].data)
            return pending.attempt, details
    return None


async def reached(client: Client, vault: VaultServer, settings: Settings, case: Case) -> bool:
    """Whether attempt 1 of the case's run stands exactly at the case's point now."""
    key = case.run.idempotency_key
    running = await pending_playbook(client, case.child_id)
    if running is None or running[0] != 1:
        return False
    minted = tokens_for(vault, key)
    effects = effect_attempts(settings, case)
    if case.point == POINTS[0]:
        return not minted and not effects
    if case.point == POINTS[1]:
        return bool(minted) and running[1].get("accessor") is not None and not effects
    return effects == [1]


def landed(vault: VaultServer, settings: Settings, case: Case) -> str:
    """Where the kill of attempt 1 landed, from what OpenBao and the target recorded."""
    attempts = {
        str((t.get("metadata") or {}).get("attempt")) for t in tokens_for(vault, case.run.idempotency_key)
    }
    if "1" not in attempts:
        return POINTS[0]
    if 1 not in effect_attempts(settings, case):
        return POINTS[1]
    return POINTS[2]


@pytest.mark.timeout(300)
async def test_a_kill_at_each_point_costs_no_second_effect_and_no_live_token(
    client: Client, settings: Settings, vault: VaultServer, make_pool: PoolFactory
) -> None:
    key = admission_key(settings)
    cases: list[Case] = []
    for point in POINTS:
        service = f"killpoint-{secrets.token_hex(3)}"
        run = RemediationInput(
            incident_id=f"incident-{service}",
            action=ProposedAction(action="restart_service", params={"service": service}, target=service),
            idempotency_key=secrets.token_hex(16),
        )
        cases.append(
            Case(point=point, service=service, run=admit(run, key), child_id=f"remediation-{service}")
        )

    async with slow_vault(vault.addr) as proxy, parent_worker(client) as parents:
        pools = []
        for case in cases:
            queue = f"{settings.task_queue}-{case.service}"
            pool = make_pool(settings.model_copy(update={"task_queue": queue, "vault_addr": proxy}))
            worker = pool.spawn(cold=False)
            await pool.wait_ready(worker)
            pools.append((pool, worker, queue))

        async def one(case: Case, pool_worker_queue: tuple[WorkerPool, WorkerProcess, str]) -> str:
            pool, worker, queue = pool_worker_queue
            handle = await start_admitted(client, parents, case.run, queue, child_id=case.child_id)
            deadline = time.monotonic() + 120
            while not await reached(client, vault, settings, case):
                assert time.monotonic() < deadline, f"{case.point}: never reached"
                await asyncio.sleep(0.02)
            pool.sigkill(worker)
            where = landed(vault, settings, case)
            pool.spawn(cold=False)
            result = await asyncio.wait_for(handle.result(), timeout=150)
            assert result.status == "successful", result.summary
            return where

        where = await asyncio.gather(*(one(c, p) for c, p in zip(cases, pools, strict=True)))

    counts = {point: where.count(point) for point in POINTS}
    print(f"\nkills landed: {counts}")
    assert counts == dict.fromkeys(POINTS, 1), f"each kill landed where it was aimed: {where}"
    for case in cases:
        effects = effect_attempts(settings, case)
        assert len(effects) == 1, (
            f"{case.point}: the effect ran {len(effects)} times: {restarts(settings, case.service)}"
        )
        minted = tokens_for(vault, case.run.idempotency_key)
        attempts = sorted(str((t.get("metadata") or {}).get("attempt")) for t in minted)
        # Killed before the credential, attempt 1 may still have a request in flight that
        # OpenBao answers after the worker died: a token nobody holds, which the retry
        # cannot name (no heartbeat carried its accessor). It must then expire on its own.
        assert attempts in (["1", "2"], ["2"]) if case.point == POINTS[0] else attempts == ["1", "2"], (
            attempts
        )
        for token in minted:
            accessor = str(token["accessor"])
            attempt = str((token.get("metadata") or {}).get("attempt"))
            live = vault.lookup_accessor(accessor)
            if live is None:
                continue  # revoked: by its own attempt, or by the retry that read the heartbeat
            assert case.point == POINTS[0] and attempt == "1", (
                f"{case.point}: the token of attempt {attempt} is alive; the retry should have revoked it"
            )
            assert not live["renewable"] and 0 < int(live["explicit_max_ttl"]) <= 300, live
            assert 0 < int(live["ttl"]) <= 300, f"it expires within its TTL: {live}"
