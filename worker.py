"""The Firebreak worker: runs incident and remediation workflows and their activities.

Everything it needs is checked at start — catalog, rules, policies, the Vault token — and
a problem stops it with a message naming the file, never a worker that allows silently.

    python worker.py                  # both task queues in one process (FIREBREAK_WORKER_ROLE=all)
    python worker.py --role incident  # the workflows and every activity but memory's
    python worker.py --role memory    # retrieval and episodic memory, on <task_queue>-memory

Workflows schedule the memory activities on their own queue (activities/table.py), so the
embedding model (torch, sentence-transformers) lives only in the process that serves it:
an incident worker never imports it, nor qdrant-client. Connection per TEMPORAL_ADDRESS /
temporal.toml profile.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import logging
import os
import pkgutil
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NoReturn, TypedDict, get_args

from opentelemetry.trace import TracerProvider
from pydantic import ValidationError
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

import workflows
from activities import table
from activities.admission import AdmissionActivities
from activities.agents import AgentActivities
from activities.correlation import CorrelationActivities
from activities.locks import LockActivities
from activities.notify import NotifyActivities
from activities.policy import PolicyActivities
from activities.remediation import RemediationActivities
from activities.telemetry import build_telemetry_activities
from agents.factory import build_reasoner
from agents.rules import RuleBook, RuleFileError
from integrations.inventory import load_inventory
from integrations.notify import NotifyConfig
from integrations.previews import PreviewLimits
from integrations.ssh_ca import SshCertificateAuthority
from integrations.vault import ActionCredentials
from models.catalog import CatalogError
from models.constants import memory_task_queue
from models.inventory import InventoryError
from policies.catalog import load_catalog
from policies.evaluator import PolicyEvaluator, check_program
from policies.program import PolicyLoadError, PolicyProgram
from policies.seals import ApprovalCodes, Sealer, SealError, configured_key
from rca.topology import Topology, TopologyError
from runtime import metrics
from runtime.heap import release_freed_heap_every
from runtime.settings import Settings, WorkerRole
from runtime.temporal import connect
from runtime.tracing import install_tracing, worker_interceptors
from workflows.incident import IncidentWorkflow
from workflows.lock import ResourceLockWorkflow
from workflows.remediation import RemediationWorkflow

logger = logging.getLogger("firebreak.worker")

WORKFLOWS: Sequence[type] = (IncidentWorkflow, RemediationWorkflow, ResourceLockWorkflow)
# Deterministic modules the workflows use, each in its own file, shared with the host instead
# of re-imported into each workflow run's sandbox (Temporal's advice for models and helpers):
# every cached run held its own copy of what slipped past `imports_passed_through()` (all of
# workflows.notifier, ~50 KB a run). Only the workflow definition modules are re-imported per
# run, so the sandbox still checks their code and isolates their module state.
WORKFLOW_DEFINITION_MODULES = frozenset(w.__module__ for w in WORKFLOWS)
WORKFLOW_PASSTHROUGH = (
    "models",
    "activities.table",
    "policies.gate",
    "policies.seals",
    *sorted(
        f"workflows.{m.name}"
        for m in pkgutil.iter_modules(workflows.__path__)
        if f"workflows.{m.name}" not in WORKFLOW_DEFINITION_MODULES
    ),
)
# Activities an implementation defines that no workflow schedules: not registered.
# (`firebreak feedback` records a judgement through the memory service directly.)
UNSCHEDULED = frozenset({"record_feedback"})
# Implemented with the worker's own Temporal client, so registered by build_worker.
NEEDS_CLIENT = (table.REQUEST_LOCK,)
ROLES: tuple[WorkerRole, ...] = get_args(WorkerRole)
INCIDENT_SPECS = tuple(s for s in table.ACTIVITIES if s.queue == "incident" and s not in NEEDS_CLIENT)
MEMORY_SPECS = tuple(s for s in table.ACTIVITIES if s.queue == "memory")


class ConfigurationError(RuntimeError):
    """The worker cannot start: the message says what to fix."""


@dataclass
class ActivitySet:
    """The activity functions and the connection pools behind them, closed together."""

    functions: list[Callable[..., Any]]
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # Slow loads (the dense embedding model) done at start, beside polling, instead of
    # inside the first incident's activity.
    warmers: list[Callable[[], None]] = field(default_factory=list)

    def warm_in_background(self) -> None:
        """Run the warmers on a daemon thread: polling starts at once, and a stop is never
        held up by a load in progress. A failure is logged, never fatal (loads retry on use)."""
        if not self.warmers:
            return

        def run() -> None:
            for warmer in self.warmers:
                started = time.monotonic()
                try:
                    warmer()
                except Exception as exc:
                    logger.warning("warm-up failed (%s); it loads on first use", type(exc).__name__)
                else:
                    logger.info("warm-up done in %.1fs", time.monotonic() - started)

        threading.Thread(target=run, name="firebreak-warm-up", daemon=True).start()

    async def aclose(self) -> None:
        """Close every pool, even when one fails: a leaked socket outlives the worker."""
        errors: list[Exception] = []
        for close in self.closers:
            try:
                await close()
            except Exception as exc:  # keep closing the rest; report them all at the end
                errors.append(exc)
        if errors:
            raise ExceptionGroup("closing the activities' connection pools", errors)


@dataclass
class WorkerActivities:
    """What one worker process serves: the incident queue's activities, the memory queue's, or both."""

    incident: ActivitySet | None
    memory: ActivitySet | None

    def warm_in_background(self) -> None:
        for activity_set in (self.incident, self.memory):
            if activity_set is not None:
                activity_set.warm_in_background()

    async def aclose(self) -> None:
        """Close both sets' pools, even when one fails."""
        errors: list[Exception] = []
        for activity_set in (self.incident, self.memory):
            if activity_set is not None:
                try:
                    await activity_set.aclose()
                except Exception as exc:
                    errors.append(exc)
        if errors:
            raise ExceptionGroup("closing the activities' connection pools", errors)


