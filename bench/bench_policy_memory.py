"""What a policy decision costs in memory and time, by import order and query kind.

    .venv/bin/python bench/bench_policy_memory.py [--decisions 2000]

regopy's library defines its own operator new/delete. Loaded after another extension has
loaded libstdc++ (protobuf's upb, which temporalio imports), memory libstdc++ allocates is
freed into the wrong allocator and never comes back. Each row runs in a fresh interpreter:
the imports named, then the shipped policy (policies/, data.yaml) deciding a real input
`--decisions` times, ad hoc (`Interpreter.query`: the whole program compiled per query,
as the engine asked before) or with a compiled plan (`PolicyEngine.decide`, a Bundle).
It prints ms per decision, RSS growth per decision, and what glibc's malloc_trim gives
back afterwards. Numbers, not pass/fail.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROW = """
import ctypes, gc, json, time
{imports}
from pathlib import Path
from policies.engine import DECISION_QUERY, PolicyEngine
from tests.unit.test_policy_engine import policy_input

def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0

engine = PolicyEngine.load(Path("policies"))
document = policy_input(risk="low", autonomy="autonomous")
ask = (lambda: engine.decide(document)) if {compiled} else (lambda: engine.query(DECISION_QUERY, document))
for _ in range(20):
    ask()
before, start = rss_mb(), time.perf_counter()
for _ in range({decisions}):
    ask()
seconds, after = time.perf_counter() - start, rss_mb()
gc.collect()
ctypes.CDLL("libc.so.6").malloc_trim(0)
per = {decisions}
print(json.dumps([seconds * 1000 / per, (after - before) * 1024 / per, after - rss_mb(), after]))
"""
ORDERS = {
    "regopy first (worker.py)": "import worker",
    "libstdc++ first (temporalio)": "import temporalio.client",
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--decisions", type=int, default=2000)
    args = parser.parse_args()
    print(f"{args.decisions} decisions of the shipped policy per row, each row in a fresh interpreter")
    header = ("imports", "query", "ms/decision", "RSS KB/decision", "trim MB", "RSS MB")
    print("{:<30} {:<9} {:>11} {:>16} {:>8} {:>7}".format(*header))
    for order, imports in ORDERS.items():
        for compiled in (False, True):
            script = ROW.format(imports=imports, compiled=compiled, decisions=args.decisions)
            done = subprocess.run(
                [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
            )
            ms, kb, trimmed, rss = json.loads(done.stdout.strip().splitlines()[-1])
            kind = "compiled" if compiled else "ad hoc"
            print(f"{order:<30} {kind:<9} {ms:>11.2f} {kb:>16.1f} {trimmed:>8.1f} {rss:>7.1f}")


if __name__ == "__main__":
    main()
