"""Root-cause ranking: how anomalous each service is, explained through the dependency graph.

Two steps.

1. **Anomaly per service.** Each series is compared with its own normal period using the
   median and the median absolute deviation (robust to spikes in the baseline), floored
   so that a flat baseline (an error ratio of exactly 0) cannot turn a blip into an
   infinite score. The incident level is a *sustained* one (the weakest point of the
   strongest run of k consecutive points, k a third of the points but at most two minutes'
   worth), so one outlier is not an incident and a long window opened early does not dilute
   a short fault. Direction matters: latency,
   errors and resources are bad going up, availability going down, traffic either way.
   A z-score becomes a belief in [0, 1]; a service's belief combines its metric kinds.
   Services whose metrics all stop during the incident are treated as down; services
   with no data at all stay *unknown* rather than healthy.

2. **Explanation over the graph.** Each service r is scored as a hypothesis "the fault
   started at r", by a log-likelihood ratio against "nothing is wrong": r itself must be
   anomalous (a healthy r is strong evidence against it); every anomalous service that
   depends on r, transitively, is explained by it; a direct caller that stayed healthy is
   mild evidence against. Anomalies that r cannot explain count neither way, so a caller
   whose dependency is also anomalous loses to that dependency (the dependency explains
   the caller and itself), and an anomalous service whose dependencies are healthy wins.
   The symptom gives a prior: the root cause is the symptom or something it depends on.

The constants are likelihoods with a meaning (how often a fault shows at its own service,
how often it reaches a caller, how often a service is anomalous by chance), not knobs
fitted to one data set.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field, replace
from statistics import median

from models.agents import Evidence
from models.alert import Alert, AlertStatus, Severity
from models.rca import Candidate, Symptom
from rca.series import Direction, Kind, MetricInfo, Metrics, Point, metric_info, with_canonical_units
from rca.signals import (
    LOG_SHARE_CENTER,
    LogPairStat,
    LogStat,
    SignalAnomaly,
    TraceStat,
    Window,
    invocations,
    score_logs,
    score_traces,
    trace_edges,
    with_latest_stretch,
)
from rca.topology import Topology

# --- anomaly scoring -------------------------------------------------------------------------

MAD_TO_SIGMA = 1.4826
RELATIVE_FLOOR = 0.05  # a 5% move of a busy series' median is the least we call a sigma
SUSTAINED_SECONDS = 120.0  # an incident level is one held this long (or a third of the window)
Z_CENTER = 4.0  # the z at which a series is as likely anomalous as not
ONSET_MARGIN_SECONDS = 60.0  # a window opened back to the symptom's onset stays this far from "normal"
Z_SLOPE = 1.0
RESOURCE_KINDS = (Kind.CPU, Kind.MEMORY, Kind.SATURATION)
FAILURE_KINDS = (Kind.ERRORS, Kind.AVAILABILITY)  # failed requests show here
TRAVELLING_KINDS = (Kind.LATENCY, *FAILURE_KINDS)  # what reaches callers in the same minute
KIND_WEIGHT = {
    Kind.LATENCY: 1.0,
    Kind.ERRORS: 1.0,
    Kind.AVAILABILITY: 1.0,
    Kind.CPU: 0.85,
    Kind.MEMORY: 0.85,
    Kind.SATURATION: 0.85,
    Kind.REQUESTS: 0.25,
    Kind.OTHER: 0.3,
}
# How much a signal's belief counts when fused with the metrics' (noisy-OR). A service's own
# time in traces is as specific as its own CPU; a new log template is weaker evidence (code
# paths change with inputs too).
SIGNAL_WEIGHT = {"traces": 0.9, "logs": 0.6}
VANISHED_BELIEF = 0.9  # every series stopped during the incident: most likely down
ALERT_BELIEF = {Severity.P1: 0.5, Severity.P2: 0.45, Severity.P3: 0.35, Severity.P4: 0.2}
SYMPTOM_BELIEF = 0.5  # the alert that opened the incident says the symptom is unwell

# --- explanation model (probabilities, see the module docstring) ------------------------------

P_SELF = 0.95  # a fault shows in its own service's metrics
P_CHANCE = 0.30  # a service looks anomalous without a fault behind it
P_REACHES = 0.70  # an anomalous caller is explained by a faulty dependency
P_HEALTHY_CALLER = (0.35, 0.10)  # a direct / two-hop caller stays healthy despite the fault
UNKNOWN_BELIEF = 0.35  # a service with no data: below even odds, never "healthy"
OFF_PATH_PRIOR = -1.5  # log-prior for a root cause the symptom does not depend on
COVER_CAP = 10.0  # most log-evidence that explaining callers can add
DEPENDENCY_PENALTY = 0.8  # how much a dominant anomalous dependency takes from a candidate
DEPENDENCY_DECAY = 0.7  # per hop further down
DOMINANCE_SLOPE = 2.0  # per unit of log(1 + intensity) difference
ATTENUATION_SLOPE = 2.0  # per unit of log(1 + intensity) that a caller is stronger than us
ATTENUATION_OFFSET = 2.0  # a caller as anomalous as we are is still well explained (sigmoid(2))
# A service without data explains its callers as if it were as anomalous as they are.
BLIND_REACH = 1.0 / (1.0 + math.exp(-ATTENUATION_OFFSET))
VANISHED_INTENSITY = 1000.0  # as strong as anomalies get
SURGE_DISCOUNT = 0.5  # per unit of extra traffic: a service flooded by its callers is a victim
SURGE_MAX_DISCOUNT = 0.6


def _log_terms() -> tuple[float, float, float, tuple[float, ...]]:
    return (
        math.log(P_SELF / P_CHANCE),
        math.log((1 - P_SELF) / (1 - P_CHANCE)),
        math.log(P_REACHES / P_CHANCE),
        tuple(math.log((1 - p) / (1 - P_CHANCE)) for p in P_HEALTHY_CALLER),
    )


_LOG_SELF_ANOM, _LOG_SELF_NORM, _LOG_CALLER_ANOM, _LOG_CALLER_NORM = _log_terms()


@dataclass(frozen=True)
class MetricAnomaly:
    service: str
    metric: str
    kind: Kind
    z: float  # sustained robust z in the bad direction (>= 0)
    belief: float  # probability-like anomaly in [0, 1]
    normal_median: float
    incident_value: float  # the sustained incident level the z was taken at
    normal_points: int
    incident_points: int
    # How strong the anomaly is, for comparing services. The z, except that the kinds that
    # idle at a constant (the latency of a rarely used path, an error ratio of 0) divide by a
    # spread of next to nothing, so one slow call is a z of 10^4: for them the move is also
    # measured as traces measure theirs (4 x log2 of the ratio) and the smaller counts.
    # Resource levels always vary and are the service's own; their z stands.
    intensity: float

    def summary(self) -> str:
        # Values are in seconds and ratios (with_canonical_units); a name that declares another
        # unit ("ResponseTimeP90(ms)") gets the unit shown, so 0.25 is not read as 0.25 ms.
        declared = metric_info(self.metric).unit
        unit = {"ms": " s", "us": " s"}.get(declared or "", "")
        if declared == "percent" and self.kind in FAILURE_KINDS:
            unit = " (ratio)"
        return (
            f"{self.metric} {_fmt(self.incident_value)}{unit} vs normal {_fmt(self.normal_median)}{unit} "
            f"(robust z {self.z:.1f}, {self.incident_points} pts vs {self.normal_points})"
        )


@dataclass
class ServiceAnomaly:
    service: str
    belief: float | None  # None: no data and no alert, unknown
    metrics: list[MetricAnomaly] = field(default_factory=list)  # strongest first
    notes: list[str] = field(default_factory=list)
    has_data: bool = False
    sees_errors: bool = False  # has an errors or availability series: failed requests would show
    vanished: bool = False
    alerts: list[str] = field(default_factory=list)

    load_ratio: float = 1.0  # incident traffic / normal traffic
    metric_belief: float | None = None  # the belief from metrics (and alerts) alone
    # The part of the metric belief a faulty dependency can cause (latency, errors, traffic:
    # symptoms travel up the call graph) and the part only the service itself can
    # (its own CPU, memory, saturation: a slow callee does not burn its caller's CPU).
    inheritable_belief: float | None = None
    resource_belief: float = 0.0
    signals: dict[str, SignalAnomaly] = field(default_factory=dict)  # traces, logs

    @property
    def max_z(self) -> float:
        return max((m.z * KIND_WEIGHT[m.kind] for m in self.metrics), default=0.0)

    @property
    def intensity(self) -> float:
        """How strong the service's own anomaly is; traffic is an input, so it does not count."""
        if self.vanished:
            return VANISHED_INTENSITY
        own = max(
            (m.intensity * KIND_WEIGHT[m.kind] for m in self.metrics if m.kind != Kind.REQUESTS), default=0.0
        )
        return max([own] + [SIGNAL_WEIGHT[s.signal] * s.intensity for s in self.signals.values()])

    def agreeing(self, threshold: float = 0.5) -> list[str]:
        """The signals that call this service anomalous."""
        out = ["metrics"] if (self.metric_belief or 0.0) >= threshold and self.metrics else []
        return out + sorted(s for s, a in self.signals.items() if a.belief >= threshold)

    @property
    def surge_discount(self) -> float:
        """How much of the anomaly a surge of incoming traffic may explain."""
        discount = min(SURGE_MAX_DISCOUNT, max(0.0, (self.load_ratio - 1.2) * SURGE_DISCOUNT))
        if discount <= 0.0:
            return 0.0
        # Work grows with traffic, about in proportion: CPU x20 under traffic x2 is not the
        # callers' doing. Only the share of the resource growth the surge accounts for
        # (on a log scale) is discounted.
        grown = max(
            (
                m.incident_value / m.normal_median
                for m in self.metrics
                if m.kind in RESOURCE_KINDS and m.belief >= 0.5 and m.normal_median > 0
            ),
            default=0.0,
        )
        if grown > self.load_ratio:
            discount *= math.log(self.load_ratio) / math.log(grown)
        return discount


