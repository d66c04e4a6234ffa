"""The policy evaluator's child process: `python -m policies.evaluator_child`.

It imports the engine and nothing else that uses C++ (policies/evaluator.py says why),
and not the parent's asyncio side either, so it stays small (~30 MB). The program (modules
and data) comes on the first line of stdin; the child compiles it and answers
`{"ready": true}` or `{"error": "<file>:<line>: ..."}` (and exits). Then one decision input
per line, one answer per line on stdout: `{"decision": {...}}` or `{"error": "..."}`. It
exits at EOF.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from policies.engine import PolicyEngine, PolicyEvaluationError, PolicyLoadError


def serve() -> None:
    # The answers get the original stdout to themselves: regopy's C++ prints parse errors
    # on file descriptor 1, which from here on goes to stderr (the worker's log).
    stdin, stdout = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    program = json.loads(stdin.readline() or b"null")
    if not isinstance(program, dict):
        return  # the worker went away before sending the program
    engine = PolicyEngine(program["modules"], program["data"], Path(program["directory"]))
    try:
        engine.check_compiles()
    except PolicyLoadError as exc:
        stdout.write(json.dumps({"error": str(exc)}).encode() + b"\n")
        stdout.flush()
        return
    stdout.write(b'{"ready": true}\n')
    stdout.flush()
    for line in stdin:
        try:
            answer: dict[str, Any] = {"decision": engine.decide(json.loads(line))}
        except PolicyEvaluationError as exc:
            answer = {"error": str(exc)}
        stdout.write(json.dumps(answer).encode() + b"\n")
        stdout.flush()


if __name__ == "__main__":
    serve()
