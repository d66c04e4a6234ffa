"""Replay committed incident histories with today's workflow code.

A change that would break incidents already in flight (non-determinism) fails here.
Histories are recorded by the integration tests: FIREBREAK_RECORD_HISTORIES=1 make test.
A re-recorded history must say why: its entry in tests/histories/manifest.yaml (sha256 and
the CHANGELOG.md entry of the incompatible change it was recorded for) is checked here too,
so a history cannot be silently re-recorded over a change that broke its old recording.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
import yaml
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from runtime.settings import PROJECT_ROOT
from worker import WORKFLOWS

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
MANIFEST: dict[str, dict[str, object]] = yaml.safe_load(
    (Path(__file__).parent / "histories" / "manifest.yaml").read_text()
)
# Histories whose earlier recordings no longer replay (the manifest says which change).
CURRENT_FORMAT_ONLY = sorted(name for name, entry in MANIFEST.items() if entry.get("current_format_only"))


def _id(path: Path) -> str:
    return path.stem + ("[current-format-only]" if path.stem in CURRENT_FORMAT_ONLY else "")


def test_histories_are_committed() -> None:
    assert len(HISTORIES) >= 2, "tests/histories/ must hold recorded incident histories"


def test_every_history_is_in_the_manifest_with_its_changelog_entry() -> None:
    changelog = (PROJECT_ROOT / "CHANGELOG.md").read_text()
    entries = set(re.findall(r"^#### ([a-z0-9-]+) ", changelog, flags=re.MULTILINE))
    assert sorted(MANIFEST) == sorted(p.stem for p in HISTORIES), "manifest.yaml and tests/histories/ differ"
    for path in HISTORIES:
        entry = MANIFEST[path.stem]
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert entry["sha256"] == digest, (
            f"{path.name} was re-recorded: update its sha256 in manifest.yaml together with a "
            "CHANGELOG.md entry (or a workflow.patched branch) for the change"
        )
        assert entry["recorded_for"] in entries, f"{path.name}: no CHANGELOG entry {entry['recorded_for']!r}"
        section = changelog.split(f"#### {entry['recorded_for']} ", 1)[1].split("\n#### ", 1)[0]
        assert f"`{path.stem}`" in section, (
            f"CHANGELOG entry {entry['recorded_for']} does not name {path.stem}"
        )
    print("current-format-only histories:", ", ".join(CURRENT_FORMAT_ONLY))


@pytest.mark.parametrize("path", HISTORIES, ids=[_id(p) for p in HISTORIES])
async def test_history_replays(path: Path) -> None:
    recorded = json.loads(path.read_text())
    history = WorkflowHistory.from_json(recorded.pop("workflowId"), recorded)
    replayer = Replayer(workflows=list(WORKFLOWS), data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