def _fmt(value: float) -> str:
    if value == 0 or 0.01 <= abs(value) < 10_000:
        return f"{value:.3g}"
    return f"{value:.3e}"


def _finite(points: Iterable[Point], window: tuple[float, float]) -> list[float]:
    lo, hi = window
    return [v for t, v in points if lo <= t <= hi and math.isfinite(v)]


def _sigmoid(x: float) -> float:
    if x < -60:
        return 0.0
    return 1.0 / (1.0 + math.exp(-x))


def _sustained_rank(points: Sequence[Point], anomalous: tuple[float, float], n: int) -> int:
    """How many consecutive points an incident level must hold: a third of the window's
    points, but never more than SUSTAINED_SECONDS' worth (nor fewer than two once the window
    has four: one spike is not an incident), so that a window opened early by an unrelated
    alert (longer, mostly normal) does not dilute a fault of a few minutes."""
    k = max(1, math.ceil(n / 3))
    times = sorted(t for t, v in points if anomalous[0] <= t <= anomalous[1] and math.isfinite(v))
    gaps = [b - a for a, b in itertools.pairwise(times) if b > a]
    if gaps:
        k = min(k, max(2, round(SUSTAINED_SECONDS / median(gaps))))
    return k


def _robust_scale(info: MetricInfo, base: Sequence[float]) -> tuple[float, float]:
    """The normal period's median and robust spread (MAD, floored) of one series."""
    center = median(base)
    mad = median(abs(v - center) for v in base) * MAD_TO_SIGMA
    # For availability the room to fall is 1 - level (the error budget), not the level itself.
    room = 1.0 - center if info.kind == Kind.AVAILABILITY else center
    return center, max(mad, RELATIVE_FLOOR * abs(room), info.absolute_floor or 0.0, 1e-12)


def _robust_z(info: MetricInfo, value: float, center: float, scale: float) -> float:
    """How far a value is from normal, in robust sigmas, signed so that bad is positive."""
    if info.direction == Direction.UP_IS_BAD:
        return (value - center) / scale
    if info.direction == Direction.DOWN_IS_BAD:
        return (center - value) / scale
    return abs(value - center) / scale


def _zs_by_time(
    metric: str, points: Sequence[Point], normal: tuple[float, float], anomalous: tuple[float, float]
) -> dict[float, float]:
    """Each incident point's robust z against the series' normal period (empty without one)."""
    info = metric_info(metric)
    base = _finite(points, normal)
    if len(base) < 2:
        return {}
    center, scale = _robust_scale(info, base)
    return {
        t: _robust_z(info, v, center, scale)
        for t, v in points
        if anomalous[0] <= t <= anomalous[1] and math.isfinite(v)
    }


