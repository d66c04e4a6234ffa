"""Evaluate the Rego policies in-process with regopy.

All `*.rego` files in the policies directory (tests excluded) are loaded with the data in
`data.yaml`. Loading is checked once at start: a syntax error or bad data raises
`PolicyLoadError` naming the file and line (or, for data, the key: policies/data.py), so
a broken policy stops the worker instead of silently allowing.

Compiling the modules is most of an evaluation's cost, so each thread keeps one
interpreter, with a compiled plan for the decision, and only swaps its input. An
interpreter that raised is dropped, never reused.

The worker does not run this engine in its own process: policies/evaluator.py says why.
"""

from __future__ import annotations

import json
import re
import threading
from functools import partial
from pathlib import Path
from typing import Any

from regopy import Bundle, Input, Interpreter, RegoError

from policies.program import DECISION_QUERY, PolicyEvaluationError, PolicyLoadError, PolicyProgram

__all__ = ["DECISION_QUERY", "PolicyEngine", "PolicyEvaluationError", "PolicyLoadError"]

_ERROR_LOCATION = re.compile(r"\(error \d+:(?P<file>[^|]+)\|(?P<offset>\d+)\|")
_ERRMSG = re.compile(r"\(errormsg \d+:(?P<msg>[^)]*)\)")
_PACKAGE = re.compile(r"^package\s+([\w.]+)", re.MULTILINE)
_TEST_BLOCK = re.compile(r"^(test_\w+)\s+if\s*\{.*?^\}\n?", re.MULTILINE | re.DOTALL)


class PolicyEngine:
    def __init__(self, modules: dict[str, str], data: dict[str, Any], directory: Path) -> None:
        self._modules = modules
        self._data = data
        self.directory = directory
        self._local = threading.local()

    @property
    def modules(self) -> dict[str, str]:
        """The Rego sources by file name, as loaded."""
        return dict(self._modules)

    @property
    def data(self) -> dict[str, Any]:
        """The policy data, as loaded and checked."""
        return self._data

    @property
    def program(self) -> PolicyProgram:
        return PolicyProgram(dict(self._modules), self._data, self.directory)

    @classmethod
    def load(cls, directory: Path, include_tests: bool = False) -> PolicyEngine:
        """Read and check the directory's program (PolicyProgram.read), then compile it."""
        program = PolicyProgram.read(directory, include_tests)
        engine = cls(program.modules, program.data, program.directory)
        engine.check_compiles()
        return engine

    def _interpreter(self) -> Interpreter:
        rego = Interpreter()
        rego.add_data_json(json.dumps(self._data))
        for name, source in self._modules.items():
            rego.add_module(name, source)
        return rego

    def check_compiles(self) -> None:
        """Raise PolicyLoadError naming file and line if the program does not compile."""
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

    def query(self, query: str, input: dict[str, Any], *, compiled: bool = False) -> Any:
        """Evaluate `query` with `input`; `compiled` reuses a plan built once per thread.

        regopy compiles the whole program again for every ad-hoc query (~7 ms here); a
        plan (a Bundle) is built once and then runs in under 1 ms, so the queries a worker
        asks again and again use one. A one-off query (a policy test) would only pay the
        plan's build on top, so it asks ad hoc.
        """
        rego: Interpreter | None = getattr(self._local, "rego", None)
        plans: dict[str, Bundle] = getattr(self._local, "plans", {})
        try:
            if rego is None:
                rego = self._local.rego = self._interpreter()
                self._local.plans = plans = {}
            rego.set_input(Input(input))
            if compiled:
                plan = plans.get(query)
                if plan is None:
                    plan = plans[query] = rego.build(query)
                output = rego.query_bundle(plan)
            else:
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
        result = self.query(DECISION_QUERY, input, compiled=True)
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
