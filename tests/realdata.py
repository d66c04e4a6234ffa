"""The floors rule shared by the tests on committed real-incident scenarios (datasets/):
each system keeps its measured AC@1 and AC@3 minus a margin; nothing is fitted per case."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from evals.rca.evaluate import evaluate
from evals.rca.scenario import find_scenarios

MARGIN = 0.05


def committed_report(root: Path, systems: Mapping[str, int]) -> dict[str, Any]:
    """The eval of every committed scenario of the given systems (group -> scenario count)."""
    paths = find_scenarios([root / group.split("/", 1)[1] for group in systems])
    assert len(paths) == sum(systems.values()), f"the committed scenarios under {root} are incomplete"
    return evaluate(paths).to_json()


def assert_floors(
    report: Mapping[str, Any], systems: Mapping[str, int], measured: Mapping[str, Mapping[str, float]]
) -> None:
    for group, n in systems.items():
        ours = report["per_group"][group]["rca"]
        assert ours["n"] == n
        for key in ("ac1", "ac3"):
            floor = measured[group][key] - MARGIN
            assert ours[key] >= floor, f"{group} {key} {ours[key]} fell below {floor:.3f}"