def score_series(
    service: str,
    metric: str,
    points: Sequence[Point],
    normal: tuple[float, float],
    anomalous: tuple[float, float],
    *,
    load_ratio: float = 1.0,
) -> MetricAnomaly | None:
    """Sustained robust z of one series against its own normal period; None without data.

    `load_ratio` (incident traffic / normal traffic of the same service, when known) scales
    the expected level of CPU and saturation: twice the requests at twice the CPU is load,
    not a fault.
    """
    info = metric_info(metric)
    base = _finite(points, normal)
    cur = _finite(points, anomalous)
    if len(base) < 2 or not cur:
        return None
    if info.kind in (Kind.CPU, Kind.SATURATION) and load_ratio > 1.0:
        base = [v * load_ratio for v in base]
    center, scale = _robust_scale(info, base)
    zs = [_robust_z(info, v, center, scale) for v in cur]
    # The incident level is the weakest point of the strongest run of k consecutive points
    # (points are in time order): an isolated spike never makes a run.
    k = _sustained_rank(points, anomalous, len(cur))
    pick = max(
        (min(range(i, i + k), key=lambda j: zs[j]) for i in range(len(cur) - k + 1)),
        key=lambda j: zs[j],
    )
    z = max(0.0, zs[pick])
    # Few points on either side make any z less certain.
    z *= min(1.0, (len(cur) + 1) / 4) * min(1.0, len(base) / 4)
    floor = max(info.absolute_floor or 0.0, 1e-12)
    if info.kind == Kind.AVAILABILITY:  # the error budget spent: 1 - level
        moved = (1.0 - cur[pick] + floor) / (1.0 - center + floor)
    else:
        moved = (abs(cur[pick]) + floor) / (abs(center) + floor)
    return MetricAnomaly(
        service=service,
        metric=metric,
        kind=info.kind,
        z=z,
        belief=_sigmoid((z - Z_CENTER) / Z_SLOPE),
        normal_median=center,
        incident_value=cur[pick],
        normal_points=len(base),
        incident_points=len(cur),
        intensity=min(z, 4.0 * abs(math.log2(moved))) if moved > 0 and not info.is_resource else z,
    )


def score_services(
    metrics: Metrics,
    normal: tuple[float, float],
    anomalous: tuple[float, float],
    *,
    services: Iterable[str] = (),
    alerts: Sequence[Alert] = (),
    symptom: Symptom | None = None,
) -> dict[str, ServiceAnomaly]:
    """How anomalous each service is, with the metrics that say so."""
    names = sorted(set(services) | set(metrics))
    incident_has_data = any(_finite(points, anomalous) for per in metrics.values() for points in per.values())
    firing: dict[str, list[Alert]] = {}
    for alert in alerts:
        if alert.status == AlertStatus.FIRING:
            firing.setdefault(alert.service, []).append(alert)
    out: dict[str, ServiceAnomaly] = {}
    for name in names:
        per = metrics.get(name, {})
        ratio = _load_ratio(per, normal, anomalous)
        # Failed requests are fast: a service that failed most of them in the normal period
        # and now serves them looks slower, and is not; its latency has no usable baseline.
        recovered = _recovered(per, normal, anomalous)
        found = [
            a
            for metric, points in per.items()
            if not (recovered and metric_info(metric).kind == Kind.LATENCY)
            and (a := score_series(name, metric, points, normal, anomalous, load_ratio=ratio))
        ]
        had_normal = any(len(_finite(p, normal)) >= 2 for p in per.values())
        # Down: everything that was reported stopped, except perhaps a traffic count that
        # fell to (near) zero, which some exporters keep reporting for a dead target.
        went_dark = had_normal and all(
            not _finite(p, anomalous)
            or (metric_info(m).kind == Kind.REQUESTS and _dropped_to_zero(p, normal, anomalous))
            for m, p in per.items()
            if len(_finite(p, normal)) >= 2
        )
        result = ServiceAnomaly(
            service=name,
            belief=None,
            has_data=bool(found),
            load_ratio=ratio,
            sees_errors=any(m.kind in FAILURE_KINDS for m in found),
        )
        if found:
            per_kind: dict[Kind, float] = {}
            for m in found:
                per_kind[m.kind] = max(per_kind.get(m.kind, 0.0), m.belief)
            calm = 1.0
            for kind, belief in per_kind.items():
                calm *= 1.0 - KIND_WEIGHT[kind] * belief
            result.belief = 1.0 - calm
            resource = {k: b for k, b in per_kind.items() if k in RESOURCE_KINDS}
            result.resource_belief = 1.0 - math.prod(1.0 - KIND_WEIGHT[k] * b for k, b in resource.items())
            result.inheritable_belief = 1.0 - math.prod(
                1.0 - KIND_WEIGHT[k] * b for k, b in per_kind.items() if k not in resource
            )
            result.metrics = sorted(found, key=lambda m: (m.belief * KIND_WEIGHT[m.kind], m.z), reverse=True)
        if went_dark and incident_has_data:
            result.belief = max(result.belief or 0.0, VANISHED_BELIEF)
            result.inheritable_belief = result.belief
            result.vanished = True
            result.has_data = True
            result.notes.append("every series stopped during the incident: down, or no longer scraped")
        elif not found:
            result.notes.append(
                "too few points in the normal or incident window to judge"
                if per
                else "no metrics for this service"
            )
        hints = [ALERT_BELIEF[a.severity] for a in firing.get(name, [])]
        if symptom is not None and symptom.service == name:
            hints.append(SYMPTOM_BELIEF)
        if hints:
            prior = UNKNOWN_BELIEF if result.belief is None else result.belief
            calm = (1.0 - prior) * math.prod(1.0 - h for h in hints)
            result.belief = 1.0 - calm
            # An alert is a symptom, and symptoms travel.
            inherited = UNKNOWN_BELIEF if result.inheritable_belief is None else result.inheritable_belief
            result.inheritable_belief = 1.0 - (1.0 - inherited) * math.prod(1.0 - h for h in hints)
            result.alerts = sorted({a.name for a in firing.get(name, [])})
        result.metric_belief = result.belief
        out[name] = result
    return out


def fuse_signals(anomalies: dict[str, ServiceAnomaly], *per_signal: Mapping[str, SignalAnomaly]) -> None:
    """Fold trace and log anomalies into each service's belief (noisy-OR) and intensity."""
    for signal in per_signal:
        for service, found in signal.items():
            target = anomalies.get(service)
            if target is None:
                target = anomalies[service] = ServiceAnomaly(service=service, belief=None)
            target.signals[found.signal] = found
            target.has_data = True
            calm = 1.0 - (target.belief or 0.0)
            target.belief = 1.0 - calm * (1.0 - SIGNAL_WEIGHT[found.signal] * found.belief)


