"""What a cached IncidentWorkflow run holds in Python, by workflow sandbox configuration.

    .venv/bin/python bench/bench_workflow_sandbox.py [--runs 100] [--sandbox worker]

Replays a committed history (tests/histories/approved_remediated.json) cut where the incident
waits for approval, `--runs` times, keeping every run's instance alive as the worker's
workflow cache does, and prints the RSS and the traced allocations each run adds, by file.
`--sandbox`: `default` (Temporal's), `worker` (worker.workflow_runner(): helpers, models and
policy code passed through), `worker+workflows` (the workflow definition modules too: what
that would save; the worker does not run so). Temporal core's state for a run is not kept
here (the replayer evicts it): the worker's full cost per run is bench_worker_rss's.
Numbers, not pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import tracemalloc
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from bench_common import report

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from temporalio.client import WorkflowHistory  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.worker import Replayer, WorkflowInstance, WorkflowInstanceDetails  # noqa: E402
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions  # noqa: E402

from worker import WORKFLOWS, workflow_runner  # noqa: E402

HISTORY = ROOT / "tests" / "histories" / "approved_remediated.json"
# The history's events up to the timer of the approval wait (the second one is the verify window).
WAITING_AT = "EVENT_TYPE_TIMER_STARTED"


@dataclass(frozen=True)
class KeepingRunner(SandboxedWorkflowRunner):
    """A sandbox that keeps every run's instance, as a worker's cache keeps a waiting run."""

    kept: list[WorkflowInstance] | None = None

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        instance = super().create_instance(det)
        assert self.kept is not None
        self.kept.append(instance)
        return instance


def restrictions(sandbox: str) -> SandboxRestrictions:
    if sandbox == "default":
        return SandboxRestrictions.default
    configured = workflow_runner().restrictions
    return configured if sandbox == "worker" else configured.with_passthrough_modules("workflows")


def waiting_history() -> tuple[str, dict[str, object]]:
    recorded = json.loads(HISTORY.read_text())
    events = recorded["events"]
    timers = [i for i, event in enumerate(events) if event["eventType"] == WAITING_AT]
    recorded["events"] = events[: timers[1] + 1]
    return recorded.pop("workflowId"), recorded


def rss_kb() -> int:
    return int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0])


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--sandbox", default="worker", choices=["default", "worker", "worker+workflows"])
    args = parser.parse_args()
    workflow_id, recorded = waiting_history()
    kept: list[WorkflowInstance] = []
    replayer = Replayer(
        workflows=list(WORKFLOWS),
        data_converter=pydantic_data_converter,
        workflow_runner=KeepingRunner(restrictions=restrictions(args.sandbox), kept=kept),
    )

    async def replay(runs: int) -> None:
        async def histories() -> AsyncIterator[WorkflowHistory]:
            for _ in range(runs):
                yield WorkflowHistory.from_json(workflow_id, recorded)

        async with replayer.workflow_replay_iterator(histories()) as results:
            async for result in results:
                if result.replay_failure is not None:
                    raise RuntimeError(f"replay failed: {result.replay_failure}")

    await replay(5)  # first runs load what every later run shares
    gc.collect()
    tracemalloc.start()
    before, idle, first = rss_kb(), tracemalloc.take_snapshot(), len(kept)
    await replay(args.runs)
    gc.collect()
    after, held = rss_kb(), tracemalloc.take_snapshot()
    stats = held.compare_to(idle, "filename")
    result: dict[str, object] = {
        "sandbox": args.sandbox,
        "instances_kept (the runs, and the replayer's check of each workflow type)": len(kept) - first,
        "rss_kb_per_run (tracemalloc on)": round((after - before) / args.runs),
        "traced_kb_per_run": round(sum(s.size_diff for s in stats) / 1024 / args.runs, 1),
    }
    for stat in stats[:8]:
        per_run = stat.size_diff / 1024 / args.runs
        result[f"traced_kb_per_run {stat.traceback[0].filename}"] = round(per_run, 1)
    report(result)


if __name__ == "__main__":
    asyncio.run(main())
