"""Evaluate the Rego policies in-process with regopy.

All `*.rego` files in the policies directory (tests excluded) are loaded with the data in
`data.yaml`. Loading is checked once at start: a syntax error or bad data raises
`PolicyLoadError` naming the file and line (or, for data, the key: policies/data.py), so
a broken policy stops the worker instead of silently allowing.

Compiling the modules is most of an evaluation's cost, so each thread keeps one compiled
interpreter and only swaps its input (activities evaluate on the event loop's thread, so
no two evaluations share one). An interpreter that raised is dropped, never reused.
"""

from __future__ import annotations

import json
import re
import threading
from functools import partial
from pathlib import Path
from typing import Any

import yaml
from regopy import Input, Interpreter, RegoError

from policies.data import check_policy_data
from runtime.bounded import load_yaml_file

DECISION_QUERY = "data.firebreak.remediation.decision"
_ERROR_LOCATION = re.compile(r"\(error \d+:(?P<file>[^|]+)\|(?P<offset>\d+)\|")
_ERRMSG = re.compile(r"\(errormsg \d+:(?P<msg>[^)]*)\)")
_PACKAGE = re.compile(r"^package\s+([\w.]+)", re.MULTILINE)
_TEST_BLOCK = re.compile(r"^(test_\w+)\s+if\s*\{.*?^\}\n?", re.MULTILINE | re.DOTALL)


class PolicyLoadError(ValueError):
    """A policy file or the policy data does not load."""


class PolicyEvaluationError(RuntimeError):
    """A policy evaluated to something other than a well-formed decision."""


class PolicyEngine:
    def __init__(self, modules: dict[str, str], data: dict[str, Any], directory: Path) -> None:
        self._modules = modules
        self._data = data
        self.directory = directory
        self._local = threading.local()

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
            data = load_yaml_file(data_path) if data_path.exists() else {}  # bounded (runtime/bounded.py)
        except yaml.YAMLError as exc:
            raise PolicyLoadError(f"{data_path}: {exc}") from exc
        if not isinstance(data, dict):
            raise PolicyLoadError(f"{data_path}: expected a mapping at the top level")
        problems = check_policy_data(data)
        if problems:
            raise PolicyLoadError(f"{data_path}: bad policy data:\n{problems}")
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
        # The policies compile together and their packages are evaluated. Each test module
        # compiles on its own: regopy 1.5 compiles the policy into every test rule's `with`
        # chain, so fifty-odd tests beside the policy took ~15 s and ~10 GB at load; the tests
        # meet the policy one at a time in run_tests.
        policies = {name: source for name, source in self._modules.items() if not _is_test(name)}
        tests = {name: source for name, source in self._modules.items() if _is_test(name)}
        try:
            rego = PolicyEngine(policies, self._data, self.directory)._interpreter()
            for package in _packages(policies) or ["firebreak"]:
                rego.query(f"data.{package}")
            for name, source in tests.items():
                alone = PolicyEngine({name: source}, self._data, self.directory)._interpreter()
                for package in _packages({name: source}):
                    alone.query(f"data.{package}")
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
        rego: Interpreter | None = getattr(self._local, "rego", None)
        if rego is None:
            rego = self._local.rego = self._interpreter()
        try:
            rego.set_input(Input(input))
            output = rego.query(query)
        except RegoError as exc:
            self._local.rego = None
            raise PolicyEvaluationError(self._describe(exc)) from None
        text = str(output)
        if not output.ok():
            self._local.rego = None
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
        """Evaluate every `test_*` rule of the loaded modules (load with include_tests).

        Each test runs in its own interpreter, with the other test rules of its module cut
        out: regopy 1.5 evaluates every rule of the program again under each `with`, so a
        test that shares its program with fifty others costs fifty evaluations. A test rule
        is cut as a block from `test_x if {` to the next `}` in column 0 (opa fmt layout);
        a rule written otherwise simply stays in (slower, never wrong).
        """
        results: dict[str, bool] = {}
        for name, source in self._modules.items():
            package = _PACKAGE.search(source)
            if package is None:
                continue
            for rule in sorted(set(re.findall(r"^(test_\w+)\s+if", source, re.MULTILINE))):
                alone = _TEST_BLOCK.sub(partial(_keep_only, rule), source)
                engine = PolicyEngine({**self._modules, name: alone}, self._data, self.directory)
                value = engine.query(f"data.{package.group(1)}.{rule}", {})
                results[f"{name}::{rule}"] = value is True
        return results


def _is_test(name: str) -> bool:
    return name.endswith("_test.rego")


def _packages(modules: dict[str, str]) -> list[str]:
    return sorted(
        {found.group(1) for source in modules.values() if (found := _PACKAGE.search(source)) is not None}
    )


def _keep_only(rule: str, match: re.Match[str]) -> str:
    return match.group(0) if match.group(1) == rule else ""
