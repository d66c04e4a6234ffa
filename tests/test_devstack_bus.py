"""`make dev` with FIREBREAK_BUS_URL set: the dev stack also runs `python -m consumer`, and an alert
published to the real broker (Debian `nats-server -js`) becomes an incident workflow."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import nats
import pytest
from temporalio.client import WorkflowExecutionStatus

from models.constants import INCIDENT_WORKFLOW, incident_workflow_id
from runtime.temporal import connect
from tests.integration.test_bus import NatsServer, progress
from tests.payloads import alertmanager_alert, alertmanager_payload
from tests.test_devstack import Stack, alive_in_groups, children_of, described_soon, free_ports, stacks

__all__ = ["stacks"]  # the fixture, used below


@pytest.mark.timeout(280)
async def test_dev_stack_runs_the_bus_consumer_when_configured(
    tmp_path: Path, stacks: list[tuple[Stack, set[int]]]
) -> None:
    broker = NatsServer(store=tmp_path / "jetstream", log=tmp_path / "nats.log")
    broker.start()
    try:
        temporal_port, ui_port, vault_port, api_port, codec_port, metrics_port = free_ports(6)
        data_dir = tmp_path / "data"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("FIREBREAK_", "TEMPORAL_")) and k not in {"VAULT_TOKEN", "BAO_TOKEN"}
        }
        env.update(
            TEMPORAL_ADDRESS=f"127.0.0.1:{temporal_port}",
            FIREBREAK_TEMPORAL_UI_PORT=str(ui_port),
            FIREBREAK_VAULT_ADDR=f"http://127.0.0.1:{vault_port}",
            FIREBREAK_API_PORT=str(api_port),
            FIREBREAK_DATA_DIR=str(data_dir),
            FIREBREAK_CODEC_SERVER_PORT=str(codec_port),
            FIREBREAK_EMBEDDINGS="sparse",
            # The workers' /metrics on free ports: 9464/9466 may be another stack's (or test's).
            FIREBREAK_WORKER_METRICS_PORT="0",
            FIREBREAK_MEMORY_WORKER_METRICS_PORT="0",
            FIREBREAK_BUS_URL=f"nats://bus-user:bus-secret@127.0.0.1:{broker.port}",
            FIREBREAK_BUS_METRICS_PORT=str(metrics_port),
        )
        stack = Stack.start(env, tmp_path, data_dir)
        stacks.append((stack, set()))
        await asyncio.to_thread(stack.wait_for_line, r"Ctrl-C to stop")
        children = children_of(stack.process.pid)
        stacks[0] = (stack, set(children))
        assert any("-m consumer" in cmd for cmd in children.values()), children
        line = stack.wait_for_line(r"Alert bus\s+(\S+)").group(1)
        assert line == f"nats://127.0.0.1:{broker.port}"  # never the URL's credentials
        assert "bus-secret" not in stack.output

        nc = await asyncio.wait_for(nats.connect(broker.url, max_reconnect_attempts=3), timeout=15)
        try:
            js = nc.jetstream()
            assert await progress(js) is not None  # the consumer made its stream and durable
            alert = alertmanager_alert("KubePodCrashLooping", "devbus")
            await js.publish(
                "firebreak.alerts.alertmanager", json.dumps(alertmanager_payload(alert)).encode()
            )
        finally:
            await nc.close()

        client = await asyncio.wait_for(connect(f"127.0.0.1:{temporal_port}"), timeout=15)
        described = await described_soon(client, incident_workflow_id("prod-devbus"), stack)
        assert described.workflow_type == INCIDENT_WORKFLOW
        assert described.status == WorkflowExecutionStatus.RUNNING

        assert await asyncio.to_thread(stack.stop) == 0, stack.diagnostics()
        assert not alive_in_groups(set(children))
    finally:
        broker.stop()
