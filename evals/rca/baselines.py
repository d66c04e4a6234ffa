"""Published-method baselines for the evaluation harness: the floors the ranking must beat.

- `rank_baro`: in the spirit of BARO (Pham et al., FSE 2024): Bayesian online change-point
  detection (Adams & MacKay 2007, Normal-Gamma model, Student-t predictive) on the system's
  metrics finds when the incident started; every series is then scored by how far it moved
  after that point, in units of its interquartile range before it (BARO's RobustScorer),
  and services rank by their strongest series. Metrics only; the graph is not used. The
  scorer follows BARO's published one: series constant on either side of the change are
  dropped, the score is the largest signed rise (not |z|), a zero interquartile range
  scales by 1 as scikit-learn's RobustScaler does, and memory is in MB.
- `rank_pagerank`: a random walk on the call graph in the style of MonitorRank / MicroRank:
  personalised PageRank where the walker moves from a service towards anomalous
  dependencies (and, weaker, back to anomalous callers), restarting at anomalous services.

These are reimplementations from the papers' descriptions, not the authors' code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import median

import networkx as nx

from rca.ranking import score_services
from rca.series import Metrics
from rca.topology import Topology

Window = tuple[float, float]

HAZARD = 1 / 50  # expected run length between change points, in steps
Z_CLIP = 10.0


def _iqr(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    if n < 2:
        return 0.0

    def q(p: float) -> float:
        pos = (n - 1) * p
        lo = math.floor(pos)
        hi = min(lo + 1, n - 1)
        return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)

    return q(0.75) - q(0.25)


def bocpd_change_point(times: Sequence[float], values: Sequence[float]) -> float | None:
    """The time at which the last change began (MAP run length at the end), or None.

    Adams & MacKay's recursion with a Normal-Gamma prior; the data are standardised first,
    so the prior (mean 0, unit scale) is weak on any series.
    """
    n = len(values)
    if n < 4:
        return None
    mu = sum(values) / n
    sd = math.sqrt(sum((v - mu) ** 2 for v in values) / n) or 1.0
    xs = [(v - mu) / sd for v in values]
    mu0, kappa0, alpha0, beta0 = 0.0, 1.0, 1.0, 1.0
    # Per run length r: posterior parameters and log probability of the run.
    log_r = [0.0]
    mus, kappas, alphas, betas = [mu0], [kappa0], [alpha0], [beta0]
    log_h, log_1h = math.log(HAZARD), math.log(1 - HAZARD)
    for x in xs:
        preds = []
        for m, k, a, b in zip(mus, kappas, alphas, betas, strict=True):
            scale2 = b * (k + 1) / (a * k)
            nu = 2 * a
            z = (x - m) ** 2 / (nu * scale2)
            preds.append(
                math.lgamma((nu + 1) / 2)
                - math.lgamma(nu / 2)
                - 0.5 * math.log(nu * math.pi * scale2)
                - (nu + 1) / 2 * math.log1p(z)
            )
        growth = [lr + p + log_1h for lr, p in zip(log_r, preds, strict=True)]
        cp_terms = [lr + p + log_h for lr, p in zip(log_r, preds, strict=True)]
        top = max(cp_terms)
        cp = top + math.log(sum(math.exp(t - top) for t in cp_terms))
        log_r = [cp, *growth]
        norm_top = max(log_r)
        norm = norm_top + math.log(sum(math.exp(v - norm_top) for v in log_r))
        log_r = [v - norm for v in log_r]
        mus = [mu0] + [(k * m + x) / (k + 1) for m, k in zip(mus, kappas, strict=True)]
        betas = [beta0] + [
            b + k * (x - m) ** 2 / (2 * (k + 1)) for m, k, b in zip(mus[1:], kappas, betas, strict=True)
        ]
        kappas = [kappa0] + [k + 1 for k in kappas]
        alphas = [alpha0] + [a + 0.5 for a in alphas]
    run = max(range(len(log_r)), key=lambda r: log_r[r])
    if run >= n:
        return None
    return times[n - run] if run > 0 else times[-1]


def _system_signal(metrics: Metrics, window: Window, normal: Window) -> tuple[list[float], list[float]]:
    """One multivariate summary per time step: the mean robust |z| over every series."""
    buckets: dict[float, list[float]] = {}
    for per in metrics.values():
        for points in per.values():
            base = [v for t, v in points if normal[0] <= t <= normal[1] and math.isfinite(v)]
            if len(base) < 3:
                continue
            center = median(base)
            scale = max(_iqr(base), 0.05 * abs(center), 1e-9)
            for t, v in points:
                if window[0] <= t <= window[1] and math.isfinite(v):
                    step = round(t / 60.0) * 60.0
                    buckets.setdefault(step, []).append(min(Z_CLIP, abs(v - center) / scale))
    times = sorted(buckets)
    return times, [sum(buckets[t]) / len(buckets[t]) for t in times]


def rank_baro(metrics: Metrics, normal: Window, anomalous: Window, services: Sequence[str] = ()) -> list[str]:
    times, signal = _system_signal(metrics, (normal[0], anomalous[1]), normal)
    found = bocpd_change_point(times, signal)
    # The change point must leave some data on both sides; else fall back to the window's start.
    change = found if found is not None and normal[0] + 180 < found <= anomalous[1] - 60 else anomalous[0]
    scores: dict[str, float] = dict.fromkeys(services, -math.inf)
    for service, per in metrics.items():
        best = -math.inf
        for name, points in per.items():
            before = [v for t, v in points if normal[0] <= t < change and math.isfinite(v)]
            after = [v for t, v in points if change <= t <= anomalous[1] and math.isfinite(v)]
            # BARO's preprocessing drops a series constant on either side of the change.
            if len(before) < 3 or not after or min(before) == max(before) or min(after) == max(after):
                continue
            if name.startswith("mem"):  # BARO scales memory to MB (its zero-spread series keep units)
                before, after = [v / 1e6 for v in before], [v / 1e6 for v in after]
            # RobustScaler as scikit-learn fits it: a zero interquartile range scales by 1.
            center, scale = median(before), _iqr(before) or 1.0
            # BARO ranks by the largest signed rise after the change, not by |z|.
            best = max(best, max((v - center) / scale for v in after))
        scores[service] = max(scores.get(service, -math.inf), best)
    return sorted(scores, key=lambda s: (-scores[s], s))


def rank_pagerank(
    topology: Topology, metrics: Metrics, normal: Window, anomalous: Window, rho: float = 0.3
) -> list[str]:
    anomalies = score_services(metrics, normal, anomalous, services=topology.services)
    score = {s: (a.belief or 0.0) for s, a in anomalies.items()}
    graph: nx.DiGraph[str] = nx.DiGraph()
    graph.add_nodes_from(score)
    for caller, callee in topology.graph.edges:
        graph.add_edge(caller, callee, weight=score.get(callee, 0.0) + 1e-3)
        if not graph.has_edge(callee, caller):
            graph.add_edge(callee, caller, weight=rho * (score.get(caller, 0.0) + 1e-3))
    for node in graph.nodes:
        neighbours = [score.get(n, 0.0) for n in graph.successors(node)] + [
            score.get(n, 0.0) for n in graph.predecessors(node)
        ]
        graph.add_edge(
            node, node, weight=max(0.0, score.get(node, 0.0) - max(neighbours, default=0.0)) + 1e-3
        )
    total = sum(score.values())
    personal = {s: (v / total if total else 1.0 / max(1, len(score))) for s, v in score.items()}
    try:
        rank = nx.pagerank(graph, alpha=0.85, personalization=personal or None, weight="weight")
    except nx.PowerIterationFailedConvergence:
        rank = personal
    return sorted(rank, key=lambda s: (-rank[s], s))
