"""The policy evaluator's child process: `python -m policies.evaluator_child`.

It imports the engine and nothing else that uses C++ (policies/evaluator.py says why),
and not the parent's asyncio side either, so it stays small (~27 MB). The program (modules
and data) comes on the first line of stdin; then one decision input per line, one answer
per line on stdout: `{"decision": {...}}` or `{"error": "..."}`. It exits at EOF.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from policies.engine import PolicyEngine, PolicyEvaluationError


def serve() -> None:
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    program = json.loads(stdin.readline() or b"null")
    if not isinstance(program, dict):
        return  # the worker went away before sending the program
    engine = PolicyEngine(program["modules"], program["data"], Path(program["directory"]))
    for line in stdin:
        try:
            answer: dict[str, Any] = {"decision": engine.decide(json.loads(line))}
        except PolicyEvaluationError as exc:
            answer = {"error": str(exc)}
        stdout.write(json.dumps(answer).encode() + b"\n")
        stdout.flush()


if __name__ == "__main__":
    serve()
