"""The floors rule shared by the tests on committed real-incident scenarios (datasets/):
each system keeps its measured AC@1 and AC@3 minus a margin; nothing is fitted per case."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from evals.rca.evaluate import accuracy_at, evaluate, position, rank_scenario, variants
from evals.rca.scenario import Scenario, Truth, find_scenarios, load_scenario, load_truth

MARGIN = 0.05


def committed_report(root: Path, systems: Mapping[str, int]) -> dict[str, Any]:
    """The eval of every committed scenario of the given systems (group -> scenario count)."""
    return evaluate(Committed(root, systems).paths()).to_json()


def assert_floors(
    report: Mapping[str, Any], systems: Mapping[str, int], measured: Mapping[str, Mapping[str, float]]
) -> None:
    for group, n in systems.items():
        ours = report["per_group"][group]["rca"]
        assert ours["n"] == n
        for key in ("ac1", "ac3"):
            floor = measured[group][key] - MARGIN
            assert ours[key] >= floor, f"{group} {key} {ours[key]} fell below {floor:.3f}"


class Committed:
    """The committed scenarios of some systems (group -> scenario count), each read from disk
    once: a test module's checks share them (reading is most of what they cost)."""

    def __init__(self, root: Path, systems: Mapping[str, int]) -> None:
        self.root = root
        self.systems = systems
        self._loaded: dict[Path, tuple[Scenario, Truth]] = {}

    def paths(self, *groups: str) -> list[Path]:
        found = find_scenarios([self.root / group.split("/", 1)[1] for group in groups or self.systems])
        expected = sum(self.systems[group] for group in groups or self.systems)
        assert len(found) == expected, f"the committed scenarios under {self.root} are incomplete"
        return found

    def load(self, path: Path) -> tuple[Scenario, Truth]:
        if path not in self._loaded:
            self._loaded[path] = (load_scenario(path), load_truth(path))
        return self._loaded[path]

    def each(self, *groups: str) -> list[tuple[Path, Scenario, Truth]]:
        return [(path, *self.load(path)) for path in self.paths(*groups)]


def variant_ac1(
    committed: Committed,
    names: tuple[str, ...],
    check: Callable[[Scenario, dict[str, Scenario]], None] | None = None,
) -> dict[tuple[str, str], float]:
    """AC@1 of the ranking on robustness variants of every committed scenario, per (variant,
    group); `check` sees each scenario and its variants first (their shape, say)."""
    hits: dict[tuple[str, str], list[int | None]] = {}
    for group in committed.systems:
        for _, scenario, truth in committed.each(group):
            made = dict(variants(scenario, truth))
            if check is not None:
                check(scenario, made)
            for name in names:
                ranked = rank_scenario(made[name], ("rca",))["rca"]
                hits.setdefault((name, group), []).append(position(ranked, truth.root_cause))
    return {key: accuracy_at(positions, 1) for key, positions in hits.items()}
