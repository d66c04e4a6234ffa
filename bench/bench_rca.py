"""Root-cause ranking: accuracy and time per scenario on a freshly simulated set.

    .venv/bin/python bench/bench_rca.py [--count 300] [--seed 7] [--keep DIR]

Generates scenarios with `firebreak simulate`'s generator (a seed the ranking was not
tuned on, by default), then times `rca eval`: loading a scenario (CSV parse) and ranking
it, separately. Prints the harness table and one JSON line. Numbers, not pass/fail.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evals.rca.evaluate import evaluate, rank_scenario, render, summarize  # noqa: E402
from evals.rca.scenario import find_scenarios, load_scenario  # noqa: E402
from evals.rca.simulate import simulate  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", type=Path, default=None, help="write the scenarios here and keep them")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="fb-rca-bench-") as tmp:
        out = args.keep or Path(tmp)
        started = time.perf_counter()
        simulate(out, args.count, seed=args.seed)
        generate_s = time.perf_counter() - started
        paths = find_scenarios([out])
        load_s, rank_s, sizes = [], [], []
        for path in paths:
            t0 = time.perf_counter()
            scenario = load_scenario(path)
            t1 = time.perf_counter()
            rank_scenario(scenario)
            rank_s.append(time.perf_counter() - t1)
            load_s.append(t1 - t0)
            sizes.append(len(scenario.topology))
        report = evaluate(paths)
        # Where it fails: accuracy by scenario property (truth.json carries the generator's knobs).
        facts = {p.name: json.loads((p / "truth.json").read_text()) for p in paths}
    print(render(report))
    breakdown: dict[str, dict[str, list[int | None]]] = {}
    for case in report.cases:
        truth = facts[case.name]
        for factor, value in (
            ("shape", truth.get("shape")),
            ("step_seconds", truth.get("step_seconds")),
            ("noise", truth.get("noise")),
            ("gap_rate", truth.get("gap_rate")),
            ("unrelated_anomaly", truth.get("unrelated_anomaly") is not None),
            ("root_alerted", truth.get("root_alerted")),
            (
                "size",
                "10-24"
                if truth.get("services", 0) < 25
                else "25-44"
                if truth.get("services", 0) < 45
                else "45+",
            ),
        ):
            breakdown.setdefault(factor, {}).setdefault(str(value), []).append(case.positions["rca"])
    for factor, groups in breakdown.items():
        cells = ", ".join(
            f"{value}: {summarize(pos)['ac1']:.2f}/{summarize(pos)['ac3']:.2f} (n={len(pos)})"
            for value, pos in sorted(groups.items())
        )
        print(f"AC@1/AC@3 by {factor}: {cells}")
    print(
        f"{len(paths)} scenarios ({min(sizes)}-{max(sizes)} services, seed {args.seed}), "
        f"generated in {generate_s:.1f} s; "
        f"per scenario: load median {statistics.median(load_s) * 1000:.1f} ms, "
        f"rank (ranking + both baselines) median {statistics.median(rank_s) * 1000:.1f} ms, "
        f"p95 {sorted(rank_s)[int(0.95 * (len(rank_s) - 1))] * 1000:.1f} ms"
    )
    print(
        json.dumps(
            {
                "benchmark": "rca",
                "seed": args.seed,
                **report.to_json(),
                "load_ms_median": round(statistics.median(load_s) * 1000, 2),
                "rank_ms_median": round(statistics.median(rank_s) * 1000, 2),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