def _dropped_to_zero(
    points: Sequence[Point], normal: tuple[float, float], anomalous: tuple[float, float]
) -> bool:
    base, cur = _finite(points, normal), _finite(points, anomalous)
    return bool(base) and bool(cur) and median(base) > 0 and median(cur) <= 0.1 * median(base)


def _recovered(
    per: Mapping[str, Sequence[Point]], normal: tuple[float, float], anomalous: tuple[float, float]
) -> bool:
    """Did the service fail most requests in the normal period and serve most of them now?"""
    for metric, points in per.items():
        if metric_info(metric).kind != Kind.AVAILABILITY:
            continue
        base, cur = _finite(points, normal), _finite(points, anomalous)
        if len(base) >= 2 and cur and median(base) < 0.5 <= median(cur):
            return True
    return False


def _load_ratio(
    per: Mapping[str, Sequence[Point]], normal: tuple[float, float], anomalous: tuple[float, float]
) -> float:
    """How much more traffic the service got during the incident (1.0 when unknown)."""
    best: tuple[int, float] | None = None
    for metric, points in per.items():
        if metric_info(metric).kind != Kind.REQUESTS:
            continue
        base, cur = _finite(points, normal), _finite(points, anomalous)
        if len(base) < 2 or not cur:
            continue
        before, during = median(base), median(cur)
        if before > 0 and during > 0 and (best is None or len(base) > best[0]):
            best = (len(base), min(during / before, 10.0))
    return best[1] if best else 1.0


# --- ranking -------------------------------------------------------------------------------


def _belief(anomalies: Mapping[str, ServiceAnomaly], service: str) -> float | None:
    found = anomalies.get(service)
    return found.belief if found else None


def _inheritable(anomalies: Mapping[str, ServiceAnomaly], service: str) -> float | None:
    """The belief in the service's anomalies a faulty dependency could have caused."""
    found = anomalies.get(service)
    if found is None or found.belief is None:
        return None
    if found.signals or found.inheritable_belief is None:
        return found.belief
    return found.inheritable_belief


def _latency_growth(anomalies: Mapping[str, ServiceAnomaly], service: str) -> float | None:
    """How many seconds the service's latency grew (its largest latency statistic), None unmeasured."""
    found = anomalies.get(service)
    metrics = found.metrics if found else []
    growth = [m.incident_value - m.normal_median for m in metrics if m.kind == Kind.LATENCY]
    return max(0.0, *growth) if growth else None


def _latency_budget(anomalies: Mapping[str, ServiceAnomaly], origin: str, victim: str) -> float:
    """How well `origin`'s latency growth can account for `victim`'s, in absolute seconds.

    Latency adds up along a call path: a dependency that got 20 ms slower cannot make its
    caller 2 s slower (unless it fails: timeouts and retries multiply, so a failing or
    vanished origin is not held to its latency). z-scores cannot tell this, since a quiet
    series' small move is a large z. Same attenuation as for intensities; 1.0 unmeasured.
    """
    found = anomalies.get(origin)
    if found is None or found.vanished or _fails(anomalies, origin):
        return 1.0
    mine, theirs = _latency_growth(anomalies, origin), _latency_growth(anomalies, victim)
    if mine is None or theirs is None or theirs <= 0.0:
        return 1.0
    gap = math.log(max(mine, 1e-9) / theirs)
    return _sigmoid(ATTENUATION_SLOPE * gap + ATTENUATION_OFFSET)


def _reachable_callers(
    topology: Topology, anomalies: Mapping[str, ServiceAnomaly], service: str
) -> dict[str, int]:
    """Callers a fault at `service` can have reached, with their hop count (1 = direct caller).

    A fault travels up one caller at a time, so the walk continues only through callers
    that are anomalous themselves (or have no data); a healthy caller is recorded, since
    it is evidence that the fault did not spread there, but the walk stops at it.
    """
    if service not in topology:
        return {}
    graph = topology.graph
    seen = {service: 0}
    frontier = [service]
    while frontier:
        nxt: list[str] = []
        for node in frontier:
            for caller in graph.predecessors(node):
                if caller in seen:
                    continue
                seen[caller] = seen[node] + 1
                b = _inheritable(anomalies, caller)
                if b is None or b >= 0.5:
                    nxt.append(caller)
        frontier = nxt
    seen.pop(service)
    return seen


def _intensity(anomalies: Mapping[str, ServiceAnomaly], service: str) -> float:
    found = anomalies.get(service)
    return found.intensity if found else 0.0


def _surge(anomalies: Mapping[str, ServiceAnomaly], service: str) -> float:
    found = anomalies.get(service)
    return found.surge_discount if found else 0.0


def _fails(anomalies: Mapping[str, ServiceAnomaly], service: str) -> bool:
    """Is the service's anomaly mostly failed requests (errors up or availability down)?"""
    found = anomalies.get(service)
    if found is None or not found.metrics:
        return False
    top = found.metrics[0]
    return top.belief >= 0.5 and top.kind in FAILURE_KINDS


def _callers_fail(topology: Topology, anomalies: Mapping[str, ServiceAnomaly], service: str) -> bool:
    return any(_fails(anomalies, caller) for caller in topology.callers(service))


