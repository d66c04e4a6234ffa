"""The worker's policy decisions come from a child process (policies/evaluator.py).

Real child processes running the real engine: the decisions must be the in-process engine's,
the child is replaced after N decisions and dies with its parent, it holds no secret from
the worker's environment, and a child that dies or is abandoned mid-question never gives
anyone a wrong or stale answer.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from policies.engine import PolicyEngine, PolicyEvaluationError
from policies.evaluator import PolicyEvaluator, check_program
from policies.program import PolicyLoadError, PolicyProgram
from runtime.settings import PROJECT_ROOT
from tests.unit.test_policy_engine import DECISION_OK, policy_dir, policy_input

POLICIES = PROJECT_ROOT / "policies"


def documents() -> list[dict[str, Any]]:
    """Inputs that the policy of `deny_cart` answers with each of its three verdicts."""
    return [
        policy_input(risk="low", autonomy="autonomous"),
        policy_input(),
        policy_input(target="cart", params={"service": "cart"}, autonomy="autonomous"),
        policy_input(risk="high", autonomy="autonomous"),
    ]


@pytest.fixture
def deny_cart(tmp_path: Path) -> PolicyEngine:
    """The shipped policy and data, with the cart service on the deny list."""
    shutil.copy(POLICIES / "remediation.rego", tmp_path)
    data = yaml.safe_load((POLICIES / "data.yaml").read_text())
    data["firebreak"]["deny_list"]["targets"] = ["cart"]
    (tmp_path / "data.yaml").write_text(yaml.safe_dump(data))
    return PolicyEngine.load(tmp_path)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too: it only waits for its parent to read its status.
    return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"


async def test_decisions_are_the_engines_own(deny_cart: PolicyEngine) -> None:
    evaluator = PolicyEvaluator(deny_cart.program)
    try:
        decided = [await evaluator.decide(document) for document in documents()]
    finally:
        await evaluator.aclose()
    assert decided == [deny_cart.decide(document) for document in documents()]
    assert {d["verdict"] for d in decided} == {"allow", "needs_approval", "deny"}
    assert evaluator.started == 1


async def test_the_child_is_replaced_after_n_decisions_and_the_old_one_exits(deny_cart: PolicyEngine) -> None:
    evaluator = PolicyEvaluator(deny_cart.program, decisions_per_process=3)
    pids: list[int] = []
    try:
        for document in documents() * 2:  # 8 decisions: children of 3, 3 and 2
            await evaluator.decide(document)
            if evaluator.child_pid is not None and evaluator.child_pid not in pids:
                pids.append(evaluator.child_pid)
        assert evaluator.started == len(pids) == 3
        assert not alive(pids[0]) and not alive(pids[1])
        assert evaluator.child_pid == pids[2] and alive(pids[2])  # 2 of its 3 decisions made
        assert os.getpid() not in pids
    finally:
        await evaluator.aclose()
    assert not alive(pids[2])


async def test_the_child_holds_no_secret_of_the_worker(
    deny_cart: PolicyEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIREBREAK_VAULT_TOKEN", "hvs.worker-secret-token")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-worker-secret")
    evaluator = PolicyEvaluator(deny_cart.program)
    try:
        await evaluator.decide(policy_input())
        assert evaluator.child_pid is not None
        environ = Path(f"/proc/{evaluator.child_pid}/environ").read_bytes()
    finally:
        await evaluator.aclose()
    names = {entry.split(b"=", 1)[0] for entry in environ.split(b"\0") if entry}
    assert names <= {b"PATH", b"PYTHONPATH"}
    assert b"worker-secret" not in environ


async def test_a_child_that_dies_fails_the_decision_and_the_next_one_is_answered(
    deny_cart: PolicyEngine,
) -> None:
    evaluator = PolicyEvaluator(deny_cart.program)
    allowed = policy_input(risk="low", autonomy="autonomous")
    try:
        await evaluator.decide(policy_input())
        assert evaluator.child_pid is not None
        os.kill(evaluator.child_pid, signal.SIGKILL)
        with pytest.raises(PolicyEvaluationError, match="policy evaluator process"):
            await evaluator.decide(allowed)
        decision = await evaluator.decide(allowed)
    finally:
        await evaluator.aclose()
    assert decision["verdict"] == "allow"
    assert evaluator.started == 2


async def test_an_abandoned_question_never_answers_the_next_one(deny_cart: PolicyEngine) -> None:
    evaluator = PolicyEvaluator(deny_cart.program)
    denied = policy_input(target="cart", params={"service": "cart"}, autonomy="autonomous")
    allowed = policy_input(risk="low", autonomy="autonomous")
    try:
        await evaluator.decide(allowed)  # the child is up
        asked = asyncio.create_task(evaluator.decide(denied))
        await asyncio.sleep(0)  # the question is on the pipe; its answer not read yet
        asked.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asked
        decision = await evaluator.decide(allowed)
    finally:
        await evaluator.aclose()
    assert decision["verdict"] == "allow"


async def test_a_policy_error_is_an_error_and_the_child_keeps_serving(tmp_path: Path) -> None:
    maybe = DECISION_OK.replace('"verdict": "allow"', '"verdict": "maybe"')
    evaluator = PolicyEvaluator(PolicyEngine.load(policy_dir(tmp_path, {"p.rego": maybe})).program)
    try:
        for _ in range(2):
            with pytest.raises(PolicyEvaluationError, match="no valid decision"):
                await evaluator.decide(policy_input())
    finally:
        await evaluator.aclose()
    assert evaluator.started == 1


async def test_a_policy_edited_on_disk_does_not_slip_in_at_a_restart(tmp_path: Path) -> None:
    directory = policy_dir(tmp_path, {"p.rego": DECISION_OK})
    evaluator = PolicyEvaluator(PolicyEngine.load(directory).program, decisions_per_process=1)
    try:
        first = await evaluator.decide(policy_input())
        (directory / "p.rego").write_text(DECISION_OK.replace('"verdict": "allow"', '"verdict": "deny"'))
        second = await evaluator.decide(policy_input())  # from a new child
    finally:
        await evaluator.aclose()
    assert evaluator.started == 2
    assert first["verdict"] == second["verdict"] == "allow"


def test_the_child_dies_with_the_worker() -> None:
    """A worker killed with SIGKILL leaves no evaluator behind (the child exits at EOF)."""
    parent = textwrap.dedent(
        """
        import asyncio, sys, time
        from pathlib import Path
        from policies.engine import PolicyEngine
        from policies.evaluator import PolicyEvaluator
        from tests.unit.test_policy_engine import policy_input

        async def main() -> None:
            evaluator = PolicyEvaluator(PolicyEngine.load(Path(sys.argv[1])).program)
            await evaluator.decide(policy_input())
            print(evaluator.child_pid, flush=True)
            time.sleep(60)

        asyncio.run(main())
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", parent, str(POLICIES)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    ) as worker:
        try:
            assert worker.stdout is not None
            child = int(worker.stdout.readline())
            assert alive(child)
        finally:
            worker.kill()
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)


