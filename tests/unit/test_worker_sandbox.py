"""A workflow run's sandbox re-imports the workflow definition module alone.

Every cached workflow run keeps its sandbox, and with it its own copy of each module imported
into it; the helpers, models and policy code are shared with the host (worker.WORKFLOW_PASSTHROUGH).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from worker import WORKFLOWS, workflow_runner

HISTORY = Path(__file__).parents[1] / "histories" / "approved_remediated.json"
PROJECT_PACKAGES = ("activities", "agents", "models", "policies", "rca", "runtime", "workflows")


@dataclass(frozen=True)
class RecordingRunner(SandboxedWorkflowRunner):
    """The worker's sandbox, keeping each run's instance to look into after the replay."""

    created: list[WorkflowInstance] | None = None

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        instance = super().create_instance(det)
        assert self.created is not None
        self.created.append(instance)
        return instance


def own_copies(instance: Any) -> set[str]:
    """Project modules a run's sandbox imported for itself instead of sharing the host's.

    Reads the SDK's sandbox importer (`importer.new_modules`, its `sys.modules` for the run):
    there is no public view of what a run imported.
    """
    modules: dict[str, object] = instance.importer.new_modules
    return {
        name
        for name, module in modules.items()
        if name.split(".")[0] in PROJECT_PACKAGES and sys.modules.get(name) is not module
    }


async def test_a_replayed_incident_reimports_only_its_workflow_module() -> None:
    recorded = json.loads(HISTORY.read_text())
    history = WorkflowHistory.from_json(recorded.pop("workflowId"), recorded)
    created: list[WorkflowInstance] = []
    runner = RecordingRunner(restrictions=workflow_runner().restrictions, created=created)
    replayer = Replayer(
        workflows=list(WORKFLOWS), data_converter=pydantic_data_converter, workflow_runner=runner
    )

    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)

    assert result.replay_failure is None, "the committed history replays under the worker's sandbox"
    assert created, "the replay ran the workflow in the recording sandbox"
    # The package's __init__ is re-imported with it (a parent module is never passed through alone).
    assert own_copies(created[-1]) == {"workflows", "workflows.incident"}
