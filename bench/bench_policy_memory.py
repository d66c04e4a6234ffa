"""What a policy decision costs in memory and time: in the worker's process, or its evaluator.

    .venv/bin/python bench/bench_policy_memory.py [--decisions 2000]

regopy's library defines its own operator new/delete. In a process where another extension
loaded libstdc++ first (protobuf's upb, which temporalio imports), memory libstdc++ allocates
is freed into the wrong allocator and never comes back (policies/evaluator.py; imported
first instead, regopy takes over libstdc++ for torch too, which aborts). Each row runs in a
fresh interpreter that imports what the worker imports (`import worker`), then has the
shipped policy (policies/, data.yaml) decide a real input `--decisions` times:
- in process, ad hoc (`Interpreter.query`: the program compiled per query; the worker did
  this before), or with a compiled plan (`PolicyEngine.decide`, a Bundle);
- through `policies.evaluator` (what the worker does now): the asking process's RSS and
  the child's are both read.
It prints ms per decision, RSS growth per decision, and what glibc's malloc_trim gives back
afterwards (in process). Numbers, not pass/fail.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROW = """
import asyncio, ctypes, gc, json, time
import worker  # the worker's imports, in its order
from pathlib import Path
from policies.engine import DECISION_QUERY, PolicyEngine
from policies.evaluator import PolicyEvaluator
from tests.unit.test_policy_engine import policy_input

def rss_mb(pid: object = "self") -> float:
    for line in Path(f"/proc/{{pid}}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0

engine = PolicyEngine.load(Path("policies"))
document = policy_input(risk="low", autonomy="autonomous")
how, per = {how!r}, {decisions}

async def main() -> list[float]:
    evaluator = PolicyEvaluator(engine.program, decisions_per_process=per + 100)
    async def ask() -> None:
        if how == "adhoc":
            engine.query(DECISION_QUERY, document)
        elif how == "compiled":
            engine.decide(document)
        else:
            await evaluator.decide(document)
    for _ in range(20):
        await ask()
    child = evaluator.child_pid
    before, child_before, start = rss_mb(), rss_mb(child) if child else 0.0, time.perf_counter()
    for _ in range(per):
        await ask()
    seconds, after, child_after = time.perf_counter() - start, rss_mb(), rss_mb(child) if child else 0.0
    await evaluator.aclose()
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    growth = (after - before) * 1024 / per
    child_growth = (child_after - child_before) * 1024 / per
    return [seconds * 1000 / per, growth, after - rss_mb(), after, child_growth, child_after]

print(json.dumps(asyncio.run(main())))
"""
HOWS = {
    "adhoc": "in the worker, ad hoc (before)",
    "compiled": "in the worker, compiled plan",
    "evaluator": "evaluator child (now)",
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--decisions", type=int, default=2000)
    args = parser.parse_args()
    print(f"{args.decisions} decisions of the shipped policy per row, each row in a fresh interpreter")
    header = ("how", "ms/decision", "KB/decision", "trim MB", "RSS MB", "child KB/dec.", "child MB")
    print("{:<31} {:>11} {:>11} {:>8} {:>7} {:>13} {:>8}".format(*header))
    for how, label in HOWS.items():
        script = ROW.format(how=how, decisions=args.decisions)
        done = subprocess.run(
            [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
        )
        ms, kb, trimmed, rss, child_kb, child_mb = json.loads(done.stdout.strip().splitlines()[-1])
        child = f"{child_kb:>13.1f} {child_mb:>8.1f}" if how == "evaluator" else f"{'-':>13} {'-':>8}"
        print(f"{label:<31} {ms:>11.2f} {kb:>11.1f} {trimmed:>8.1f} {rss:>7.1f} {child}")


if __name__ == "__main__":
    main()