def test_decisions_per_process_must_be_positive(deny_cart: PolicyEngine) -> None:
    with pytest.raises(ValueError, match="decisions_per_process"):
        PolicyEvaluator(deny_cart.program, decisions_per_process=0)


def test_a_program_that_does_not_compile_is_refused_with_file_and_line(tmp_path: Path) -> None:
    broken = DECISION_OK + "\nbroken := {\n"
    program = PolicyProgram.read(policy_dir(tmp_path, {"p.rego": broken}))
    with pytest.raises(PolicyLoadError, match=r"p\.rego:\d+:"):
        check_program(program)
    check_program(PolicyProgram.read(POLICIES))  # the shipped policy compiles


async def test_a_child_whose_program_does_not_compile_fails_every_decision(tmp_path: Path) -> None:
    program = PolicyProgram.read(policy_dir(tmp_path, {"p.rego": DECISION_OK + "\nbroken := {\n"}))
    evaluator = PolicyEvaluator(program)
    try:
        for _ in range(2):
            with pytest.raises(PolicyEvaluationError, match="does not compile"):
                await evaluator.decide(policy_input())
    finally:
        await evaluator.aclose()
    assert evaluator.child_pid is None


def test_the_worker_never_loads_regopy() -> None:
    """Its policies are checked and decided by evaluator children (policies/evaluator.py)."""
    probe = (
        "import sys, worker\n"
        "from runtime.settings import Settings\n"
        "worker.build_incident_activities(Settings(vault_token='t'))\n"
        "print('regopy' in sys.modules, 'policies.engine' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "False"]


async def test_a_child_that_stops_answering_fails_the_decision_and_is_replaced(
    deny_cart: PolicyEngine,
) -> None:
    """A stuck child (here: stopped) fails its decision within the answer timeout and is
    killed; it never holds the activity, the lock or the worker's shutdown for ever."""
    evaluator = PolicyEvaluator(deny_cart.program, answer_timeout=1.0)
    allowed = policy_input(risk="low", autonomy="autonomous")
    try:
        await evaluator.decide(allowed)
        stuck = evaluator.child_pid
        assert stuck is not None
        os.kill(stuck, signal.SIGSTOP)
        with pytest.raises(PolicyEvaluationError, match="did not answer within 1 s"):
            await evaluator.decide(allowed)
        assert not alive(stuck)
        decision = await evaluator.decide(allowed)
    finally:
        await evaluator.aclose()
    assert decision["verdict"] == "allow"
    assert evaluator.started == 2
    with pytest.raises(ValueError, match="answer_timeout"):
        PolicyEvaluator(deny_cart.program, answer_timeout=0)
