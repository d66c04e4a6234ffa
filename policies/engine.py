"""Evaluate the Rego policies in-process with regopy.

All `*.rego` files in the policies directory (tests excluded) are loaded with the data in
`data.yaml`. Loading is checked once at start: a syntax error or bad data raises
`PolicyLoadError` naming the file and line, so a broken policy stops the worker instead
of silently allowing. Each evaluation uses a fresh interpreter (they are cheap, and this
keeps concurrent activities from sharing mutable input).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from regopy import Input, Interpreter, RegoError

DECISION_QUERY = "data.firebreak.remediation.decision"
_ERROR_LOCATION = re.compile(r"\(error \d+:(?P<file>[^|]+)\|(?P<offset>\d+)\|")
_ERRMSG = re.compile(r"\(errormsg \d+:(?P<msg>[^)]*)\)")


class PolicyLoadError(ValueError):
    """A policy file or the policy data does not load."""


class PolicyEvaluationError(RuntimeError):
    """A policy evaluated to something other than a well-formed decision."""


class PolicyEngine:
    def __init__(self, modules: dict[str, str], data: dict[str, Any], directory: Path) -> None:
        self._modules = modules
        self._data = data
        self.directory = directory

    @classmethod
    def load(cls, directory: Path, include_tests: bool = False) -> PolicyEngine:
        modules: dict[str, str] = {}
        for path in sorted(directory.glob("*.rego")):
            if path.name.endswith("_test.rego") and not include_tests:
                continue
            modules[path.name] = path.read_text()
        if not modules:
            raise PolicyLoadError(f"{directory}: no .rego policy files")
        data_path = directory / "data.yaml"
        try:
            data = yaml.safe_load(data_path.read_text()) if data_path.exists() else {}
        except yaml.YAMLError as exc:
            raise PolicyLoadError(f"{data_path}: {exc}") from exc
        if not isinstance(data, dict):
            raise PolicyLoadError(f"{data_path}: expected a mapping at the top level")
        engine = cls(modules, data, directory)
        engine._check_compiles()
        return engine

    def _interpreter(self) -> Interpreter:
        rego = Interpreter()
        rego.add_data_json(json.dumps(self._data))
        for name, source in self._modules.items():
            rego.add_module(name, source)
        return rego

    def _check_compiles(self) -> None:
        try:
            self._interpreter().query("data.firebreak")
        except RegoError as exc:
            raise PolicyLoadError(self._describe(exc)) from None

    def _describe(self, exc: RegoError) -> str:
        """Turn regopy's error tree into `file:line: message` lines."""
        text = str(exc)
        lines = []
        for location, message in zip(_ERROR_LOCATION.finditer(text), _ERRMSG.finditer(text), strict=False):
            name = location.group("file")
            offset = int(location.group("offset"))
            source = self._modules.get(name, "")
            line = source.count("\n", 0, offset) + 1
            lines.append(f"{self.directory / name}:{line}: {message.group('msg')}")
        return "policy does not compile:\n" + ("\n".join(lines) or text)

    def query(self, query: str, input: dict[str, Any]) -> Any:
        rego = self._interpreter()
        rego.set_input(Input(input))
        try:
            output = rego.query(query)
        except RegoError as exc:
            raise PolicyEvaluationError(self._describe(exc)) from None
        text = str(output)
        if not output.ok():
            # e.g. two rules giving one key different values: a policy bug, never an allow.
            raise PolicyEvaluationError(f"{query} failed to evaluate: {text}")
        if text.strip() == "undefined":
            return None
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            raise PolicyEvaluationError(f"{query} gave an unreadable result: {text[:200]}") from None
        if "expressions" not in parsed:
            return None
        return parsed["expressions"][0]

    def decide(self, input: dict[str, Any]) -> dict[str, Any]:
        result = self.query(DECISION_QUERY, input)
        if not isinstance(result, dict) or result.get("verdict") not in (
            "allow",
            "needs_approval",
            "deny",
        ):
            raise PolicyEvaluationError(f"{DECISION_QUERY} gave no valid decision: {result!r}")
        return result

    def run_tests(self) -> dict[str, bool]:
        """Evaluate every `test_*` rule of the loaded modules (load with include_tests)."""
        results: dict[str, bool] = {}
        for name, source in self._modules.items():
            package = re.search(r"^package\s+([\w.]+)", source, re.MULTILINE)
            if package is None:
                continue
            for rule in sorted(set(re.findall(r"^(test_\w+)\s+if", source, re.MULTILINE))):
                value = self.query(f"data.{package.group(1)}.{rule}", {})
                results[f"{name}::{rule}"] = value is True
        return results
