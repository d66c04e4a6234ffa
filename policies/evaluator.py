"""Policy decisions in a child process of their own, replaced every N decisions.

regopy 1.5.2's library defines its own operator new/delete. In a process where another
extension loaded libstdc++ first (protobuf's upb, which temporalio imports: any worker),
memory libstdc++ allocates is freed into regopy's allocator and never comes back: +28 KB of
RSS per decision, for good, so the worker grew with every incident it ever decided
(`bench/bench_policy_memory.py`). Loaded first instead, regopy's allocator takes over
libstdc++ for every C++ library loaded after it, and torch aborts ("double free or
corruption") in the memory worker. So the worker asks a child process
(`policies/evaluator_child.py`, ~30 MB) that loads regopy and no other C++ library: it does
not leak, and it is replaced after `decisions_per_process` decisions anyway, which bounds it
whatever a policy or a regopy version does. A decision costs ~0.75 ms with the round trip.

The child is given the modules and data the worker loaded and checked at start, never the
directory, so a policy edited on disk mid-run does not slip in at a restart. It gets no
secret either: its environment is PATH and PYTHONPATH only. It reads one JSON document per
line on stdin and answers one line on stdout; it exits at EOF, so it dies with the worker.
A child that dies or answers garbage fails the decision (PolicyEvaluationError, the
activity retries), never an allow.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from policies.engine import PolicyEngine, PolicyEvaluationError

DEFAULT_DECISIONS_PER_PROCESS = 1000
_PROJECT_ROOT = Path(__file__).resolve().parent.parent
# A decision answer is a few hundred bytes; the limit only bounds a broken child's line.
_MAX_ANSWER = 1 << 20


class PolicyEvaluator:
    """The engine's `decide`, run in a child process replaced every N decisions."""

    def __init__(
        self, engine: PolicyEngine, *, decisions_per_process: int = DEFAULT_DECISIONS_PER_PROCESS
    ) -> None:
        if decisions_per_process < 1:
            raise ValueError(f"decisions_per_process: must be at least 1, got {decisions_per_process}")
        self._program = json.dumps(
            {"modules": engine.modules, "data": engine.data, "directory": str(engine.directory)}
        ).encode()
        self._decisions_per_process = decisions_per_process
        self._lock = asyncio.Lock()
        self._child: asyncio.subprocess.Process | None = None
        self._served = 0
        self.started = 0  # children started so far (for tests and benchmarks)

    @property
    def child_pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    async def decide(self, document: dict[str, Any]) -> dict[str, Any]:
        line = json.dumps(document).encode() + b"\n"
        async with self._lock:  # one question at a time on the child's pipe
            child = await self._running()
            assert child.stdin is not None and child.stdout is not None
            try:
                child.stdin.write(line)
                await child.stdin.drain()
                raw = await child.stdout.readline()
            except (ConnectionError, ValueError) as exc:  # ValueError: a line past _MAX_ANSWER
                await self._stop()
                raise PolicyEvaluationError(f"the policy evaluator process failed: {exc}") from None
            except asyncio.CancelledError:
                # Its answer would reach the next question: this child is done.
                self._child = None
                child.kill()
                raise
            if not raw.endswith(b"\n"):
                code = await self._stop()
                raise PolicyEvaluationError(f"the policy evaluator process exited (code {code})")
            self._served += 1
            if self._served >= self._decisions_per_process:
                await self._stop()
        return _answer(raw)

    async def aclose(self) -> None:
        async with self._lock:
            await self._stop()

    async def _running(self) -> asyncio.subprocess.Process:
        if self._child is None:
            self._child = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "policies.evaluator_child",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                cwd=_PROJECT_ROOT,
                env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(_PROJECT_ROOT)},
                limit=_MAX_ANSWER,
            )
            self._served = 0
            self.started += 1
            assert self._child.stdin is not None
            self._child.stdin.write(self._program + b"\n")
        return self._child

    async def _stop(self) -> int | None:
        """Close the child's stdin (it exits at EOF) and reap it; kill it if it lingers."""
        child, self._child = self._child, None
        if child is None:
            return None
        if child.stdin is not None and not child.stdin.is_closing():
            child.stdin.close()
        try:
            return await asyncio.wait_for(child.wait(), timeout=5)
        except TimeoutError:
            child.kill()
            return await child.wait()


def _answer(raw: bytes) -> dict[str, Any]:
    try:
        answer = json.loads(raw)
    except json.JSONDecodeError:
        raise PolicyEvaluationError("the policy evaluator process gave an unreadable answer") from None
    if isinstance(answer, dict) and isinstance(answer.get("error"), str):
        raise PolicyEvaluationError(answer["error"])
    decision = answer.get("decision") if isinstance(answer, dict) else None
    if not isinstance(decision, dict):
        raise PolicyEvaluationError("the policy evaluator process gave no decision")
    return decision