def explanation_score(
    topology: Topology, anomalies: Mapping[str, ServiceAnomaly], service: str
) -> tuple[float, list[tuple[str, int, float]], list[tuple[str, int, float]]]:
    """Log-likelihood ratio of "the fault started at `service`", the callers it explains and
    the anomalous dependencies that compete with it."""
    own = _belief(anomalies, service)
    found = anomalies.get(service)
    blind = found is None or not (found.has_data or found.vanished)
    # Without an errors or availability series, failing requests here would not show:
    # for callers that fail, this service is as good as unobserved.
    blind_to_errors = blind or not (found is not None and (found.sees_errors or found.vanished))
    # A service flooded with extra traffic is more likely a victim of whoever sends it.
    a = UNKNOWN_BELIEF if own is None else own * (1.0 - _surge(anomalies, service))
    if blind_to_errors and _callers_fail(topology, anomalies, service):
        a = max(a, UNKNOWN_BELIEF)
    score = a * _LOG_SELF_ANOM + (1 - a) * _LOG_SELF_NORM
    explained: list[tuple[str, int, float]] = []
    cover = 0.0
    own_intensity = math.log1p(_intensity(anomalies, service))
    for caller, hops in _reachable_callers(topology, anomalies, service).items():
        b = _inheritable(anomalies, caller)
        if b is None:
            continue  # no data: no evidence either way
        # Anomalies weaken as they travel up (timeouts cap latency, fallbacks absorb errors):
        # a faint anomaly here hardly explains a violent one in a caller.
        if blind or (blind_to_errors and _fails(anomalies, caller)):
            reach = BLIND_REACH
        else:
            gap = own_intensity - math.log1p(_intensity(anomalies, caller))
            reach = _sigmoid(ATTENUATION_SLOPE * gap + ATTENUATION_OFFSET)
            reach = min(reach, _latency_budget(anomalies, service, caller))
        healthy_term = _LOG_CALLER_NORM[hops - 1] if hops <= len(_LOG_CALLER_NORM) else 0.0
        cover += b * reach * _LOG_CALLER_ANOM + (1 - b) * healthy_term
        if b >= 0.5 and reach >= 0.5:
            explained.append((caller, hops, b))
    # Explaining more callers helps, but with diminishing returns: otherwise a shared
    # database under half the company wins every incident that touches its callers.
    score += COVER_CAP * math.tanh(cover / COVER_CAP) if cover > 0 else cover
    competing: list[tuple[str, int, float]] = []
    for dep, hops in topology.depth_from(service).items():
        b = _belief(anomalies, dep)
        if hops == 0 or b is None or b < 0.3:
            continue
        # A dependency at least as anomalous as we are is the likelier origin.
        dominance = _sigmoid(DOMINANCE_SLOPE * (math.log1p(_intensity(anomalies, dep)) - own_intensity) + 1.0)
        dominance = min(dominance, _latency_budget(anomalies, dep, service))
        weight = b * (1.0 - _surge(anomalies, dep)) * dominance * DEPENDENCY_DECAY ** (hops - 1)
        # A dependency explains our latency and errors, never our own resource use.
        weight *= 1.0 - (found.resource_belief if found is not None else 0.0)
        score += math.log(1.0 - DEPENDENCY_PENALTY * weight)
        if weight >= 0.3:
            competing.append((dep, hops, b))
    explained.sort(key=lambda e: (e[1], -e[2], e[0]))
    competing.sort(key=lambda e: (e[1], -e[2], e[0]))
    return score, explained, competing


def _untraced_waits(
    topology: Topology, traces: Sequence[TraceStat], scored: dict[str, SignalAnomaly]
) -> dict[str, SignalAnomaly]:
    """A caller's own time includes its calls to dependencies the traces do not show.

    Own time is an invocation minus the time in the *traced* callees. When the topology
    says a service depends on one whose calls from it are not in the traces, and that
    dependency is anomalous in its traces elsewhere, the caller's grown own time may be
    that wait: its trace evidence is kept only as far as the dependency looks healthy.
    """
    seen = trace_edges(traces)
    out = dict(scored)
    for caller, found in scored.items():
        hidden = [
            scored[dep].belief
            for dep in (topology.dependencies(caller) if caller in topology else ())
            if (caller, dep) not in seen and dep in scored
        ]
        if hidden:
            keep = 1.0 - max(hidden)
            out[caller] = replace(found, belief=found.belief * keep, intensity=found.intensity * keep)
    return out


