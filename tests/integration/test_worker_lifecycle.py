"""The worker owns its activities' connection pools: they close however it stops."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest
from temporalio.client import Client

from activities.agents import AgentActivities
from activities.notify import NotifyActivities
from activities.telemetry import TelemetryActivities
from runtime.settings import Settings
from tests.fake_anthropic import FakeAnthropic
from tests.integration.conftest import claude_settings
from worker import build_worker

pytestmark = pytest.mark.integration


def closed_check(http: httpx.AsyncClient) -> Callable[[], bool]:
    return lambda: http.is_closed


def pools(worker_functions: list[object]) -> dict[str, Callable[[], bool]]:
    """Whether each HTTP pool behind the worker's activities is closed, by owner (internals)."""
    found: dict[str, Callable[[], bool]] = {}
    for function in worker_functions:
        owner = getattr(function, "__self__", None)
        if isinstance(owner, TelemetryActivities | NotifyActivities):
            found[type(owner).__name__] = closed_check(owner._http)
        elif isinstance(owner, AgentActivities) and owner.reasoner.llm is not None:
            found["llm"] = owner.reasoner.llm._client.is_closed
    return found


async def test_pools_close_when_the_worker_stops(
    client: Client, settings: Settings, fake_anthropic: FakeAnthropic
) -> None:
    configured = settings.model_copy(update=claude_settings(fake_anthropic))
    worker = build_worker(client, configured)
    opened = pools(list(worker.activity_set.functions))
    assert set(opened) == {"TelemetryActivities", "NotifyActivities", "llm"}
    async with worker:
        assert not any(closed() for closed in opened.values())
    assert all(closed() for closed in opened.values()), {k: closed() for k, closed in opened.items()}


async def test_pools_close_on_shutdown_and_every_closer_runs_when_one_fails(
    client: Client, settings: Settings
) -> None:
    worker = build_worker(client, settings)
    closed: list[str] = []

    async def broken() -> None:
        raise OSError("socket already gone")

    async def recording() -> None:
        closed.append("recording")

    worker.activity_set.closers[:0] = [broken]
    worker.activity_set.closers.append(recording)
    run = asyncio.create_task(worker.run())
    await asyncio.sleep(0.5)
    await worker.shutdown()
    with pytest.raises(ExceptionGroup) as failed:
        await run
    assert [str(e) for e in failed.value.exceptions] == ["socket already gone"]
    assert closed == ["recording"]
    assert all(closed() for closed in pools(list(worker.activity_set.functions)).values())


async def test_one_process_serves_both_queues_and_stops_both(client: Client, settings: Settings) -> None:
    worker = build_worker(client, settings)  # role all, the default
    (memory,) = worker.companions
    assert memory.config()["task_queue"] == f"{settings.task_queue}-memory"
    async with worker:
        pass
    assert worker.is_shutdown and memory.is_shutdown, "the memory queue's worker outlived the worker"
