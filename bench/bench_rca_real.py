"""Root-cause ranking on real incidents: the committed Nezha and PetShop scenarios, per system and fault type.

    .venv/bin/python bench/bench_rca_real.py [DIR ...] [--no-robustness]

Default DIRs: datasets/nezha/{online-boutique,train-ticket} and
datasets/petshop/{high,low}-traffic. Prints the harness table (per system and fault type, the
ranking beside the most-anomalous, symptom, BARO-style and PageRank baselines; the robustness
runs: window shifted by -15/-5/+5/+15 min, symptom off the root cause's path, traces, logs or
both removed) and one JSON line. The same
numbers as `firebreak rca eval DIR... --robustness`. Numbers, not pass/fail.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evals.rca.evaluate import evaluate, render  # noqa: E402
from evals.rca.scenario import find_scenarios  # noqa: E402

DEFAULT = [
    ROOT / "datasets" / "nezha" / "online-boutique",
    ROOT / "datasets" / "nezha" / "train-ticket",
    ROOT / "datasets" / "petshop" / "high-traffic",
    ROOT / "datasets" / "petshop" / "low-traffic",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("dirs", nargs="*", type=Path, default=DEFAULT)
    parser.add_argument("--no-robustness", action="store_true", help="only the scenarios as recorded")
    args = parser.parse_args()
    paths = find_scenarios(args.dirs)
    started = time.perf_counter()
    report = evaluate(paths, robustness=not args.no_robustness)
    wall = time.perf_counter() - started
    print(render(report))
    seconds = sorted(c.seconds for c in report.cases)
    p95 = seconds[int(0.95 * (len(seconds) - 1))]
    print(
        f"{len(paths)} scenarios; ranking (load + rank) per scenario: median "
        f"{statistics.median(seconds) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
        f"max {seconds[-1] * 1000:.0f} ms; whole run {wall:.1f} s"
    )
    print(json.dumps({"benchmark": "rca_real", **report.to_json(), "wall_seconds": round(wall, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
