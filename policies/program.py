"""The policy program: the Rego modules and data, read and checked, not yet evaluated.

Reading is kept apart from the engine (policies/engine.py, regopy) so that the worker can
load and check its policies without ever loading regopy: it decides through a child
process (policies/evaluator.py says why), which compiles the program it is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

DECISION_QUERY = "data.firebreak.remediation.decision"


class PolicyLoadError(ValueError):
    """A policy file or the policy data does not load."""


class PolicyEvaluationError(RuntimeError):
    """A policy evaluated to something other than a well-formed decision."""


@dataclass(frozen=True)
class PolicyProgram:
    """Every `*.rego` module of a directory by file name, and its `data.yaml`, checked."""

    modules: dict[str, str]
    data: dict[str, Any]
    directory: Path

    @classmethod
    def read(cls, directory: Path, include_tests: bool = False) -> PolicyProgram:
        """Read the modules (tests only if asked) and the data; bad data names file and key."""
        # Imported here: the evaluator's child only receives a program, and stays ~17 MB
        # smaller without pydantic and the YAML loader.
        import yaml

        from policies.data import check_policy_data
        from runtime.bounded import load_yaml_file

        modules: dict[str, str] = {}
        for path in sorted(directory.glob("*.rego")):
            if path.name.endswith("_test.rego") and not include_tests:
                continue
            modules[path.name] = path.read_text()
        if not modules:
            raise PolicyLoadError(f"{directory}: no .rego policy files")
        data_path = directory / "data.yaml"
        try:
            data = load_yaml_file(data_path) if data_path.exists() else {}  # bounded (runtime/bounded.py)
        except yaml.YAMLError as exc:
            raise PolicyLoadError(f"{data_path}: {exc}") from exc
        if not isinstance(data, dict):
            raise PolicyLoadError(f"{data_path}: expected a mapping at the top level")
        problems = check_policy_data(data)
        if problems:
            raise PolicyLoadError(f"{data_path}: bad policy data:\n{problems}")
        return cls(modules, data, directory)