def rank_root_causes(
    topology: Topology | None,
    metrics: Metrics,
    symptom: Symptom | str | None,
    normal: tuple[float, float],
    anomalous: tuple[float, float],
    *,
    alerts: Sequence[Alert] = (),
    limit: int | None = 10,
    traces: Sequence[TraceStat] = (),
    logs: Sequence[LogStat] = (),
    log_pairs: Sequence[LogPairStat] = (),
    trace_normal: Window | None = None,
    log_normal: Window | None = None,
) -> list[Candidate]:
    """Rank services as root causes of the incident, each with the evidence behind it.

    `metrics` is `{service: {"<kind>_<stat>": [(unix_seconds, value), ...]}}`; windows are
    (start, end) in unix seconds. Works without a topology (then it is anomaly alone),
    without metrics (then alerts and the graph alone), and with services missing data.
    Traces and logs (see `rca.signals`), when given, are scored against their own normal
    window (default `normal`) and fused into each service's belief and intensity.
    """
    topo = topology if topology is not None else Topology([])
    metrics = with_canonical_units(metrics)
    normal = normal_before_incident(normal, anomalous)
    if isinstance(symptom, str):
        symptom = Symptom(service=symptom)
    alert_services = {a.service for a in alerts if a.service in topo or a.service in metrics}
    universe = set(topo.services) | set(metrics) | alert_services
    if symptom is not None:
        universe.add(symptom.service)
    if symptom is not None and _past_margin(normal) < anomalous[0]:
        # The incident began when its symptom did, which may be before the window opened; only
        # a gap between the normal period and the window leaves room to open it back into.
        alone = score_services({symptom.service: metrics.get(symptom.service, {})}, normal, anomalous)
        anomalous = window_from_symptom_onset(
            metrics, _with_symptom_metric(symptom, alone), normal, anomalous
        )
    anomalies = score_services(metrics, normal, anomalous, services=universe, alerts=alerts, symptom=symptom)
    symptom = _with_symptom_metric(symptom, anomalies)
    log_window = log_normal or normal
    fuse_signals(
        anomalies,
        _untraced_waits(topo, traces, score_traces(traces, trace_normal or normal, anomalous))
        if traces
        else {},
        # What the logs say now, if a window opened early dilutes it (see with_latest_stretch).
        with_latest_stretch(
            lambda window: score_logs(
                logs, log_window, window, invocations(traces, log_window, window), log_pairs
            ),
            (s.timestamp for s in logs),
            anomalous,
            SUSTAINED_SECONDS,
        )
        if logs
        else {},
    )
    on_path: set[str] | None = None
    # A symptom the graph has no edge for (it neither calls nor is called) says nothing about
    # where the fault is: the graph just does not know it (an untraced edge proxy, say).
    if symptom is not None and symptom.service in topo and topo.graph.degree(symptom.service) > 0:
        on_path = {symptom.service} | topo.downstream(symptom.service)

    # With traces, the traced requests are the ones the incident is about. A service none of
    # them reached (no span in the normal window or the incident, and no traced service depends
    # on it, as on an uninstrumented database) is off their path: the same prior as a service
    # off the symptom's path (a prior, not a veto: sampling can miss a rarely called service).
    reached = _reached_by_requests(topo, traces) if traces else None
    if reached is not None and symptom is not None:
        # The symptom's own service, and what it depends on, are on the path by definition.
        reached |= {symptom.service} | (on_path or set())
    universe |= {name for name, found in anomalies.items() if found.signals}
    fused = fused_scores(anomalies, universe, with_traces=bool(traces)) if (traces or logs) else None
    # Metrics alone: the graph's explanation saturates once a service is surely anomalous, so
    # every anomalous service looks alike to it; the metric expert (how strongly a service's
    # own metrics single it out) is the second opinion, multiplied in as in the fused case.
    own_metrics = fused_scores(anomalies, universe) if fused is None else None
    failing_symptom = _failing_symptom(anomalies, symptom)
    span = anomalous
    quiet = _symptom_quiet_times(metrics, symptom, normal, span)
    if not quiet and _past_margin(normal) < anomalous[0]:
        # A window opened at (or just before) an alert may hold none of the symptom's quiet
        # times: then they are read since the normal period ended (past the margin), the
        # minutes in which the incident's services were seen while the symptom was still normal.
        span = (_past_margin(normal), anomalous[1])
        quiet = _symptom_quiet_times(metrics, symptom, normal, span)
    unrelated = {
        name
        for name, found in anomalies.items()
        if name != (symptom.service if symptom else None)
        and _unrelated_to_symptom(metrics, found, quiet, normal, span)
    }
    scored: list[tuple[float, str, list[tuple[str, int, float]]]] = []
    for service in sorted(universe):
        score, explained, _ = explanation_score(topo, anomalies, service)
        if on_path is not None and service not in on_path:
            score += OFF_PATH_PRIOR
        if own_metrics is not None:
            score += own_metrics[service]
        if fused is not None:
            score = fused[service]
            if reached is not None and service not in reached:
                score += OFF_PATH_PRIOR
        if failing_symptom:
            # Failed requests start where requests fail: a service whose own error and
            # availability series stay normal is as unlikely an origin as one off the path
            # (a prior, not a veto: a caller's timeout can turn slowness into errors).
            score += OFF_PATH_PRIOR * (1.0 - _fails_itself(anomalies.get(service)))
        if service in unrelated:
            # Anomalous all along, the symptom not: the same prior as a service off its path.
            score += OFF_PATH_PRIOR
        scored.append((score, service, explained))
    # Beliefs saturate near 1 for strong anomalies; between equals the stronger anomaly leads.
    scored.sort(key=lambda s: (-round(s[0], 6), -_intensity(anomalies, s[1]), s[1]))

    top = max((s[0] for s in scored), default=0.0)
    total = sum(math.exp(s[0] - top) for s in scored) or 1.0
    candidates: list[Candidate] = []
    for rank, (score, service, explained) in enumerate(scored[:limit] if limit else scored, start=1):
        found = anomalies[service]
        agreeing = found.agreeing()
        candidates.append(
            Candidate(
                service=service,
                rank=rank,
                score=round(score, 4),
                confidence=round(math.exp(score - top) / total, 4),
                anomaly=None if found.belief is None else round(found.belief, 4),
                service_kind=(kind.value if (kind := topo.kind(service)) else None),
                explains=[c for c, _, _ in explained],
                signals=agreeing,
                evidence=_evidence(topo, anomalies, service, explained, on_path, reached, unrelated),
            )
        )
    return candidates


def _with_symptom_metric(symptom: Symptom | None, anomalies: Mapping[str, ServiceAnomaly]) -> Symptom | None:
    """The symptom with the series that shows it. An alert names a service, not a series (the
    live path's symptom has no metric): then it is the symptom service's strongest anomalous
    latency, error or availability series, what its callers see. None of them anomalous: as
    given, and the rules that read the symptom's series stay out of it. A named series the
    service does not report is read by its kind."""
    if symptom is None:
        return symptom
    found = anomalies.get(symptom.service)
    series = found.metrics if found else []
    if symptom.metric is not None:
        if not series or any(m.metric == symptom.metric for m in series):
            return symptom
        # A name the data does not have ("latency" where the series is latency_p90): the
        # service's strongest series of that kind, else as if no series were named.
        kind = metric_info(symptom.metric).kind
        same = next((m for m in series if m.kind == kind), None) if kind != Kind.OTHER else None
        if same is not None:
            return symptom.model_copy(update={"metric": same.metric})
    shown = [m for m in series if m.kind in TRAVELLING_KINDS and m.belief >= 0.5]
    if not shown:
        return symptom
    # Failed requests say more than slowness: slowness is all a failure may look like upstream
    # (timeouts, retries), but requests that fail were failed by someone.
    pick = next((m for m in shown if m.kind in FAILURE_KINDS), shown[0])
    return symptom.model_copy(update={"metric": pick.metric})


def _failing_symptom(anomalies: Mapping[str, ServiceAnomaly], symptom: Symptom | None) -> bool:
    """Is the symptom failed requests (its errors up or availability down), not slowness?"""
    if symptom is None or symptom.metric is None:
        return False
    if metric_info(symptom.metric).kind not in FAILURE_KINDS:
        return False
    found = anomalies.get(symptom.service)
    return found is not None and any(m.metric == symptom.metric and m.belief >= 0.5 for m in found.metrics)


def _fails_itself(found: ServiceAnomaly | None) -> float:
    """How surely a service failed requests itself: its own error or availability series, or it
    went dark. 1.0 (no evidence against) when it has no such series to look at."""
    if found is None or found.vanished:
        return 1.0
    failing = [m.belief for m in found.metrics if m.kind in FAILURE_KINDS]
    return max(failing) if failing else 1.0


def _past_margin(normal: tuple[float, float]) -> float:
    """The earliest time the incident may be read from: ONSET_MARGIN_SECONDS after the normal
    period (the margin that keeps a fault's ramp out of "normal" stays a margin)."""
    return normal[1] + ONSET_MARGIN_SECONDS


def normal_before_incident(
    normal: tuple[float, float], anomalous: tuple[float, float]
) -> tuple[float, float]:
    """The normal period cut to end where an incident window it runs into begins (a period
    taken as "the whole recording before now" holds the fault itself). One that ends where the
    window begins is as asked (no gap configured); one that starts inside or after the window
    (a fault-free recording made later) is kept."""
    if normal[0] < anomalous[0] < normal[1]:
        return (normal[0], math.nextafter(anomalous[0], -math.inf))
    return normal