class FirebreakWorker(Worker):
    """A Temporal worker that closes its activities' connection pools when it stops.

    `run()` is what `async with`, `shutdown()` and a fatal error all end, so the pools
    close however the worker stops. `companions` (the memory queue's worker, when one process
    serves both queues) start and stop with it, and a fatal error in one stops this one too.
    """

    def __init__(
        self,
        client: Client,
        *,
        activity_set: ActivitySet,
        companions: Sequence[Worker] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(client, activities=activity_set.functions, **kwargs)
        self.activity_set = activity_set
        self.companions = tuple(companions)

    async def run(self) -> None:
        try:
            async with contextlib.AsyncExitStack() as running:
                for companion in self.companions:
                    # Worker's `async with` cancels this task on the companion's fatal error,
                    # and its exit re-raises that error once this worker has shut down.
                    await running.enter_async_context(companion)
                await super().run()
        finally:
            await self.activity_set.aclose()


def build_activities(
    settings: Settings,
    credentials: ActionCredentials | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
) -> WorkerActivities:
    """The activities `settings.worker_role` serves, loaded and checked; ConfigurationError if not."""
    # Memory first: its checks hold nothing open (Qdrant is opened per operation), so a failure
    # in the incident activities' checks leaves nothing to close.
    memory = build_memory_activities(settings) if settings.worker_role in ("all", "memory") else None
    incident = (
        build_incident_activities(settings, credentials, tracer_provider=tracer_provider)
        if settings.worker_role in ("all", "incident")
        else None
    )
    return WorkerActivities(incident=incident, memory=memory)


def build_memory_activities(settings: Settings) -> ActivitySet:
    """The memory queue's activities; the dense model is warmed at start, beside polling."""
    # Imported here: qdrant-client, and the embedding model's torch on first use, load only
    # in a process that serves memory.
    from activities.memory import MemoryActivities
    from memory.errors import MemoryStoreError
    from memory.service import Memory

    try:
        memory_service = Memory.from_settings(settings)
    except MemoryStoreError as exc:
        raise ConfigurationError(str(exc)) from exc
    functions = registration([MemoryActivities(memory_service)], MEMORY_SPECS)
    return ActivitySet(functions, warmers=[memory_service.warm])


def build_incident_activities(
    settings: Settings,
    credentials: ActionCredentials | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
) -> ActivitySet:
    """The incident queue's activities (all but memory's and the lock request's)."""
    try:
        catalog = load_catalog(settings.playbooks_dir)
        book = RuleBook.load(settings.rules_file)
        policies = PolicyProgram.read(settings.policies_dir)
        check_program(policies)  # compiled by an evaluator child: the worker never loads regopy
    except (CatalogError, RuleFileError, PolicyLoadError) as exc:
        raise ConfigurationError(str(exc)) from exc
    if settings.vault_token is None:
        raise ConfigurationError(
            "FIREBREAK_VAULT_TOKEN is not set: the worker needs its own Vault token "
            "(`firebreak vault-bootstrap` creates one)"
        )
    reasoner = build_reasoner(settings, catalog, tracer_provider=tracer_provider)
    agents = AgentActivities(book, catalog, reasoner)
    try:
        # The policy limits each action's blast radius by the same topology diagnosis uses.
        topology = Topology.load(settings.topology_file) if settings.topology_file else None
    except TopologyError as exc:
        raise ConfigurationError(str(exc)) from exc
    try:
        sealer = Sealer(configured_key(settings.admission_key, settings.data_dir, "admission"))
        codes = (
            ApprovalCodes(configured_key(settings.approval_key, settings.data_dir, "approval"))
            if settings.approval_auth == "code"
            else None
        )
    except SealError as exc:
        raise ConfigurationError(str(exc)) from exc
    evaluator = PolicyEvaluator(policies, decisions_per_process=settings.policy_decisions_per_process)
    policy = PolicyActivities(evaluator, catalog, sealer, topology)
    admission = AdmissionActivities(sealer, codes)
    try:
        # With an inventory every target is a host reached over SSH, signed for by OpenBao's CA.
        inventory = (
            load_inventory(settings.inventory_file, set(catalog.actions)) if settings.inventory_file else None
        )
    except InventoryError as exc:
        raise ConfigurationError(str(exc)) from exc
    remediation = RemediationActivities(
        catalog=catalog,
        sealer=sealer,
        credentials=credentials or ActionCredentials(settings.vault_addr, settings.vault_token),
        vault_addr=settings.vault_addr,
        target_state_dir=settings.resolved_target_state_dir(),
        runtime_dir=settings.ansible_runtime_dir,
        inventory=inventory,
        ssh_ca=SshCertificateAuthority(settings.vault_addr, settings.vault_token) if inventory else None,
        preview_limits=PreviewLimits.from_settings(settings),
        max_concurrent_runs=settings.remediation_max_concurrent_runs,
    )
    try:
        telemetry = build_telemetry_activities(settings)
    except TopologyError as exc:
        raise ConfigurationError(str(exc)) from exc
    notify = NotifyActivities(NotifyConfig.from_settings(settings))
    correlation = CorrelationActivities(
        topology,
        hops=settings.correlation_hops,
        window=timedelta(seconds=settings.correlation_window_seconds),
    )
    functions = registration(
        [agents, policy, admission, remediation, telemetry, notify, correlation], INCIDENT_SPECS
    )
    return ActivitySet(functions, closers=[agents.aclose, telemetry.aclose, notify.aclose, evaluator.aclose])


def notify_activities(notify: NotifyActivities) -> list[Callable[..., Any]]:
    """The notification activities alone (tests run the Notifier with just these)."""
    return registration([notify], [table.NOTIFY_CHANNELS, *table.NOTIFY_BY_CHANNEL.values()])


def registration(
    implementations: Sequence[object], specs: Sequence[table.ActivitySpec[Any, Any]]
) -> list[Callable[..., Any]]:
    """The bound methods implementing `specs`, in table order, found by activity name.

    Raises ConfigurationError naming the activity when an entry has no implementation, one
    has two, an implementation's result type is not the table's, or an implementation
    defines an activity the table does not list: the worker does not start half-wired.
    """
    wanted = {spec.name: spec for spec in specs}
    found: dict[str, Callable[..., Any]] = {}
    for implementation in implementations:
        for attribute, member in inspect.getmembers(type(implementation), callable):
            defn = activity._Definition.from_callable(member)
            if defn is None or defn.name is None or defn.name in UNSCHEDULED:
                continue
            where = f"{type(implementation).__name__}.{attribute}"
            spec = wanted.get(defn.name)
            if spec is None and defn.name in table.BY_NAME:
                raise ConfigurationError(
                    f"activity {defn.name} ({where}) is served on the {table.BY_NAME[defn.name].queue} "
                    "task queue, not this worker's"
                )
            if spec is None:
                raise ConfigurationError(
                    f"activity {defn.name} ({where}) is not in the activity table (activities/table.py)"
                )
            if defn.name in found:
                raise ConfigurationError(f"activity {defn.name} is implemented twice (again by {where})")
            if defn.ret_type is not None and defn.ret_type is not spec.result_type:
                raise ConfigurationError(
                    f"activity {defn.name} ({where}) returns {defn.ret_type}, "
                    f"the activity table says {spec.result_type.__name__}"
                )
            found[defn.name] = getattr(implementation, attribute)
    missing = [name for name in wanted if name not in found]
    if missing:
        raise ConfigurationError(
            f"activity {', '.join(missing)}: in the activity table (activities/table.py) but not implemented"
        )
    return [found[spec.name] for spec in specs]


def build_worker(
    client: Client,
    settings: Settings,
    credentials: ActionCredentials | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
    activities: WorkerActivities | None = None,
) -> FirebreakWorker:
    """The worker for `settings.worker_role`; traced when its client or `tracer_provider` traces.

    Role all: the incident queue's worker, running the memory queue's as its companion;
    incident or memory: that queue's alone. `activities` is for a caller that built (and so
    checked) them before connecting.
    """
    if activities is None:
        activities = build_activities(settings, credentials, tracer_provider=tracer_provider)
    memory_worker = None
    if activities.memory is not None:
        memory_worker = FirebreakWorker(
            client,
            activity_set=activities.memory,
            task_queue=memory_task_queue(settings.task_queue),
            interceptors=worker_interceptors(
                client.config()["interceptors"], tracer_provider, table.result_types()
            ),
            max_concurrent_activities=settings.worker_max_concurrent_activities,
        )
    if activities.incident is None:
        if memory_worker is None:
            raise ConfigurationError("the worker serves neither the incident nor the memory task queue")
        return memory_worker
    # The lock activity signals-with-start through this worker's own client.
    activities.incident.functions.extend(registration([LockActivities(client)], NEEDS_CLIENT))
    return FirebreakWorker(
        client,
        activity_set=activities.incident,
        companions=[memory_worker] if memory_worker is not None else [],
        task_queue=settings.task_queue,
        workflows=list(WORKFLOWS),
        workflow_runner=workflow_runner(),
        interceptors=worker_interceptors(
            client.config()["interceptors"], tracer_provider, table.result_types()
        ),
        **sizing(settings),
    )


def workflow_runner() -> SandboxedWorkflowRunner:
    """Temporal's sandbox with WORKFLOW_PASSTHROUGH shared from the host."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*WORKFLOW_PASSTHROUGH)
    )


class WorkerSizing(TypedDict):
    max_concurrent_activities: int
    max_concurrent_workflow_tasks: int
    max_cached_workflows: int


def sizing(settings: Settings) -> WorkerSizing:
    """Concurrency and workflow cache of a worker, from the settings."""
    return WorkerSizing(
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        max_concurrent_workflow_tasks=settings.worker_max_concurrent_workflow_tasks,
        max_cached_workflows=settings.worker_max_cached_workflows,
    )


def parse_role(argv: Sequence[str]) -> WorkerRole | None:
    """`--role` from the command line, if given (else FIREBREAK_WORKER_ROLE decides)."""
    parser = argparse.ArgumentParser(prog="worker.py", description="Run a Firebreak worker.")
    parser.add_argument(
        "--role",
        choices=ROLES,
        help="all: both task queues in one process (default); incident: the workflows and every "
        "activity but memory's; memory: the memory activities only (overrides FIREBREAK_WORKER_ROLE)",
    )
    role: WorkerRole | None = parser.parse_args(argv).role
    return role


def _env_name(loc: tuple[int | str, ...]) -> str:
    name = str(loc[0]).upper() if loc else "settings"
    return name if name.startswith(("FIREBREAK_", "ANTHROPIC_")) else f"FIREBREAK_{name}"


async def main(argv: Sequence[str] = ()) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    role = parse_role(argv)
    try:
        settings = Settings() if role is None else Settings(worker_role=role)
    except ValidationError as exc:
        # Named as the environment spells them; the values are left out (a secret may be one).
        problems = "; ".join(f"{_env_name(e['loc'])}: {e['msg']}" for e in exc.errors())
        logger.error("cannot start: invalid settings: %s", problems)
        return 2
    install_tracing(settings, "worker")
    # Check configuration before touching the network: a broken policy must stop us here.
    try:
        activities = build_activities(settings)
    except ConfigurationError as exc:
        logger.error("cannot start: %s", exc)
        return 2
    runtime = None
    if settings.metrics_enabled:  # Firebreak's and Temporal's metrics on one /metrics
        runtime, temporal_metrics = metrics.temporal_runtime(settings.temporal_metrics_port)
        port = settings.memory_worker_metrics_port if settings.worker_role == "memory" else None
        metrics.serve(settings, temporal_metrics, port)
    try:
        client = await connect(runtime=runtime)
    except RuntimeError as exc:
        logger.error("cannot connect to Temporal: %s", exc)
        await activities.aclose()
        return 3
    worker = build_worker(client, settings, activities=activities)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    queues = [w.config()["task_queue"] for w in (worker, *worker.companions)]
    logger.info("worker polling task queue %s (role %s)", " and ".join(queues), settings.worker_role)
    async with worker:  # closes the LLM's, Prometheus' and notifications' connection pools on exit
        activities.warm_in_background()
        # Without it RSS stays at the high-water mark of the busiest moment (runtime/heap.py).
        releasing = asyncio.create_task(release_freed_heap_every(), name="firebreak-heap-release")
        await stop.wait()
        releasing.cancel()
    logger.info("worker stopped")
    return 0


def exit_without_teardown(code: int) -> NoReturn:
    """End a worker that never started polling, skipping the interpreter's teardown.

    Nothing is left to flush but logs, and a teardown can race the Temporal runtime's native
    threads (a SIGABRT "PyGILState_Release" in about 1 of 5 memory-role starts under load).
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    code = asyncio.run(main(sys.argv[1:]))
    if code != 0:
        exit_without_teardown(code)
    sys.exit(code)
