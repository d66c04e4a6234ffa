"""Run a RemediationWorkflow the only way it runs now: as an admitted child of its incident.

Tests that exercise the remediation child on its own (locks, rollbacks, crashes, Vault
outages) hold the worker's admission key, as the incident's admission activity does: they
seal an admission for exactly the run they ask for, and start it from a small parent
workflow whose id is the incident id the admission names. Anything else (a direct start, a
forged or mismatched admission) is refused, which tests/integration/test_gate_attacks.py
checks.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, SecretStr
from temporalio import workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from models.admission import Admission
from models.constants import REMEDIATION_WORKFLOW
from models.incident import RemediationInput, RemediationResult, action_digest
from policies.admission import seal_admission
from policies.seals import Sealer, configured_key
from runtime.settings import Settings

ADMITTED_PARENT = "TestAdmittedParent"


class ParentInput(BaseModel):
    run: RemediationInput
    child_id: str
    child_task_queue: str


@workflow.defn(name=ADMITTED_PARENT, sandboxed=False)
class AdmittedParent:
    """Stands in for the incident: starts the child it is given and returns its result."""

    @workflow.run
    async def run(self, input: ParentInput) -> RemediationResult:
        result: RemediationResult = await workflow.execute_child_workflow(
            REMEDIATION_WORKFLOW,
            input.run,
            id=input.child_id,
            task_queue=input.child_task_queue,
            result_type=RemediationResult,
        )
        return result


def admission_key(settings: Settings) -> SecretStr:
    return configured_key(settings.admission_key, settings.data_dir, "admission")


def admit(run: RemediationInput, key: SecretStr, **overrides: Any) -> RemediationInput:
    """`run` with an admission sealed by `key` for exactly this run (fields overridable)."""
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        "incident_id": run.incident_id,
        "plan_hash": "test-plan",
        "index": 0,
        "action_digest": action_digest(run.action),
        "mode": run.mode,
        "idempotency_key": run.idempotency_key,
        "rollback_of": run.rollback_of,
        "verdict": "test",
        "admitted_at": now,
        "expires_at": now + timedelta(hours=1),
        **overrides,
    }
    return run.model_copy(update={"admission": seal_admission(Sealer(key), Admission(**fields))})


@asynccontextmanager
async def parent_worker(client: Client) -> AsyncIterator[str]:
    """A worker for the stand-in parents, on a task queue of its own; yields the queue."""
    queue = f"parents-{secrets.token_hex(6)}"
    async with Worker(client, task_queue=queue, workflows=[AdmittedParent]):
        yield queue


async def start_admitted(
    client: Client,
    parents_queue: str,
    run: RemediationInput,
    child_task_queue: str,
    child_id: str | None = None,
) -> WorkflowHandle[Any, RemediationResult]:
    """Start `run` (already admitted, or not) as the child of a parent named its incident id."""
    return await client.start_workflow(
        ADMITTED_PARENT,
        ParentInput(
            run=run,
            child_id=child_id or f"remediation-{run.idempotency_key}",
            child_task_queue=child_task_queue,
        ),
        id=run.incident_id,
        task_queue=parents_queue,
        result_type=RemediationResult,
    )