def window_from_symptom_onset(
    metrics: Metrics, symptom: Symptom | None, normal: tuple[float, float], anomalous: tuple[float, float]
) -> tuple[float, float]:
    """The incident window, opened back to where the symptom's anomaly began when that is
    before the window (an alert fires once its condition has held a while; the window may open
    at the alert): back from the window's start through the points the symptom was anomalous
    at (z at Z_CENTER or more) without a break, never within ONSET_MARGIN_SECONDS of the normal
    period (the margin that keeps a fault's ramp out of "normal" stays a margin)."""
    if symptom is None or symptom.metric is None:
        return anomalous
    before = (_past_margin(normal), math.nextafter(anomalous[0], -math.inf))
    if before[0] > before[1]:
        return anomalous
    points = metrics.get(symptom.service, {}).get(symptom.metric, ())
    zs = _zs_by_time(symptom.metric, points, normal, before)
    start = anomalous[0]
    for t in sorted(zs, reverse=True):
        if zs[t] < Z_CENTER:
            break
        start = t
    return (start, anomalous[1])


def _symptom_quiet_times(
    metrics: Metrics, symptom: Symptom | None, normal: tuple[float, float], span: tuple[float, float]
) -> list[float]:
    """When, in `span` (the incident window, or the time since the normal period), the symptom
    was plainly normal: its points before it turned anomalous or after it recovered (z under
    1). Empty unless the symptom series has a sustained anomaly (two consecutive points at
    Z_CENTER or more: one spike is not one) and at least two such quiet points, so noise
    inside the anomaly never counts.

    A mild symptom never reaches Z_CENTER twice running: a 0.5 % availability loss against a
    floor-bound spread is z 2-3. The alert says it is anomalous all the same, so two
    consecutive points at half Z_CENTER mark its stretch, provided no plainly normal point
    falls inside it: a series that flaps at that level (or is noise) tells no quiet times."""
    if symptom is None or symptom.metric is None:
        return []
    zs = _zs_by_time(symptom.metric, metrics.get(symptom.service, {}).get(symptom.metric, ()), normal, span)
    times = sorted(zs)

    def held(level: float) -> bool:
        return any(zs[a] >= level and zs[b] >= level for a, b in itertools.pairwise(times))

    level = Z_CENTER if held(Z_CENTER) else Z_CENTER / 2
    if not held(level):
        return []
    on = [t for t in times if zs[t] >= level]
    if level < Z_CENTER and any(zs[t] < 1.0 for t in times if on[0] <= t <= on[-1]):
        return []
    quiet = [t for t in times if zs[t] < 1.0 and not on[0] <= t <= on[-1]]
    return quiet if len(quiet) >= 2 else []


def _unrelated_to_symptom(
    metrics: Metrics,
    found: ServiceAnomaly,
    quiet: Sequence[float],
    normal: tuple[float, float],
    span: tuple[float, float],
) -> bool:
    """Was the service as anomalous while the symptom was normal as while it was not?

    Latency and failed requests reach callers in the same minute, so an anomaly of that kind
    that holds through most of the symptom's quiet times, no stronger while the symptom is
    anomalous, is not what the symptom shows: a level the service was at all along (another
    deployment state, a path the symptom's requests do not take). Only for services whose
    whole case is such series: a resource anomaly (CPU, memory) can precede its effect, and
    traces and logs are judged on their own windows.
    """
    if found.signals or found.vanished or not quiet:
        return False
    if any(m.belief >= 0.5 and m.kind in RESOURCE_KINDS for m in found.metrics):
        return False
    travelling = [m for m in found.metrics if m.belief >= 0.5 and m.kind in TRAVELLING_KINDS]
    if not travelling:
        return False
    for m in travelling:
        zs = _zs_by_time(m.metric, metrics[found.service][m.metric], normal, span)
        while_quiet = [zs[t] for t in quiet if t in zs]
        while_anomalous = [z for t, z in zs.items() if t not in quiet]
        if not while_quiet or not while_anomalous:
            return False
        held = median(while_quiet)
        if held < Z_CENTER or median(while_anomalous) > 1.5 * held:
            return False
    return True


def _metric_weight(kind: Kind) -> float:
    # Resource metrics point at the service itself; latency and errors also move in every
    # caller of a faulty service, so as evidence *for this service* they count half.
    return 1.0 if kind in (Kind.CPU, Kind.MEMORY, Kind.SATURATION) else 0.5 * KIND_WEIGHT[kind]


# Metric kinds that point at the service itself when traces are there to measure its own
# time. A latency metric (and a client latency, filed under OTHER) includes the time spent
# waiting on dependencies, so it moves in every caller of a slow service; span self time
# (the trace expert) is the service's own share of it.
OWN_KINDS_WITH_TRACES = (Kind.CPU, Kind.MEMORY, Kind.SATURATION, Kind.ERRORS, Kind.AVAILABILITY)
# Each expert may be wrong: its distribution is mixed with this much of an even one, so one
# signal that misses the root cause (a network delay logs nothing) cannot veto the others.
EXPERT_FLOOR = 0.1
# Evidence is raised to this power before normalising: a service a signal singles out by a
# wide margin takes most of that signal's mass.
EXPERT_SHARPNESS = 3.0
# Log evidence is normalised against a "nothing but chance" candidate as strong as a template
# at the surge threshold (share x LOG_SHARE_CENTER at even odds): a few new lines in one
# service, when no other service logs anything new, are not the logs singling it out.
LOG_NULL_EVIDENCE = 0.5 * 4.0 * math.log2(LOG_SHARE_CENTER)


def _own_metric_evidence(found: ServiceAnomaly, *, with_traces: bool = False) -> float:
    """How strongly the service's own metrics point at it: belief x log(1 + intensity)."""
    if not found.metrics:
        return VANISHED_BELIEF * math.log1p(VANISHED_INTENSITY) if found.vanished else 0.0
    metrics = [m for m in found.metrics if m.kind in OWN_KINDS_WITH_TRACES] if with_traces else found.metrics
    calm = math.prod(1.0 - _metric_weight(m.kind) * m.belief for m in metrics)
    strongest = max(
        (m.intensity * _metric_weight(m.kind) for m in metrics if m.kind != Kind.REQUESTS), default=0.0
    )
    return (1.0 - calm) * math.log1p(strongest)


