"""The worker's concurrency and workflow cache come from the settings (the chaos tests rely on it)."""

from __future__ import annotations

import pytest
from temporalio.client import Client

from runtime.settings import Settings
from worker import build_worker

pytestmark = pytest.mark.integration


async def test_worker_sizing_from_settings(client: Client, settings: Settings) -> None:
    sized = settings.model_copy(
        update={
            "worker_max_concurrent_activities": 7,
            "worker_max_concurrent_workflow_tasks": 5,
            "worker_max_cached_workflows": 0,
        }
    )
    config = build_worker(client, sized).config()
    assert config.get("max_concurrent_activities") == 7
    assert config.get("max_concurrent_workflow_tasks") == 5
    assert config.get("max_cached_workflows") == 0
    # Another task queue: two workers may not share one in a process.
    defaults = build_worker(
        client, settings.model_copy(update={"task_queue": settings.task_queue + "-d"})
    ).config()
    assert defaults.get("max_cached_workflows") == 250
    assert defaults.get("max_concurrent_activities") == 100


def test_sizing_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="worker_max_concurrent_workflow_tasks"):
        Settings(_env_file=None, worker_max_concurrent_workflow_tasks=1)
    with pytest.raises(ValueError, match="worker_max_cached_workflows"):
        Settings(_env_file=None, worker_max_cached_workflows=-1)
