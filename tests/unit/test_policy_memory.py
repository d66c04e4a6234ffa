"""Policy decisions leave no native memory behind, in the worker or in its evaluator.

regopy's library brings its own operator new/delete; in a process where another extension
loaded libstdc++ first (protobuf's upb, which temporalio imports), every query leaks ~28 KB
for good (policies/evaluator.py). The worker therefore decides through a child process that
loads regopy alone. Each case runs in a fresh interpreter, imports what it names, and reads
VmRSS around 400 decisions of the shipped policy. The control decides in process after
temporalio and must show the leak, so the measurement itself can fail.
"""

from __future__ import annotations

import json
import subprocess
import sys

from runtime.settings import PROJECT_ROOT

DECISIONS = 400
MEASURE = """
import asyncio, json
{imports}
from pathlib import Path
from policies.engine import PolicyEngine
from policies.evaluator import PolicyEvaluator
from tests.unit.test_policy_engine import policy_input

def rss_kb(pid: object = "self") -> int:
    for line in Path(f"/proc/{{pid}}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")

engine = PolicyEngine.load(Path("policies"))
document = policy_input(risk="low", autonomy="autonomous")

async def main() -> dict[str, float]:
    evaluator = PolicyEvaluator(engine.program, decisions_per_process=10 * {decisions})
    if {in_process}:
        async def decide() -> None:
            assert engine.decide(document)["verdict"] == "allow"
    else:
        async def decide() -> None:
            assert (await evaluator.decide(document))["verdict"] == "allow"
    for _ in range(50):  # the plan, the caches and the allocator's first arenas
        await decide()
    child = evaluator.child_pid
    before = rss_kb(), rss_kb(child) if child else 0
    for _ in range({decisions}):
        await decide()
    assert evaluator.child_pid == child and evaluator.started <= 1
    after = rss_kb(), rss_kb(child) if child else 0
    await evaluator.aclose()
    return {{"asker": (after[0] - before[0]) / {decisions}, "child": (after[1] - before[1]) / {decisions}}}

print(json.dumps(asyncio.run(main())))
"""


def kb_per_decision(imports: str, in_process: bool) -> dict[str, float]:
    script = MEASURE.format(imports=imports, decisions=DECISIONS, in_process=in_process)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-2000:]
    grown: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return grown


def test_the_worker_and_its_evaluator_decide_without_leaking() -> None:
    # Everything worker.py imports, in its order, then decisions as the policy activity asks.
    grown = kb_per_decision("import worker", in_process=False)
    assert grown["asker"] < 4
    assert grown["child"] < 4


def test_control_deciding_in_a_process_that_loaded_temporalio_first_leaks() -> None:
    assert kb_per_decision("import temporalio.client", in_process=True)["asker"] > 15
