"""What the shipped Rego tests cost the suite: loading them, then running them.

    python bench/bench_rego_tests.py [--policies policies]

The same calls as tests/unit/test_policy_engine.py's `rego_results` fixture, in this process:
`PolicyEngine.load(..., include_tests=True)` then `run_tests()`, each timed (CPU and wall) with
the process's peak RSS after it (the peak only grows, so the second figure covers both).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_common import report

from policies.engine import PolicyEngine
from runtime.settings import PROJECT_ROOT


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", type=Path, default=PROJECT_ROOT / "policies")
    args = parser.parse_args()

    cpu, wall = time.process_time(), time.perf_counter()
    engine = PolicyEngine.load(args.policies, include_tests=True)
    load_cpu, load_wall, load_rss = time.process_time() - cpu, time.perf_counter() - wall, peak_rss_mb()

    cpu, wall = time.process_time(), time.perf_counter()
    results = engine.run_tests()
    run_cpu, run_wall = time.process_time() - cpu, time.perf_counter() - wall

    report(
        {
            "rego tests": len(results),
            "passed": sum(results.values()),
            "load cpu s": round(load_cpu, 2),
            "load wall s": round(load_wall, 2),
            "peak rss after load MB": round(load_rss),
            "run_tests cpu s": round(run_cpu, 2),
            "run_tests wall s": round(run_wall, 2),
            "peak rss after run_tests MB": round(peak_rss_mb()),
        }
    )


if __name__ == "__main__":
    main()
