"""Correlation on an alert storm: alerts ingested, incidents created, compression, purity, time.

    .venv/bin/python bench/bench_correlation.py [--alerts 10000] [--services 40] [--failures 6]
        [--noise-sources 4] [--seeds 3] [--hops 1 2] [--window-minutes 15]

Each storm (evals.rca.simulate.alert_storm) has a few failures, each alerting on its root and
callers for 15-30 minutes, repeatedly and per pod, and flapping alerts unrelated to any
failure, over a generated topology. Purity: share of alerts whose incident's majority
failure is theirs. Fragmentation: incidents per true failure. Numbers, not pass/fail.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evals.rca.scenario import parse_alerts  # noqa: E402
from evals.rca.simulate import alert_storm  # noqa: E402
from rca.correlation import Correlator, score_correlation  # noqa: E402
from rca.topology import Topology  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--services", type=int, default=40)
    parser.add_argument("--failures", type=int, default=6)
    parser.add_argument("--noise-sources", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--hops", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--window-minutes", type=float, default=15.0)
    args = parser.parse_args()

    rows = []
    print(
        f"{'seed':>4} {'hops':>4} {'alerts':>7} {'groups':>6} {'incidents':>9} {'compression':>11} "
        f"{'purity':>7} {'fragm.':>6} {'ms':>7} {'alerts/s':>9}"
    )
    for seed in range(args.seeds):
        storm = alert_storm(seed, args.alerts, args.services, args.failures, args.noise_sources)
        topology = Topology.from_data(storm.topology)
        alerts = parse_alerts(storm.alerts, "storm")
        for hops in args.hops:
            correlator = Correlator(topology, hops=hops, window=timedelta(minutes=args.window_minutes))
            started = time.perf_counter()
            correlator.extend(alerts)
            seconds = time.perf_counter() - started
            report = score_correlation(correlator, storm.labels).to_json()
            row = {
                "seed": seed,
                "hops": hops,
                "true_groups": len(set(storm.labels)),
                **report,
                "seconds": round(seconds, 4),
                "alerts_per_second": round(len(alerts) / seconds),
            }
            rows.append(row)
            print(
                f"{seed:>4} {hops:>4} {row['alerts']:>7} {row['true_groups']:>6} {row['incidents']:>9} "
                f"{row['compression']:>11.1f} {row['purity']:>7.3f} {row['fragmentation']:>6.2f} "
                f"{seconds * 1000:>7.1f} {row['alerts_per_second']:>9}"
            )
    for hops in args.hops:
        mine = [r for r in rows if r["hops"] == hops]
        print(
            f"hops={hops}: median incidents {statistics.median(r['incidents'] for r in mine)}, "
            f"median purity {statistics.median(r['purity'] for r in mine):.3f}, "
            f"median time {statistics.median(r['seconds'] for r in mine) * 1000:.0f} ms "
            f"per {args.alerts} alerts"
        )
    print(json.dumps({"benchmark": "correlation", "runs": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