def fused_scores(
    anomalies: Mapping[str, ServiceAnomaly], services: Iterable[str], *, with_traces: bool = False
) -> dict[str, float]:
    """Rank score when traces or logs are present: a product of experts, one per signal.

    Each signal is an expert giving a distribution over the candidate services (its
    evidence for each, sharpened, normalised), mixed with an even one so that a signal that
    says nothing (flat, or absent) moves nothing and a signal that is wrong cannot veto. A
    signal that singles out one service outweighs one that finds many services a little
    anomalous, whichever signal it is; the score is the sum of the experts' log-probabilities.

    Trace and log evidence is belief x intensity, and intensity is already a log ratio
    (x4, like a z-score): a x300 network wait must stand far above a x5 one, which a
    second logarithm would flatten.
    """
    names = sorted(services)
    uniform = 1.0 / max(1, len(names))
    experts: list[tuple[dict[str, float], float]] = []  # evidence per service, null evidence
    experts.append(
        (
            {
                n: _own_metric_evidence(anomalies[n], with_traces=with_traces) if n in anomalies else 0.0
                for n in names
            },
            0.0,
        )
    )
    for signal in SIGNAL_WEIGHT:
        raw = {
            n: found.belief * found.intensity
            for n in names
            if n in anomalies and (found := anomalies[n].signals.get(signal)) is not None
        }
        if raw:
            experts.append((raw, LOG_NULL_EVIDENCE if signal == "logs" else 0.0))
    out = dict.fromkeys(names, 0.0)
    for raw, null in experts:
        sharpened = {n: max(0.0, v) ** EXPERT_SHARPNESS for n, v in raw.items()}
        total = sum(sharpened.values()) + null**EXPERT_SHARPNESS
        for n in names:
            share = sharpened.get(n, 0.0) / total if total > 0 else 0.0
            out[n] += math.log(EXPERT_FLOOR + uniform + share)
    return out


def _evidence(
    topo: Topology,
    anomalies: Mapping[str, ServiceAnomaly],
    service: str,
    explained: list[tuple[str, int, float]],
    on_path: set[str] | None,
    reached: set[str] | None = None,
    unrelated: Set[str] = frozenset(),
) -> list[Evidence]:
    found = anomalies[service]
    out: list[Evidence] = []
    for m in found.metrics[:3]:
        if m.belief < 0.2 and out:
            break
        out.append(
            Evidence(
                source="metrics",
                service=service,
                kind="anomaly" if m.belief >= 0.5 else "normal",
                summary=m.summary(),
                value=m.incident_value,
                score=round(m.belief, 3),
            )
        )
    for signal, seen in sorted(found.signals.items()):
        # Trace hot spots and log templates, strongest first; template text is log data, kept as data.
        for finding in seen.findings[:2]:
            out.append(
                Evidence(
                    source=signal,
                    service=service,
                    kind="anomaly" if seen.belief >= 0.5 else "normal",
                    summary=finding[:500],
                    score=round(seen.belief, 3),
                )
            )
    for note in found.notes:
        kind = "metrics_vanished" if found.vanished else "no_data"
        out.append(Evidence(source="metrics", service=service, kind=kind, summary=note))
    if found.alerts:
        out.append(
            Evidence(
                source="alerts",
                service=service,
                kind="alerts_firing",
                summary=f"firing: {', '.join(found.alerts[:5])}",
            )
        )
    for caller, hops, belief in explained[:5]:
        strongest = anomalies[caller].metrics[0].summary() if anomalies[caller].metrics else "alerting"
        out.append(
            Evidence(
                source="topology",
                service=caller,
                kind="explains",
                summary=f"{caller} depends on {service} ({hops} hop{'s' if hops > 1 else ''}) "
                f"and is anomalous: {strongest}",
                score=round(belief, 3),
            )
        )
    deps = topo.dependencies(service)
    if deps:
        beliefs = {d: _belief(anomalies, d) for d in deps}
        healthy = [d for d, b in beliefs.items() if b is not None and b < 0.5]
        sick = [d for d, b in beliefs.items() if b is not None and b >= 0.5]
        unknown = [d for d, b in beliefs.items() if b is None]
        if healthy and not sick:
            out.append(
                Evidence(
                    source="topology",
                    service=service,
                    kind="dependencies_healthy",
                    summary=(
                        f"its dependencies look normal: {', '.join(healthy)}"
                        + (f" (no data: {', '.join(unknown)})" if unknown else "")
                    )[:2000],
                )
            )
        elif sick:
            out.append(
                Evidence(
                    source="topology",
                    service=service,
                    kind="dependencies_anomalous",
                    summary=f"dependencies also anomalous, which may explain it: {', '.join(sick)}"[:2000],
                )
            )
    if on_path is not None and service not in on_path:
        out.append(
            Evidence(
                source="topology",
                service=service,
                kind="off_path",
                summary="the symptom service does not depend on it",
            )
        )
    if service in unrelated:
        out.append(
            Evidence(
                source="metrics",
                service=service,
                kind="unrelated_to_symptom",
                summary="as anomalous while the symptom was still (or again) normal as while it was not",
            )
        )
    if reached is not None and service not in reached:
        out.append(
            Evidence(
                source="traces",
                service=service,
                kind="off_path",
                summary="no traced request reached it, nor a service such requests reached",
            )
        )
    return out


def _reached_by_requests(topo: Topology, traces: Sequence[TraceStat]) -> set[str]:
    """Services on a traced request's path: in a span, or a dependency of a service that is."""
    traced = {t.callee for t in traces} | {t.caller for t in traces if t.caller}
    return traced.union(*(topo.downstream(service) for service in traced))


# --- baselines (for the evaluation harness) ------------------------------------------------


def rank_most_anomalous(
    metrics: Metrics,
    normal: tuple[float, float],
    anomalous: tuple[float, float],
    services: Iterable[str] = (),
) -> list[str]:
    """Baseline: services by their strongest weighted z-score, graph ignored."""
    anomalies = score_services(metrics, normal, anomalous, services=services)
    return sorted(anomalies, key=lambda s: (-anomalies[s].max_z, s))


def rank_symptom_first(topology: Topology, symptom: str) -> list[str]:
    """Baseline: the symptom service, then what it depends on, nearest first (ties by name)."""
    depth = topology.depth_from(symptom)
    ordered = sorted(depth, key=lambda s: (depth[s], s))
    rest = sorted(set(topology.services) - set(ordered))
    return (ordered or [symptom]) + rest
