"""Rules-path decision latency, and how much of a realistic alert mix needs no LLM call.

    python bench/bench_agents.py [--incidents 2000] [--seed 7]

Measures the agents as the activities run them (the hybrid reasoner with no LLM
configured), in process: per agent call, and for the whole triage -> diagnose -> plan ->
review chain of an incident (target: under 50 ms per incident on this machine). Temporal
scheduling, the settle window and approval waits are excluded on purpose.

The alert mix is an assumption, stated here so it can be argued with: the kube-prometheus
default alerts plus common node-exporter, blackbox and application alerts, weighted by how
often they tend to page in a mid-sized Kubernetes shop (crash loops, throttling, not-ready
pods and scrape failures dominate), with about 10% of incidents from signatures the rules
do not know. Each incident gets one to three alerts on one service; a quarter carry
root-cause evidence of the kinds `rca/` produces.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from activities.agents import AgentActivities
from agents.factory import build_reasoner
from agents.rules import RuleBook
from evals.agents.harness import load_cases, run_chain
from models.agents import (
    DiagnosisInput,
    Evidence,
    PlanInput,
    ReviewInput,
    TriageInput,
)
from models.alert import Alert, AlertmanagerAlert
from policies.catalog import load_catalog
from runtime.settings import Settings

# (weight, alertname, severity, extra labels); "{s}" is the incident's service.
MIX: list[tuple[int, str, str, dict[str, str]]] = [
    (15, "KubePodCrashLooping", "warning", {"container": "{s}", "job": "kube-state-metrics"}),
    (10, "KubePodNotReady", "warning", {"pod": "{s}-0", "service": "{s}"}),
    (10, "CPUThrottlingHigh", "info", {"container": "{s}", "service": "{s}"}),
    (8, "TargetDown", "warning", {"job": "{s}", "service": "{s}"}),
    (6, "KubeDeploymentReplicasMismatch", "warning", {"deployment": "{s}", "job": "kube-state-metrics"}),
    (6, "HighErrorRate", "critical", {"service": "{s}"}),
    (6, "NodeFilesystemSpaceFillingUp", "warning", {"instance": "10.0.{n}.17:9100", "job": "node-exporter"}),
    (5, "HighLatency", "warning", {"app": "{s}"}),
    (5, "KubeJobFailed", "warning", {"job_name": "{s}-cron", "job": "kube-state-metrics"}),
    (5, "InfoInhibitor", "none", {}),
    (4, "KubeContainerWaiting", "warning", {"container": "{s}", "job": "kube-state-metrics"}),
    (3, "KubePersistentVolumeFillingUp", "critical", {"persistentvolumeclaim": "data-{s}-0"}),
    (3, "BlackboxProbeFailed", "critical", {"service": "{s}", "job": "blackbox"}),
    (3, "KubeContainerOOMKilled", "warning", {"container": "{s}", "service": "{s}"}),
    (
        2,
        "NodeFilesystemAlmostOutOfSpace",
        "critical",
        {"instance": "10.0.{n}.9:9100", "job": "node-exporter"},
    ),
    (2, "KubeCPUOvercommit", "warning", {}),
    (2, "KubeMemoryOvercommit", "warning", {}),
    (2, "KubeHpaMaxedOut", "warning", {"horizontalpodautoscaler": "{s}", "service": "{s}"}),
    (2, "ErrorBudgetBurn", "critical", {"service": "{s}"}),
    (1, "InstanceDown", "critical", {"instance": "10.0.{n}.21:9100", "job": "node"}),
    (1, "PrometheusRuleFailures", "warning", {"job": "prometheus"}),
    # Signatures the shipped rules do not know (the LLM's share).
    (2, "KubeStatefulSetReplicasMismatch", "warning", {"statefulset": "{s}", "job": "kube-state-metrics"}),
    (2, "NodeMemoryHighUtilization", "warning", {"instance": "10.0.{n}.5:9100", "job": "node-exporter"}),
    (2, "CertificateExpiringSoon", "warning", {"service": "{s}"}),
    (2, "KafkaConsumerLagHigh", "warning", {"consumergroup": "{s}", "service": "{s}"}),
    (1, "KubeDaemonSetRolloutStuck", "warning", {"daemonset": "{s}", "job": "kube-state-metrics"}),
    (1, "NodeClockNotSynchronising", "warning", {"instance": "10.0.{n}.3:9100", "job": "node-exporter"}),
    (1, "PostgresReplicationLagHigh", "critical", {"service": "{s}"}),
    (1, "etcdMembersDown", "critical", {"job": "etcd"}),
]
SERVICES = [
    "checkout",
    "cart",
    "payments",
    "search",
    "orders",
    "catalog",
    "auth",
    "gateway",
    "billing",
    "ledger",
]
EVIDENCE_KINDS = [("root_cause", 0.85), ("crashloop", 0.8), ("deploy_in_progress", 0.3), ("replicas", None)]


def make_alert(name: str, severity: str, extra: dict[str, str], service: str, n: int) -> Alert:
    labels = {"alertname": name, "severity": severity, "namespace": "shop"}
    labels.update({k: v.replace("{s}", service).replace("{n}", str(n)) for k, v in extra.items()})
    return AlertmanagerAlert.model_validate(
        {
            "status": "firing",
            "labels": labels,
            "annotations": {"summary": f"{name} on {service}", "description": "generated by bench_agents"},
            "startsAt": "2026-11-21T10:00:00Z",
        }
    ).to_alert()


def incidents(count: int, seed: int) -> list[tuple[list[Alert], list[Evidence]]]:
    rng = random.Random(seed)
    weights = [w for w, *_ in MIX]
    out = []
    for _ in range(count):
        service, n = rng.choice(SERVICES), rng.randrange(1, 250)
        picks = rng.choices(MIX, weights=weights, k=rng.choice([1, 1, 1, 2, 3]))
        alerts = [make_alert(name, sev, extra, service, n) for _, name, sev, extra in picks]
        evidence = []
        if rng.random() < 0.25:
            kind, score = rng.choice(EVIDENCE_KINDS)
            target = rng.choice([service, rng.choice(SERVICES)])
            evidence.append(
                Evidence(
                    source="bench",
                    service=target,
                    kind=kind,
                    summary=f"{kind} on {target}",
                    score=score,
                    value=float(rng.randrange(1, 12)) if kind == "replicas" else None,
                )
            )
        out.append((alerts, evidence))
    return out


def ms(values: list[float]) -> str:
    values = sorted(v * 1000 for v in values)
    p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
    return f"p50 {statistics.median(values):7.3f}  p95 {p95:7.3f}  max {values[-1]:7.3f}  (n={len(values)})"


async def time_call(call: Callable[[Any], Awaitable[Any]], input: Any, samples: list[float]) -> Any:
    started = time.perf_counter()
    result = await call(input)
    samples.append(time.perf_counter() - started)
    return result


async def main(count: int, seed: int) -> int:
    settings = Settings(_env_file=None, anthropic_api_key=None)
    catalog = load_catalog(settings.playbooks_dir)
    agents = AgentActivities(RuleBook.load(settings.rules_file), catalog, build_reasoner(settings, catalog))
    mix = incidents(count, seed)

    # Warm-up (imports, regex compilation, pydantic schemas), not measured.
    for alerts, evidence in mix[:50]:
        await run_chain(agents, "warm", alerts, evidence)

    per_agent: dict[str, list[float]] = {"triage": [], "diagnose": [], "plan": [], "review": []}
    chains: list[float] = []
    outcomes: Counter[str] = Counter()
    wanted_by: Counter[str] = Counter()
    resolved = 0
    for index, (alerts, evidence) in enumerate(mix):
        incident = f"bench-{index}"
        started = time.perf_counter()
        run = await run_chain(agents, incident, alerts, evidence)
        chains.append(time.perf_counter() - started)
        outcomes[run.outcome] += 1
        resolved += not run.llm_wanted
        for name, result in (("triage", run.triage), ("diagnose", run.diagnosis), ("plan", run.plan)):
            if result is not None and result.llm_wanted:
                wanted_by[name] += 1
        # Each agent on its own, on the same inputs the chain built.
        await time_call(agents.triage, TriageInput(incident_id=incident, alerts=alerts), per_agent["triage"])
        if run.diagnosis is not None:
            diagnosis_input = DiagnosisInput(
                incident_id=incident, alerts=alerts, triage=run.triage, evidence=evidence
            )
            await time_call(agents.diagnose, diagnosis_input, per_agent["diagnose"])
        if run.plan is not None and run.diagnosis is not None:
            plan_input = PlanInput(
                incident_id=incident,
                alerts=alerts,
                triage=run.triage,
                diagnosis=run.diagnosis,
                evidence=evidence,
            )
            await time_call(agents.plan_remediation, plan_input, per_agent["plan"])
            if run.plan.actions:
                review_input = ReviewInput(
                    incident_id=incident,
                    alerts=alerts,
                    triage=run.triage,
                    diagnosis=run.diagnosis,
                    plan=run.plan,
                    evidence=evidence,
                )
                await time_call(agents.review_plan, review_input, per_agent["review"])

    cases = load_cases()
    case_runs = [await run_chain(agents, c.id, c.to_alerts(), c.evidence) for c in cases]
    case_share = sum(not r.llm_wanted for r in case_runs) / len(case_runs)

    print(f"Rules-path decisions, {count} generated incidents (seed {seed}), ms per call:")
    for name, samples in per_agent.items():
        print(f"  {name:<9} {ms(samples)}")
    print(f"  {'chain':<9} {ms(chains)}   <- triage->diagnose->plan->review per incident (target < 50 ms)")
    print()
    print(f"Outcomes: {dict(outcomes)}")
    print(
        f"Resolved by rules without an LLM call: {resolved / count:.1%} of the generated mix, "
        f"{case_share:.1%} of the {len(cases)} eval cases"
    )
    print(f"LLM wanted by agent (generated mix): {dict(wanted_by)}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--incidents", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.incidents, args.seed)))
