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
import subprocess
import sys
from pathlib import Path
from typing import Any

from policies.program import PolicyEvaluationError, PolicyLoadError, PolicyProgram

DEFAULT_DECISIONS_PER_PROCESS = 1000
# A decision takes about a millisecond and compiling the shipped policies well under a second:
# a child silent this long is stuck, and a stuck child must not hold the worker (its activity,
# the lock every other decision waits on, the worker's shutdown) for ever.
ANSWER_TIMEOUT_SECONDS = 30.0
_PROJECT_ROOT = Path(__file__).resolve().parent.parent
_CHILD = (sys.executable, "-m", "policies.evaluator_child")
# No secret of the worker's: the child needs only to find Python and the project.
_CHILD_ENV = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(_PROJECT_ROOT)}
# A decision answer is a few hundred bytes; the limit only bounds a broken child's line.
_MAX_ANSWER = 1 << 20


def check_program(program: PolicyProgram, timeout: float = 120) -> None:
    """Compile the program in a child, as the evaluator will: PolicyLoadError if it fails.

    The worker calls this at start, so a policy that does not compile stops it with the
    file and line, and the worker itself never loads regopy.
    """
    try:
        done = subprocess.run(
            _CHILD,
            input=_program_line(program),
            capture_output=True,
            cwd=_PROJECT_ROOT,
            env=_CHILD_ENV,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise PolicyLoadError(
            f"{program.directory}: the policies did not compile within {timeout} s"
        ) from None
    first = done.stdout.split(b"\n", 1)[0]
    try:
        answer = json.loads(first)
    except json.JSONDecodeError:
        tail = done.stderr.decode(errors="replace")[-500:]
        raise PolicyLoadError(f"{program.directory}: the policy evaluator failed: {tail}") from None
    if isinstance(answer, dict) and isinstance(answer.get("error"), str):
        raise PolicyLoadError(answer["error"])
    if not (isinstance(answer, dict) and answer.get("ready") is True):
        raise PolicyLoadError(f"{program.directory}: the policy evaluator did not get ready")


def _program_line(program: PolicyProgram) -> bytes:
    fields = {"modules": program.modules, "data": program.data, "directory": str(program.directory)}
    return json.dumps(fields).encode() + b"\n"


class PolicyEvaluator:
    """`PolicyEngine.decide` for a program, in a child process replaced every N decisions."""

    def __init__(
        self,
        program: PolicyProgram,
        *,
        decisions_per_process: int = DEFAULT_DECISIONS_PER_PROCESS,
        answer_timeout: float = ANSWER_TIMEOUT_SECONDS,
    ) -> None:
        if decisions_per_process < 1:
            raise ValueError(f"decisions_per_process: must be at least 1, got {decisions_per_process}")
        if answer_timeout <= 0:
            raise ValueError(f"answer_timeout: must be positive, got {answer_timeout}")
        self._answer_timeout = answer_timeout
        self._program = _program_line(program)
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
            raw = await self._ask(self._child or await self._ready_child(), line)
            self._served += 1
            if self._served >= self._decisions_per_process:
                await self._stop()
        decision = _answer(raw, "decision")
        if not isinstance(decision, dict):
            raise PolicyEvaluationError("the policy evaluator process gave no decision")
        return decision

    async def aclose(self) -> None:
        async with self._lock:
            await self._stop()

    async def _ready_child(self) -> asyncio.subprocess.Process:
        """A new child, given the program; it answers ready once the program compiled."""
        child = await self._start()
        try:
            if _answer(await self._ask(child, self._program), "ready") is not True:
                raise PolicyEvaluationError("the policy evaluator process did not get ready")
        except PolicyEvaluationError:
            await self._stop()
            raise
        return child

    async def _start(self) -> asyncio.subprocess.Process:
        self._child = await asyncio.create_subprocess_exec(
            *_CHILD,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=_PROJECT_ROOT,
            env=_CHILD_ENV,
            limit=_MAX_ANSWER,
        )
        self._served = 0
        self.started += 1
        return self._child

    async def _ask(self, child: asyncio.subprocess.Process, line: bytes) -> bytes:
        """One line to the child, its one line back; a child that fails is stopped."""
        assert child.stdin is not None and child.stdout is not None
        try:
            async with asyncio.timeout(self._answer_timeout):  # not wait_for: it can swallow a cancel
                child.stdin.write(line)
                await child.stdin.drain()
                raw = await child.stdout.readline()
        except (ConnectionError, ValueError) as exc:  # ValueError: a line past _MAX_ANSWER
            await self._stop()
            raise PolicyEvaluationError(f"the policy evaluator process failed: {exc}") from None
        except TimeoutError:
            # Its late answer would reach the next question: this child is done.
            self._child = None
            child.kill()
            await child.wait()
            raise PolicyEvaluationError(
                f"the policy evaluator process did not answer within {self._answer_timeout:g} s"
            ) from None
        except asyncio.CancelledError:
            # Its answer would reach the next question: this child is done.
            self._child = None
            child.kill()
            raise
        if not raw.endswith(b"\n"):
            code = await self._stop()
            raise PolicyEvaluationError(f"the policy evaluator process exited (code {code})")
        return raw

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


def _answer(raw: bytes, key: str) -> Any:
    """The child's answer under `key`; its error as PolicyEvaluationError."""
    try:
        answer = json.loads(raw)
    except json.JSONDecodeError:
        raise PolicyEvaluationError("the policy evaluator process gave an unreadable answer") from None
    if not isinstance(answer, dict):
        raise PolicyEvaluationError("the policy evaluator process gave an unreadable answer")
    if isinstance(answer.get("error"), str):
        raise PolicyEvaluationError(answer["error"])
    return answer.get(key)
