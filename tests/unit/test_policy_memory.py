"""Policy decisions leave no native memory behind in the worker.

regopy's library brings its own operator new/delete; when another extension has loaded
libstdc++ first (protobuf's upb, which temporalio imports), every query leaks ~28 KB for
good, so the worker grew with every incident it decided. worker.py imports regopy first.
Each case runs in a fresh interpreter, with the imports in the order it names, and reads
VmRSS around 400 decisions of the shipped policy. The control case loads libstdc++ first
and must show the leak, so the measurement itself can fail.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from runtime.settings import PROJECT_ROOT

DECISIONS = 400
MEASURE = """
import json, sys
{imports}
from pathlib import Path
from policies.engine import PolicyEngine
from tests.unit.test_policy_engine import policy_input

def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")

engine = PolicyEngine.load(Path("policies"))
document = policy_input(risk="low", autonomy="autonomous")
for _ in range(50):  # the plan, the caches and the allocator's first arenas
    engine.decide(document)
before = rss_kb()
for _ in range({decisions}):
    assert engine.decide(document)["verdict"] == "allow"
print(json.dumps((rss_kb() - before) / {decisions}))
"""


def kb_per_decision(imports: str) -> float:
    script = MEASURE.format(imports=imports, decisions=DECISIONS)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return float(json.loads(done.stdout.strip().splitlines()[-1]))


def test_the_worker_decides_without_leaking() -> None:
    # Everything worker.py imports, in its order, before the engine is first used.
    assert kb_per_decision("import worker") < 4


@pytest.mark.parametrize("first", ["import google._upb._message", "import temporalio.client"])
def test_control_libstdcxx_loaded_before_regopy_leaks(first: str) -> None:
    assert kb_per_decision(first) > 15
