"""The Firebreak worker: runs incident and remediation workflows and their activities.

Everything it needs is checked at start — catalog, rules, policies, the Vault token — and
a problem stops it with a message naming the file, never a worker that allows silently.

    python worker.py            # connects per TEMPORAL_ADDRESS / temporal.toml profile
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from activities.credentials import ActionCredentials
from activities.policy import PolicyActivities
from activities.remediation import RemediationActivities
from activities.triage import TriageActivities
from agents.rules import RuleFileError, RuleReasoner
from firebreak.temporal import connect
from models.catalog import Catalog, CatalogError
from models.settings import Settings
from policies.engine import PolicyEngine, PolicyLoadError
from workflows.incident import IncidentWorkflow
from workflows.remediation import RemediationWorkflow

logger = logging.getLogger("firebreak.worker")

WORKFLOWS: Sequence[type] = (IncidentWorkflow, RemediationWorkflow)


class ConfigurationError(RuntimeError):
    """The worker cannot start: the message says what to fix."""


def build_activities(
    settings: Settings, credentials: ActionCredentials | None = None
) -> list[Callable[..., Any]]:
    """Load and check everything the activities need; raise ConfigurationError if not."""
    try:
        catalog = Catalog.load(settings.playbooks_dir)
        reasoner = RuleReasoner.load(settings.rules_file)
        policies = PolicyEngine.load(settings.policies_dir)
    except (CatalogError, RuleFileError, PolicyLoadError) as exc:
        raise ConfigurationError(str(exc)) from exc
    if settings.vault_token is None:
        raise ConfigurationError(
            "FIREBREAK_VAULT_TOKEN is not set: the worker needs its own Vault token "
            "(`firebreak vault-bootstrap` creates one)"
        )
    triage = TriageActivities(reasoner, catalog)
    policy = PolicyActivities(policies)
    remediation = RemediationActivities(
        catalog=catalog,
        credentials=credentials or ActionCredentials(settings.vault_addr, settings.vault_token),
        vault_addr=settings.vault_addr,
        target_state_dir=settings.resolved_target_state_dir(),
        runtime_dir=settings.ansible_runtime_dir,
    )
    return [triage.triage, policy.evaluate_policy, remediation.run_playbook]


def build_worker(client: Client, settings: Settings, credentials: ActionCredentials | None = None) -> Worker:
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=list(WORKFLOWS),
        activities=build_activities(settings, credentials),
    )


async def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings()
    # Check configuration before touching the network: a broken policy must stop us here.
    try:
        activities = build_activities(settings)
    except ConfigurationError as exc:
        logger.error("cannot start: %s", exc)
        return 2
    try:
        client = await connect()
    except RuntimeError as exc:
        logger.error("cannot connect to Temporal: %s", exc)
        return 3
    worker = Worker(client, task_queue=settings.task_queue, workflows=list(WORKFLOWS), activities=activities)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    logger.info("worker polling task queue %s", settings.task_queue)
    async with worker:
        await stop.wait()
    logger.info("worker stopped")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
