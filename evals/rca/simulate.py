# ruff: noqa: S311 - seeded pseudo-randomness is the point of a reproducible simulator
"""Fault-injection simulator: topologies, telemetry and alerts with a known root cause.

The point is variety, so that a number measured on the output means something:

- topologies of three shapes (layered, hub-and-spoke around shared services, deep
  chains), 10 to 60 components, with load balancers, databases, queues and external
  endpoints, not only microservices;
- a small queueing model per component: traffic flows down the call graph (with retries
  that amplify it when a dependency fails), latency and errors flow back up (bounded by
  client timeouts, softened by fallbacks), CPU follows work, saturation follows
  utilisation, latency percentiles come from a log-normal spread;
- six faults (CPU saturation, memory leak, latency injection, error burst, dependency
  down, misconfiguration), some of which show mostly *in other services*: a
  misconfiguration can disable a cache and hammer the database behind it;
- seasonal traffic, per-series noise of 2-12%, spikes, gaps, coarse sampling (15 s to
  5 min), series and whole services without data, metrics that vanish when a component
  is down, an unrelated anomaly elsewhere in half of the scenarios;
- alerts that miss the root cause most of the time, plus noisy unrelated alerts.

Metric names follow the `<kind>_<stat>` convention of the harness with the subsets real
exporters give (a database has query latency and connections, a blackbox-probed external
endpoint only latency and availability, sometimes nothing at all).
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import yaml

from rca.series import write_metrics_csv

FAULTS = (
    "cpu_saturation",
    "memory_leak",
    "latency_injection",
    "error_burst",
    "dependency_down",
    "misconfiguration",
)
SHAPES = ("layered", "hub", "chain")

_SERVICE_NAMES = [
    "checkout",
    "cart",
    "catalog",
    "search",
    "recommendations",
    "payments",
    "orders",
    "inventory",
    "shipping",
    "users",
    "auth",
    "notifications",
    "pricing",
    "reviews",
    "ads",
    "currency",
    "fraud",
    "ledger",
    "billing",
    "profile",
    "sessions",
    "media",
    "geo",
    "quotes",
    "loyalty",
    "returns",
    "tax",
    "invoices",
    "wishlist",
    "coupons",
    "identity",
    "accounts",
    "transfers",
    "reports",
    "scheduler",
    "pricing-engine",
    "fulfillment",
    "warehouse",
    "tracking",
    "feeds",
    "comments",
    "ratings",
    "storefront",
    "bff-web",
    "bff-mobile",
    "graphql",
    "catalog-sync",
    "image-resizer",
]
_DB_NAMES = [
    "orders-db",
    "users-db",
    "catalog-db",
    "ledger-db",
    "inventory-db",
    "pg-main",
    "mysql-legacy",
    "mongo-events",
]
_CACHE_NAMES = ["redis-cache", "session-redis", "memcached"]
_QUEUE_NAMES = ["events-kafka", "orders-queue", "email-queue", "audit-stream"]
_EXTERNAL_NAMES = ["stripe-api", "sendgrid-api", "maps-api", "tax-api", "sms-gateway", "fx-rates-api"]
_ALERT_NAMES = {
    "latency": "HighRequestLatency",
    "errors": "HighErrorRate",
    "cpu": "CPUThrottlingHigh",
    "memory": "ContainerMemoryNearLimit",
    "saturation": "ConnectionPoolExhausted",
    "down": "TargetDown",
}
_NOISE_ALERTS = (
    "KubePodCrashLooping",
    "DiskSpaceLow",
    "CertificateExpiringSoon",
    "KubeJobFailed",
    "NodeClockSkew",
    "HighRequestLatency",
    "CPUThrottlingHigh",
)


@dataclass
class Component:
    name: str
    kind: str  # service | database | queue | lb | external
    tier: int
    own_latency: float  # seconds per request at low load
    spread: float  # log-normal sigma of the latency distribution
    base_errors: float
    capacity: float  # requests/s at utilisation 1
    cpu_base: float
    cpu_per_request: float
    cores: float
    memory_base: float
    memory_limit: float
    entry_traffic: float = 0.0  # requests/s from outside, for entry points
    metrics: list[str] = field(default_factory=list)


@dataclass
class Call:
    per_request: float  # calls to the dependency per request
    sync: float  # share of the dependency's latency that adds to ours
    timeout: float
    fallback: float  # share of dependency errors we absorb
    retries: int


@dataclass
class Fault:
    kind: str
    root: str
    onset: float
    end: float
    params: dict[str, float] = field(default_factory=dict)
    # misconfiguration that multiplies the calls from root to one dependency
    hammered: str | None = None


# --- topology ------------------------------------------------------------------------------


def _take(rng: random.Random, pool: list[str], used: set[str]) -> str:
    for name in rng.sample(pool, len(pool)):
        if name not in used:
            used.add(name)
            return name
    base = rng.choice(pool)
    n = 2
    while f"{base}-{n}" in used:
        n += 1
    used.add(f"{base}-{n}")
    return f"{base}-{n}"


def generate_topology(
    rng: random.Random, shape: str, size: int
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Services (name -> {kind, tier, depends_on}) and their order, callers before callees."""
    used: set[str] = set()
    services: dict[str, dict[str, Any]] = {}

    def add(kind: str, tier: int, pool: list[str]) -> str:
        name = _take(rng, pool, used)
        services[name] = {"kind": kind, "tier": tier, "depends_on": []}
        return name

    n_leaf = max(3, size // 4)
    n_db = max(1, round(n_leaf * 0.45))
    n_cache = rng.randint(0, 2)
    n_queue = rng.randint(0, 2)
    n_ext = rng.randint(1, 3)
    n_mid = max(3, size - 2 - n_db - n_cache - n_queue - n_ext)
    lb = add("lb", 0, ["edge-lb", "ingress-nginx", "haproxy-edge"])
    entries = [add("service", 1, _SERVICE_NAMES) for _ in range(rng.randint(1, 3))]
    for entry in entries:
        services[lb]["depends_on"].append(entry)
    if shape == "chain":
        layers = [entries] + [[add("service", 2 + i, _SERVICE_NAMES)] for i in range(min(n_mid, 7))]
        rest = n_mid - min(n_mid, 7)
        for _ in range(rest):
            at = rng.randrange(1, len(layers))
            layers[at].append(add("service", 1 + at, _SERVICE_NAMES))
    else:
        depth = rng.randint(2, 4)
        layers = [entries] + [[] for _ in range(depth)]
        for _ in range(n_mid):
            at = rng.randint(1, depth)
            layers[at].append(add("service", 1 + at, _SERVICE_NAMES))
        layers = [layer for layer in layers if layer]
    leaves_tier = len(layers) + 1
    dbs = [add("database", leaves_tier, _DB_NAMES) for _ in range(n_db)]
    caches = [add("database", leaves_tier, _CACHE_NAMES) for _ in range(n_cache)]
    queues = [add("queue", leaves_tier, _QUEUE_NAMES) for _ in range(n_queue)]
    externals = [add("external", leaves_tier + 1, _EXTERNAL_NAMES) for _ in range(n_ext)]
    hubs = layers[-1][: max(1, len(layers[-1]) // 3)] if shape == "hub" else []

    mids = [s for layer in layers[1:] for s in layer]
    for i, layer in enumerate(layers):
        deeper = [s for later in layers[i + 1 :] for s in later]
        for name in layer:
            deps: set[str] = set()
            if deeper:
                nxt = layers[i + 1] if i + 1 < len(layers) else deeper
                deps.add(rng.choice(nxt))
                for _ in range(rng.choice((0, 0, 1, 1, 2))):
                    deps.add(rng.choice(deeper))
            if hubs and name not in hubs and rng.random() < 0.7:
                deps.add(rng.choice(hubs))
            if i > 0 or not deeper:
                if dbs and rng.random() < 0.6:
                    deps.add(rng.choice(dbs))
                if caches and rng.random() < 0.35:
                    deps.add(rng.choice(caches))
                if queues and rng.random() < 0.25:
                    deps.add(rng.choice(queues))
                if externals and rng.random() < 0.15:
                    deps.add(rng.choice(externals))
            services[name]["depends_on"].extend(sorted(deps - {name}))
    # every leaf component has a caller
    for leaf in dbs + caches + queues + externals:
        if not any(leaf in s["depends_on"] for s in services.values()):
            caller = rng.choice(mids or entries)
            services[caller]["depends_on"].append(leaf)
    # queues have consumers that depend on them too, and some databases replicate from others
    for queue in queues:
        consumer = rng.choice(mids or entries)
        if queue not in services[consumer]["depends_on"]:
            services[consumer]["depends_on"].append(queue)
    # every mid service is reachable from the entry points
    for i, layer in enumerate(layers[1:], start=1):
        for name in layer:
            if not any(name in s["depends_on"] for s in services.values()):
                caller = rng.choice(layers[i - 1])
                services[caller]["depends_on"].append(name)
    order = [lb] + [s for layer in layers for s in layer] + dbs + caches + queues + externals
    return services, order


def _component(rng: random.Random, name: str, spec: dict[str, Any]) -> Component:
    kind = spec["kind"]
    if kind == "database":
        own, spread, cap = rng.uniform(0.001, 0.012), rng.uniform(0.4, 0.9), rng.uniform(800, 6000)
    elif kind == "queue":
        own, spread, cap = rng.uniform(0.001, 0.005), rng.uniform(0.2, 0.5), rng.uniform(2000, 20000)
    elif kind == "lb":
        own, spread, cap = rng.uniform(0.0005, 0.002), rng.uniform(0.2, 0.4), rng.uniform(20000, 50000)
    elif kind == "external":
        own, spread, cap = rng.uniform(0.04, 0.3), rng.uniform(0.3, 0.7), rng.uniform(500, 5000)
    else:
        own, spread, cap = rng.uniform(0.004, 0.06), rng.uniform(0.3, 0.8), rng.uniform(300, 3000)
    cores = rng.choice((1.0, 2.0, 4.0, 8.0))
    memory_base = rng.uniform(150e6, 2e9)
    return Component(
        name=name,
        kind=kind,
        tier=int(spec["tier"]),
        own_latency=own,
        spread=spread,
        base_errors=rng.uniform(0.0001, 0.004),
        capacity=cap,
        cpu_base=cores * rng.uniform(0.02, 0.1),
        cpu_per_request=0.0,  # set once the normal load is known
        cores=cores,
        memory_base=memory_base,
        memory_limit=memory_base * rng.uniform(1.6, 3.0),
    )


def _metric_names(rng: random.Random, comp: Component) -> list[str]:
    if comp.kind == "external":
        return [] if rng.random() < 0.4 else ["latency_avg", "availability_min"]
    if comp.kind == "lb":
        return [
            "latency_avg",
            rng.choice(("latency_p95", "latency_p99")),
            "errors_avg",
            "requests_sum",
            "availability_avg",
        ]
    if comp.kind == "queue":
        return ["requests_sum", "saturation_max", "latency_avg", "cpu_avg"]
    if comp.kind == "database":
        names = ["latency_avg", "latency_p99", "requests_sum", "cpu_avg", "memory_max", "saturation_avg"]
        if rng.random() < 0.5:
            names.append("errors_avg")
        return names
    names = ["latency_avg", "errors_avg", "requests_sum", "cpu_avg", "memory_max"]
    names += rng.sample(["latency_p50", "latency_p90", "latency_p95", "latency_p99"], rng.randint(1, 3))
    if rng.random() < 0.4:
        names.append("saturation_avg")
    if rng.random() < 0.3:
        names.append("availability_avg")
    return names


# --- the model -----------------------------------------------------------------------------


@dataclass
class _State:
    requests: dict[str, float]
    latency: dict[str, float]
    errors: dict[str, float]
    utilisation: dict[str, float]
    cpu: dict[str, float]
    memory: dict[str, float]
    p99_factor: dict[str, float]
    down: set[str]


def _season(t: float, amplitude: float, phase: float) -> float:
    return 1.0 + amplitude * math.sin(2 * math.pi * t / 86400.0 + phase)


class _Model:
    def __init__(
        self,
        comps: dict[str, Component],
        calls: dict[tuple[str, str], Call],
        order: list[str],
        season_amp: float,
        season_phase: float,
    ):
        self.comps = comps
        self.calls = calls
        self.order = order  # callers before callees
        self.deps: dict[str, list[str]] = {n: [] for n in comps}
        self.callers: dict[str, list[str]] = {n: [] for n in comps}
        for caller, callee in calls:
            self.deps[caller].append(callee)
            self.callers[callee].append(caller)
        self.season_amp = season_amp
        self.season_phase = season_phase
        self.prev_errors: dict[str, float] = {n: c.base_errors for n, c in comps.items()}
        self.hang: dict[str, float] = {}

    def step(self, t: float, faults: list[Fault], jitter: random.Random) -> _State:
        active = [f for f in faults if f.onset <= t <= f.end]
        down = {f.root for f in active if f.kind == "dependency_down"}
        season = _season(t, self.season_amp, self.season_phase)
        req: dict[str, float] = {}
        for name in self.order:
            comp = self.comps[name]
            total = comp.entry_traffic * season * (1 + jitter.gauss(0, 0.01))
            retried = 0.0
            for caller in self.callers[name]:
                if caller in down:
                    continue  # a component that is down calls nobody
                call = self.calls[(caller, name)]
                per = call.per_request
                for f in active:
                    if f.kind == "misconfiguration" and f.root == caller and f.hammered == name:
                        per *= f.params["hammer"]
                calls = req.get(caller, 0.0) * per
                total += calls
                retried += calls * call.retries * self.prev_errors[name]
            # clients retry failed calls within a retry budget of 20% extra load (Envoy's default)
            req[name] = total + min(retried, 0.2 * total)
        lat: dict[str, float] = {}
        err: dict[str, float] = {}
        util: dict[str, float] = {}
        cpu: dict[str, float] = {}
        mem: dict[str, float] = {}
        p99: dict[str, float] = {}
        for name in reversed(self.order):
            comp = self.comps[name]
            cpu_mult, lat_mult, lat_add, own_err, tail, mem_add = 1.0, 1.0, 0.0, comp.base_errors, 1.0, 0.0
            for f in active:
                if f.root != name:
                    continue
                progress = (t - f.onset) / max(f.end - f.onset, 1.0)
                if f.kind == "cpu_saturation":
                    cpu_mult *= f.params["cpu"]
                elif f.kind == "latency_injection":
                    lat_add += f.params["delay"]
                elif f.kind == "error_burst":
                    own_err = max(own_err, f.params["errors"] * (0.6 + 0.4 * jitter.random()))
                elif f.kind == "memory_leak":
                    mem_add += f.params["leak"] * progress * comp.memory_limit
                elif f.kind == "misconfiguration":
                    own_err = max(own_err, f.params["errors"])
                    lat_mult *= f.params["slow"]
                elif f.kind == "noise_cpu":
                    cpu_mult *= f.params["cpu"]
                elif f.kind == "noise_latency":
                    lat_mult *= f.params["slow"]
                elif f.kind == "noise_memory":
                    mem_add += f.params["jump"] * comp.memory_base
            memory = comp.memory_base * (1 + 0.02 * math.sin(t / 5000.0)) + mem_add
            if memory > 0.8 * comp.memory_limit:
                # garbage collection pressure: slower, with a fatter tail; at the limit, OOM kills
                pressure = (memory - 0.8 * comp.memory_limit) / (0.2 * comp.memory_limit)
                lat_mult *= 1 + 1.5 * min(pressure, 2.0)
                tail *= 1 + 2.0 * min(pressure, 2.0)
                if memory >= comp.memory_limit:
                    memory = comp.memory_limit * jitter.uniform(0.5, 1.0)  # restarted
                    own_err = max(own_err, jitter.uniform(0.05, 0.3))
            demand = req[name] / comp.capacity * cpu_mult
            u = min(demand, 0.985)
            queueing = 1 + 0.4 * u**3 / (1 - u)
            own = comp.own_latency * queueing * lat_mult + lat_add
            if demand > 1.0:
                own_err = max(own_err, min(0.5, (demand - 1.0) * 0.5))
            ok = 1.0 - min(own_err, 1.0)
            waits: list[float] = []
            for dep in self.deps[name]:
                call = self.calls[(name, dep)]
                dep_lat, dep_err = lat[dep], err[dep]
                if dep_lat > call.timeout:
                    dep_err = min(1.0, dep_err + 0.5 * (dep_lat / call.timeout - 1))
                    dep_lat = call.timeout
                waits.append(min(call.per_request, 2.0) * call.sync * dep_lat)
                ok *= 1 - min(1.0, dep_err * (1 - call.fallback) * min(call.per_request, 1.0))
            # some calls run in parallel: the slowest counts whole, the others in part
            total_lat = own + (max(waits) + 0.3 * (sum(waits) - max(waits)) if waits else 0.0)
            if name in down:
                # refused connections fail fast; a hung host makes callers wait for their timeout
                total_lat, ok = self.hang.get(name, 0.0), 0.0
            lat[name] = total_lat
            err[name] = 1 - ok
            util[name] = min(1.0, demand)
            cpu[name] = min(comp.cores, comp.cpu_base + comp.cpu_per_request * req[name] * cpu_mult)
            mem[name] = memory
            p99[name] = tail
        self.prev_errors = err
        return _State(req, lat, err, util, cpu, mem, p99, down)


_Z = {"p50": 0.0, "p90": 1.2816, "p95": 1.6449, "p99": 2.3263}


def _value(metric: str, comp: Component, state: _State, step: float) -> float:
    kind, _, stat = metric.rpartition("_")
    name = comp.name
    if name in state.down and kind in ("latency", "cpu", "memory", "saturation"):
        return math.nan  # nothing to measure on a component that is down
    if kind == "latency":
        mean = state.latency[name]
        if stat == "avg":
            return mean
        sigma = comp.spread
        median = mean * math.exp(-(sigma**2) / 2)
        tail = state.p99_factor[name] if stat in ("p95", "p99") else 1.0
        return median * math.exp(_Z[stat] * sigma) * tail
    if kind == "errors":
        return state.errors[name]
    if kind == "availability":
        return 1.0 - state.errors[name]
    if kind == "requests":
        return state.requests[name] * step * (1.0 - (1.0 if name in state.down else 0.0))
    if kind == "cpu":
        return state.cpu[name]
    if kind == "memory":
        return state.memory[name]
    if kind == "saturation":
        return state.utilisation[name]
    raise ValueError(metric)


# --- scenario generation ---------------------------------------------------------------------


def simulate_scenario(
    seed: int, out: Path, *, fault: str | None = None, shape: str | None = None
) -> dict[str, Any]:
    """Write one scenario directory; returns its truth (root cause, fault, parameters)."""
    rng = random.Random(seed)
    shape = shape or rng.choice(SHAPES)
    fault = fault or rng.choice(FAULTS)
    size = rng.randint(10, 60)
    spec_services, order = generate_topology(rng, shape, size)
    comps = {name: _component(rng, name, spec_services[name]) for name in order}
    calls: dict[tuple[str, str], Call] = {}
    for name in order:
        for dep in spec_services[name]["depends_on"]:
            dep_kind = comps[dep].kind
            calls[(name, dep)] = Call(
                per_request=rng.uniform(0.3, 1.0) if comps[name].kind == "lb" else rng.uniform(0.2, 2.0),
                sync=rng.uniform(0.5, 1.0) if dep_kind != "queue" else rng.uniform(0.05, 0.3),
                timeout=rng.choice((0.25, 0.5, 1.0, 2.0)),
                fallback=rng.uniform(0.0, 0.7)
                if dep_kind in ("external", "queue")
                else rng.uniform(0.0, 0.3),
                retries=rng.choice((0, 0, 0, 1, 2)),
            )
    graph: nx.DiGraph[str] = nx.DiGraph(list(calls))
    graph.add_nodes_from(order)
    order = list(nx.topological_sort(graph))
    for name in order:
        if not any(c == name for _, c in calls):
            comps[name].entry_traffic = rng.uniform(50, 2000) if comps[name].kind == "lb" else 0.0
    for name in order:
        if comps[name].entry_traffic == 0.0 and not any(c == name for _, c in calls):
            comps[name].entry_traffic = rng.uniform(5, 100)  # batch or internal traffic
    season_amp, season_phase = rng.uniform(0.0, 0.3), rng.uniform(0, 2 * math.pi)
    model = _Model(comps, calls, order, season_amp, season_phase)

    step = rng.choice((15.0, 30.0, 60.0, 60.0, 120.0, 300.0))
    normal_len = rng.choice((30, 60, 90, 120)) * 60.0
    if step >= 300:
        normal_len = max(normal_len, 90 * 60.0)
    normal_len = min(normal_len, 200 * step)  # bounded series length
    window = max(rng.choice((10, 15, 20, 30)) * 60.0, 4 * step)
    gap = rng.choice((0, 5, 10)) * 60.0
    start = 1_780_000_000 + rng.randrange(0, 86400 * 30) // int(step) * step

    # Size capacity and CPU to a normal utilisation of 15-60% at the load when data starts,
    # and client timeouts to a multiple of what a dependency normally takes.
    probe = model.step(start, [], random.Random(0))
    for name, comp in comps.items():
        load = max(probe.requests[name], 1e-3)
        # third-party endpoints are sized for the whole internet, not for us
        comp.capacity = load / (
            rng.uniform(0.01, 0.05) if comp.kind == "external" else rng.uniform(0.1, 0.45)
        )
        comp.cpu_per_request = comp.cores * rng.uniform(0.2, 0.55) / load
        comp.metrics = _metric_names(rng, comp)
    probe = model.step(start, [], random.Random(0))
    for (_, callee), call in calls.items():
        call.timeout = max(call.timeout, probe.latency[callee] * rng.uniform(5.0, 20.0))
    model.prev_errors = {n: c.base_errors for n, c in comps.items()}
    normal = (start, start + normal_len)
    onset = normal[1] + gap + step
    end = onset + window

    root = _pick_root(rng, fault, comps, graph)
    params: dict[str, float] = {}
    hammered = None
    if fault == "cpu_saturation":
        params["cpu"] = rng.uniform(2.5, 6.0)
    elif fault == "memory_leak":
        params["leak"] = rng.uniform(0.9, 2.0)
    elif fault == "latency_injection":
        params["delay"] = comps[root].own_latency * rng.uniform(2.0, 10.0) + rng.uniform(0.01, 0.5)
    elif fault == "error_burst":
        params["errors"] = rng.uniform(0.05, 0.6)
    elif fault == "misconfiguration":
        params["errors"] = rng.uniform(0.0, 0.15) if rng.random() < 0.6 else comps[root].base_errors
        params["slow"] = rng.uniform(1.0, 3.0)
        deps = sorted(graph.successors(root))
        if deps and rng.random() < 0.4:
            hammered = rng.choice(deps)
            params["hammer"] = rng.uniform(2.0, 6.0)
        if params["errors"] < 0.02 and params["slow"] < 1.5 and hammered is None:
            params["slow"] = rng.uniform(1.5, 3.0)
    faults = [Fault(fault, root, onset, end, params, hammered)]
    if fault == "dependency_down" and rng.random() < 0.5:
        model.hang[root] = max((calls[(c, root)].timeout for c in graph.predecessors(root)), default=1.0)
    unrelated = None
    if rng.random() < 0.5:
        others = [n for n in order if n != root and comps[n].kind != "external"]
        unrelated = rng.choice(others)
        noise_kind = rng.choice(("noise_cpu", "noise_latency", "noise_memory"))
        noise_params = {
            "cpu": rng.uniform(1.5, 3.0),
            "slow": rng.uniform(1.3, 2.5),
            "jump": rng.uniform(0.2, 0.6),
        }
        n_on = onset + rng.uniform(0, window * 0.5)
        faults.append(
            Fault(noise_kind, unrelated, n_on, min(end, n_on + window * rng.uniform(0.3, 1.0)), noise_params)
        )

    noise = rng.choice((0.02, 0.04, 0.06, 0.08, 0.12))
    gap_rate = rng.choice((0.0, 0.0, 0.05, 0.1, 0.2))
    no_data = {n for n in order if comps[n].kind == "service" and rng.random() < 0.05}
    jitter = random.Random(seed * 7919 + 1)
    series: dict[str, dict[str, list[tuple[float, float]]]] = {}
    clean_normal: dict[str, list[_State]] = {"normal": [], "incident": []}
    per_metric_noise = {(n, m): noise * rng.uniform(0.5, 1.5) for n in order for m in comps[n].metrics}
    vanish = fault == "dependency_down" and rng.random() < 0.6
    t = start
    while t <= end + 1e-6:
        state = model.step(t, faults, jitter)
        if t <= normal[1]:
            clean_normal["normal"].append(state)
        elif t >= onset:
            clean_normal["incident"].append(state)
        for name in order:
            comp = comps[name]
            if name in no_data or (vanish and name == root and t >= onset):
                continue
            for metric in comp.metrics:
                if rng.random() < gap_rate:
                    continue
                value = _value(metric, comp, state, step)
                if math.isnan(value):
                    continue
                if not metric.startswith(("availability", "errors")):
                    value *= max(0.0, 1 + jitter.gauss(0, per_metric_noise[(name, metric)]))
                    if jitter.random() < 0.004:
                        value *= jitter.uniform(1.5, 4.0)  # a spike
                elif metric.startswith("errors"):
                    value = min(
                        1.0, max(0.0, value * (1 + jitter.gauss(0, 0.3)) + abs(jitter.gauss(0, 0.0005)))
                    )
                else:
                    value = min(1.0, max(0.0, value - abs(jitter.gauss(0, 0.0005))))
                series.setdefault(name, {}).setdefault(metric, []).append((t, value))
        t += step

    symptom, symptom_metric, affected = _pick_symptom(rng, root, comps, graph, clean_normal)
    out.mkdir(parents=True, exist_ok=True)
    topology = {
        "services": {
            name: {
                "kind": comps[name].kind,
                "tier": comps[name].tier,
                "owner": f"team-{name.split('-')[0]}",
                "depends_on": sorted(graph.successors(name)),
            }
            for name in order
        }
    }
    (out / "topology.yaml").write_text(yaml.safe_dump(topology, sort_keys=False))
    write_metrics_csv(out / "metrics.csv", series)
    incident = {
        "symptom": {"service": symptom, "metric": symptom_metric},
        "normal": [normal[0], normal[1]],
        "anomalous": [onset, end],
    }
    (out / "incident.json").write_text(json.dumps(incident, indent=2))
    alerts = _alerts(rng, root, symptom, symptom_metric, affected, order, onset)
    (out / "alerts.json").write_text(json.dumps(alerts, indent=2))
    truth = {
        "root_cause": root,
        "fault": fault,
        "seed": seed,
        "shape": shape,
        "services": len(order),
        "step_seconds": step,
        "noise": noise,
        "gap_rate": gap_rate,
        "unrelated_anomaly": unrelated,
        "hammered_dependency": hammered,
        "metrics_vanished": vanish,
        "root_alerted": any(a["labels"]["service"] == root for a in alerts),
        "params": {k: round(v, 4) for k, v in params.items()},
    }
    (out / "truth.json").write_text(json.dumps(truth, indent=2))
    return truth


def _pick_root(rng: random.Random, fault: str, comps: dict[str, Component], graph: nx.DiGraph[str]) -> str:
    names = sorted(comps)
    if fault == "dependency_down":
        pool = [n for n in names if comps[n].kind in ("database", "queue", "external", "service")]
    elif fault in ("cpu_saturation", "memory_leak"):
        pool = [n for n in names if comps[n].kind in ("service", "database", "queue")]
    elif fault == "misconfiguration":
        pool = [n for n in names if comps[n].kind in ("service", "lb")]
    else:
        pool = [n for n in names if comps[n].kind != "lb"]
    # a fault nobody depends on and that has no metrics is invisible: not a scenario
    pool = [n for n in pool if comps[n].metrics or any(True for _ in graph.predecessors(n))]
    return rng.choice(pool)


def _pick_symptom(
    rng: random.Random,
    root: str,
    comps: dict[str, Component],
    graph: nx.DiGraph[str],
    states: dict[str, list[_State]],
) -> tuple[str, str, list[str]]:
    """Where the on-call would have been paged: the affected component closest to users."""

    def mean(values: list[float]) -> float:
        return sum(values) / max(len(values), 1)

    affected: list[tuple[int, str, str]] = []
    for name in [root, *nx.ancestors(graph, root)]:
        lat0 = mean([s.latency[name] for s in states["normal"]])
        lat1 = mean([s.latency[name] for s in states["incident"]])
        err0 = mean([s.errors[name] for s in states["normal"]])
        err1 = mean([s.errors[name] for s in states["incident"]])
        if err1 - err0 > 0.01:
            affected.append((comps[name].tier, name, "errors_avg"))
        elif lat1 > lat0 * 1.3 and lat1 - lat0 > 0.005:
            affected.append(
                (comps[name].tier, name, "latency_p99" if comps[name].kind != "lb" else "latency_avg")
            )
    if not affected:
        return root, "latency_avg", [root]
    names = [a[1] for a in affected]
    if root in names and rng.random() < 0.15:
        choice = next(a for a in affected if a[1] == root)
    else:
        top_tier = min(a[0] for a in affected)
        choice = rng.choice(sorted(a for a in affected if a[0] == top_tier))
    return choice[1], choice[2], names


def _alert(name: str, service: str, severity: str, at: float, summary: str) -> dict[str, Any]:
    from datetime import UTC, datetime

    return {
        "status": "firing",
        "labels": {"alertname": name, "service": service, "severity": severity, "namespace": "prod"},
        "annotations": {"summary": summary},
        "startsAt": datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z"),
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": f"{name}-{service}"[:60].lower(),
    }


def _alerts(
    rng: random.Random,
    root: str,
    symptom: str,
    symptom_metric: str,
    affected: list[str],
    order: list[str],
    onset: float,
) -> list[dict[str, Any]]:
    kind = symptom_metric.split("_")[0]
    alerts = [_alert(_ALERT_NAMES[kind], symptom, "critical", onset + 60, f"{symptom} {kind} is high")]
    for name in affected:
        if name == symptom:
            continue
        chance = 0.35 if name == root else 0.5
        if rng.random() < chance:
            kind = rng.choice(("latency", "errors"))
            alerts.append(
                _alert(_ALERT_NAMES[kind], name, "warning", onset + rng.uniform(0, 300), f"{name} {kind}")
            )
    for _ in range(rng.randint(0, 3)):
        name = rng.choice(order)
        alerts.append(
            _alert(
                rng.choice(_NOISE_ALERTS),
                name,
                rng.choice(("warning", "info")),
                onset + rng.uniform(-600, 600),
                "unrelated",
            )
        )
    return alerts


def simulate(out: Path, count: int, seed: int = 0, faults: tuple[str, ...] = FAULTS) -> list[dict[str, Any]]:
    """Generate `count` scenarios under `out`, faults in turn so every kind is represented."""
    truths = []
    width = len(str(count - 1))
    for i in range(count):
        fault = faults[i % len(faults)]
        truths.append(simulate_scenario(seed * 100_003 + i, out / f"s{i:0{width}d}-{fault}", fault=fault))
    return truths


# --- alert storms (correlation benchmark) -----------------------------------------------------


@dataclass
class AlertStorm:
    topology: dict[str, Any]  # topology.yaml content
    alerts: list[dict[str, Any]]  # Alertmanager alerts, in time order
    labels: list[str]  # the failure each alert truly belongs to ("noise-*" for unrelated ones)


def alert_storm(
    seed: int = 0, alerts: int = 10_000, services: int = 40, failures: int = 6, noise_sources: int = 4
) -> AlertStorm:
    """A storm: a few failures, each alerting on its root and callers for half an hour,
    repeatedly and per pod, plus flapping alerts unrelated to any failure."""
    rng = random.Random(seed)
    spec, order = generate_topology(rng, "layered", services)
    graph: nx.DiGraph[str] = nx.DiGraph([(s, d) for s in order for d in spec[s]["depends_on"]])
    graph.add_nodes_from(order)
    start = 1_780_000_000.0
    sources: list[tuple[str, list[str], float, float]] = []  # label, services, begin, end
    roots = rng.sample([n for n in order if graph.in_degree(n) > 0], failures)
    for i, root in enumerate(roots):
        callers = sorted(nx.ancestors(graph, root))
        near = [c for c in callers if nx.shortest_path_length(graph, c, root) <= 2]
        affected = [root, *rng.sample(near, min(len(near), rng.randint(1, 5)))]
        begin = start + i * 45 * 60 + rng.uniform(-600, 600)
        sources.append((f"failure-{i}", affected, begin, begin + rng.uniform(15, 30) * 60))
    end = max(s[3] for s in sources)
    for j in range(noise_sources):
        sources.append((f"noise-{j}", [rng.choice(order)], start, end))
    weights = [len(s[1]) * (3.0 if s[0].startswith("failure") else 0.5) for s in sources]
    out: list[tuple[float, dict[str, Any], str]] = []
    for _ in range(alerts):
        label, affected, begin, finish = rng.choices(sources, weights)[0]
        service = rng.choice(affected)
        kind = rng.choice(("latency", "errors", "saturation", "down"))
        name = _ALERT_NAMES[kind] if label.startswith("failure") else rng.choice(_NOISE_ALERTS)
        at = rng.uniform(begin, finish)
        pod = f"{service}-{rng.randrange(16):x}{rng.randrange(4096):03x}"
        alert = _alert(name, service, rng.choice(("critical", "warning")), at, f"{service} {kind}")
        alert["labels"]["pod"] = pod
        alert["fingerprint"] = f"{name}-{pod}"[:60].lower()
        out.append((at, alert, label))
    out.sort(key=lambda x: x[0])
    topology = {
        "services": {n: {"kind": spec[n]["kind"], "depends_on": spec[n]["depends_on"]} for n in order}
    }
    return AlertStorm(topology=topology, alerts=[a for _, a, _ in out], labels=[label for _, _, label in out])
