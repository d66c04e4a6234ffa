"""The four agents on the rule reasoner alone: realistic alerts and evidence, and the rule book.

No LLM here: `HybridReasoner(None, ...)` is what a worker without a key runs. The Claude
path is tested against a local Messages API server in tests/integration/.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from activities.agents import AgentActivities
from agents.budget import GlobalBudget, IncidentCaps
from agents.hybrid import HybridReasoner
from agents.redact import Redactor
from agents.rules import RuleBook, RuleFileError
from evals.agents.harness import run_chain
from models.agents import (
    DiagnosisInput,
    DiagnosisResult,
    Evidence,
    PlanResult,
    ProposedAction,
    ReviewInput,
    TriageInput,
    TriageResult,
)
from models.alert import Alert, AlertmanagerAlert, Severity
from models.policy import PolicyDecision, PolicyVerdict
from policies.catalog import load_catalog
from policies.gate import strictest
from runtime.settings import PROJECT_ROOT

RULES = PROJECT_ROOT / "agents" / "rules.yaml"
CATALOG = load_catalog(PROJECT_ROOT / "playbooks")


def agents(book: RuleBook | None = None, threshold: float = 0.6) -> AgentActivities:
    reasoner = HybridReasoner(
        None,
        threshold=threshold,
        redactor=Redactor(),
        incident_caps=IncidentCaps(),
        budget=GlobalBudget(requests_per_minute=60, spend_cap_usd=1.0),
    )
    return AgentActivities(book or RuleBook.load(RULES), CATALOG, reasoner)


def alert(labels: dict[str, str], **annotations: str) -> Alert:
    return AlertmanagerAlert.model_validate(
        {
            "status": "firing",
            "labels": labels,
            "annotations": annotations,
            "startsAt": "2026-11-21T10:00:00Z",
        }
    ).to_alert()


def ev(service: str, kind: str, score: float | None = None, value: float | None = None) -> Evidence:
    return Evidence(
        source="test", service=service, kind=kind, summary=f"{kind} on {service}", score=score, value=value
    )


# --- The whole chain on realistic alerts ------------------------------------------------------


@dataclass(frozen=True)
class Chain:
    alerts: list[dict[str, str]]
    outcome: str
    action: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    evidence: list[Evidence] = field(default_factory=list)
    reason: str = ""  # a substring of why it stopped, when it did
    wanted_llm: bool = False


CHAINS = {
    "kube-state-metrics-crashloop": Chain(
        [
            {
                "alertname": "KubePodCrashLooping",
                "container": "checkout",
                "job": "kube-state-metrics",
                "namespace": "shop",
                "pod": "checkout-7d9f8b6c5-x2k4q",
                "service": "kube-state-metrics",
                "severity": "warning",
            }
        ],
        "act",
        "restart_service",
        {"service": "checkout"},
    ),
    "node-exporter-disk": Chain(
        [
            {
                "alertname": "NodeFilesystemAlmostOutOfSpace",
                "instance": "10.0.3.17:9100",
                "job": "node-exporter",
                "mountpoint": "/",
                "severity": "critical",
            }
        ],
        "act",
        "clear_disk_space",
        {"service": "10.0.3.17", "older_than_days": 7},
    ),
    "kube-pod-not-ready-low-confidence-still-acts": Chain(
        [
            {
                "alertname": "KubePodNotReady",
                "namespace": "shop",
                "pod": "cart-1",
                "service": "cart",
                "severity": "warning",
            }
        ],
        "act",
        "restart_service",
        {"service": "cart"},
    ),
    "node-down-is-a-host": Chain(
        [{"alertname": "InstanceDown", "instance": "10.0.3.21:9100", "job": "node", "severity": "critical"}],
        "escalate",
        reason="a host is down",
    ),
    "persistent-volume": Chain(
        [
            {
                "alertname": "KubePersistentVolumeFillingUp",
                "namespace": "db",
                "persistentvolumeclaim": "data-postgres-0",
                "service": "kube-prometheus-stack-kube-state-metrics",
                "severity": "critical",
            }
        ],
        "escalate",
        reason="persistent volume",
    ),
    "oom-killed": Chain(
        [
            {
                "alertname": "KubeContainerOOMKilled",
                "container": "billing",
                "service": "billing",
                "severity": "warning",
            }
        ],
        "escalate",
        reason="out-of-memory",
    ),
    "watchdog": Chain([{"alertname": "Watchdog", "severity": "none"}], "no_action"),
    "unknown-signature": Chain(
        [{"alertname": "RedisReplicationBroken", "service": "redis", "severity": "critical"}],
        "escalate",
        reason="no rule covers RedisReplicationBroken",
        wanted_llm=True,
    ),
    "upstream-root-cause-restarted-not-the-symptom": Chain(
        [{"alertname": "HighErrorRate", "service": "checkout", "severity": "critical"}],
        "act",
        "restart_service",
        {"service": "payments"},
        evidence=[ev("payments", "root_cause", 0.85), ev("payments", "crashloop", 0.8)],
    ),
    "upstream-without-a-known-fix": Chain(
        [{"alertname": "ErrorBudgetBurn", "service": "api", "severity": "critical"}],
        "escalate",
        evidence=[ev("auth", "root_cause", 0.9)],
        reason="no catalog action is known for root_cause on auth",
        wanted_llm=True,
    ),
    "restart-vetoed-during-deploy": Chain(
        [{"alertname": "HighErrorRate", "service": "cart", "severity": "critical"}],
        "escalate",
        evidence=[ev("cart", "deploy_in_progress", 0.3)],
        reason="no-restart-during-deploy: a deploy is in progress on cart",
    ),
    "scale-down-vetoed": Chain(
        [{"alertname": "KubeHpaMaxedOut", "service": "frontend", "severity": "warning"}],
        "escalate",
        evidence=[ev("frontend", "replicas", value=10)],
        reason="no-scale-down: scale_service to 4 replicas does not add capacity (frontend runs 10)",
    ),
    "scale-up-approved": Chain(
        [{"alertname": "HighLatency", "service": "search", "severity": "warning"}],
        "act",
        "scale_service",
        {"service": "search", "replicas": 4},
        evidence=[ev("search", "replicas", value=2)],
    ),
    "ambiguous-root-cause": Chain(
        [{"alertname": "High5xxRate", "service": "gateway", "severity": "warning"}],
        "escalate",
        evidence=[ev("inventory", "root_cause", 0.72)],
        reason="ambiguous root cause: gateway (0.75) and inventory (0.72)",
        wanted_llm=True,
    ),
}


@pytest.mark.parametrize("case", CHAINS.values(), ids=CHAINS.keys())
async def test_chain_on_rules(case: Chain) -> None:
    run = await run_chain(agents(), "incident-test", [alert(a) for a in case.alerts], case.evidence)
    assert run.outcome == case.outcome, run.reason
    assert case.reason in run.reason
    assert all(r.reasoner == "rules" and r.routing for r in run.results)
    assert run.llm_wanted is case.wanted_llm
    if case.wanted_llm:
        assert any("no LLM configured" in r.routing for r in run.results)
    assert run.usage.calls == 0
    if case.outcome == "act":
        assert run.plan is not None and run.review is not None
        (action,) = run.plan.actions
        assert (action.action, action.params, action.target) == (
            case.action,
            case.params,
            case.params["service"],
        )
        CATALOG.validate_params(action.action, action.params)
        spec = CATALOG.actions[action.action]
        assert (action.risk, action.timeout_seconds) == (spec.risk.value, spec.timeout_seconds)
        assert run.plan.rationale and run.plan.expected_effect and run.plan.verification
        assert run.review.verdict == "approve"


async def test_triage_fields_and_routing() -> None:
    activities = agents()
    crash = alert(
        {"alertname": "KubePodCrashLooping", "service": "cart", "severity": "critical"}, summary="boom"
    )
    result = await activities.triage(TriageInput(incident_id="i", alerts=[crash]))
    assert (result.severity, result.category, result.services) == ("P1", "availability", ["cart"])
    assert result.actionable and result.proposed is None, "triage says whether; the planner says what"
    assert result.routing == "rules: rule service-down decided with confidence 0.90 (threshold 0.60)"
    # The same rule under a stricter threshold is routed to the LLM, which is not configured.
    strict = await agents(threshold=0.95).triage(TriageInput(incident_id="i", alerts=[crash]))
    assert strict.llm_wanted and strict.reasoner == "rules"
    assert strict.routing == (
        "rules confidence 0.90 < threshold 0.95; no LLM configured (FIREBREAK_ANTHROPIC_API_KEY unset): "
        "decided by rules"
    )


async def test_diagnosis_ranks_evidence_and_keeps_weak_evidence_as_support() -> None:
    alerts = [
        alert({"alertname": "HighLatency", "service": "search", "severity": "warning"}),
        alert({"alertname": "HighErrorRate", "service": "cart", "severity": "critical"}),
    ]
    triage = await agents().triage(TriageInput(incident_id="i", alerts=alerts))
    evidence = [ev("cart", "error_ratio", 0.2, value=0.12), ev("db", "root_cause", 0.95)]
    result = await agents().diagnose(
        DiagnosisInput(incident_id="i", alerts=alerts, triage=triage, evidence=evidence)
    )
    ranked = [(h.service, h.kind, h.confidence) for h in result.hypotheses]
    assert ranked == [("db", "root_cause", 0.95), ("cart", "errors", 0.75), ("search", "saturation", 0.7)]
    cart = result.hypotheses[1]
    assert cart.rule == "high-error-rate" and len(cart.evidence) == 2
    assert "error_ratio on cart" in cart.evidence[1] and "value 0.12" in cart.evidence[1]
    assert result.hypotheses[0].cause.startswith("db is upstream of the failing services")
    assert result.confidence == 0.95 and result.escalate_reason is None


def review_input(
    action: ProposedAction, evidence: list[Evidence], plan_reasoner: str = "rules"
) -> ReviewInput:
    alerts = [alert({"alertname": "HighLatency", "service": "search", "severity": "warning"})]
    return ReviewInput(
        incident_id="i",
        alerts=alerts,
        triage=TriageResult(
            reasoner="rules",
            confidence=0.7,
            severity=Severity.P3,
            category="saturation",
            services=["search"],
            summary="slow",
        ),
        diagnosis=DiagnosisResult(reasoner="rules", confidence=0.7, hypotheses=[]),
        plan=PlanResult(reasoner=plan_reasoner, confidence=0.7, actions=[action], rationale="r"),
        evidence=evidence,
    )


async def test_reviewer_checks() -> None:
    scale = ProposedAction(
        action="scale_service", params={"service": "search", "replicas": 4}, target="search"
    )
    review = agents()._reviewer.decide_by_rules
    assert review(review_input(scale, [])).verdict == "approve"
    assert review(review_input(scale, [ev("search", "replicas", value=3)])).verdict == "approve"
    vetoed = review(review_input(scale, [ev("search", "replicas", value=4)]))
    assert vetoed.verdict == "veto" and vetoed.rule == "no-scale-down" and vetoed.confidence == 1.0
    assert "Scaling down below the load needs causes overload" in vetoed.reasons[0]

    elsewhere = ProposedAction(action="restart_service", params={"service": "billing"}, target="billing")
    (reason,) = review(review_input(elsewhere, [])).reasons
    assert reason == (
        "target-is-implicated: restart_service targets billing, "
        "which no alert, hypothesis or evidence implicates"
    )

    by_llm = review(review_input(scale, [], plan_reasoner="claude"))
    assert by_llm.verdict == "approve" and by_llm.confidence == 0.5  # the LLM reviewer gets a say
    wanted = agents()._reviewer.llm_wanted(review_input(scale, [], "claude"), by_llm, 0.6)
    assert wanted is not None and "the plan came from claude" in wanted
    assert agents()._reviewer.llm_wanted(review_input(scale, []), vetoed, 0.6) is None, "a rule veto is final"


async def test_planner_escalates_when_a_rule_action_fails_the_catalog() -> None:
    # A label value the catalog's service pattern refuses (upper case): escalate, naming the rule.
    crash = alert({"alertname": "KubePodCrashLooping", "service": "Checkout", "severity": "critical"})
    run = await run_chain(agents(), "i", [crash], [])
    assert run.outcome == "escalate"
    assert run.plan is not None and run.plan.escalate_reason is not None
    assert run.plan.escalate_reason.startswith(
        "rule service-down: action 'restart_service': invalid params: service"
    )


def test_strictest_policy_decision_wins() -> None:
    allow = PolicyDecision(verdict=PolicyVerdict.ALLOW, reasons=["a"], policy="p")
    approve = PolicyDecision(
        verdict=PolicyVerdict.NEEDS_APPROVAL, reasons=["b", "a"], approver_group="sre", policy="p"
    )
    deny = PolicyDecision(verdict=PolicyVerdict.DENY, reasons=["c"], policy="p")
    assert strictest([allow]) == allow
    combined = strictest([allow, approve])
    assert (
        combined.verdict == "needs_approval"
        and combined.reasons == ["a", "b"]
        and combined.approver_group == "sre"
    )
    assert strictest([approve, deny, allow]).verdict == "deny"


# --- The rule book file -------------------------------------------------------------------------

TRIAGE = """
rules:
  - name: crash
    match: {alertname: KubePodCrashLooping}
    category: availability
    confidence: 0.9
"""


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (
            "review:\n  checks:\n    - name: x\n      veto_if: {action: 'restart(('}\n      reason: r\n",
            "bad regular expression",
        ),
        (
            "review:\n  checks:\n    - name: x\n      veto_if: {when_moon: full}\n      reason: r\n",
            "when_moon",
        ),
        (
            "review:\n  checks:\n    - name: x\n"
            "      veto_if: {param_not_above_evidence: {param: replicas}}\n      reason: r\n",
            "exactly the keys",
        ),
        (
            "review:\n  checks:\n    - {name: x, veto_if: {confidence_below: 0.5}, reason: r}\n"
            "    - {name: x, veto_if: {confidence_below: 0.4}, reason: r}\n",
            "unique",
        ),
        ("planner:\n  min_confidence: 2\n", "min_confidence"),
        ("planner:\n  actions_by_kind: {crashloop: {params: {}}}\n", "name"),
        ("diagnosis:\n  causes: [a, b]\n", "causes"),
    ],
    ids=[
        "veto-regex",
        "unknown-condition",
        "param-pair",
        "duplicate-check",
        "confidence-range",
        "action-name",
        "causes",
    ],
)
def test_bad_rule_book_sections_name_file_and_section(tmp_path: Path, extra: str, named: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(TRIAGE + extra)
    with pytest.raises(RuleFileError) as raised:
        RuleBook.load(path)
    message = str(raised.value)
    assert str(path) in message and "section" in message and named in message


def test_rule_cannot_both_act_and_escalate(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(TRIAGE + "    action: {name: restart_service}\n    escalate: a human decides\n")
    with pytest.raises(RuleFileError, match=r"rule crash(.|\n)*either proposes an action or escalates"):
        RuleBook.load(path)


async def test_a_rule_added_as_data_changes_decisions(tmp_path: Path) -> None:
    """Extending the rules is editing YAML: a new signature and a new veto, no code."""
    raw = yaml.safe_load(RULES.read_text())
    raw["rules"].append(
        {
            "name": "kafka-consumer-lag",
            "match": {"alertname": "KafkaConsumerLagHigh"},
            "category": "saturation",
            "confidence": 0.8,
            "action": {"name": "scale_service", "params": {"service": "{service}", "replicas": 6}},
        }
    )
    raw["review"]["checks"].append(
        {
            "name": "change-freeze",
            "veto_if": {"action": "scale_service", "evidence_kind": "change_freeze"},
            "reason": "change freeze on {target}",
        }
    )
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(raw))
    book = RuleBook.load(path)
    lag = alert({"alertname": "KafkaConsumerLagHigh", "service": "orders-worker", "severity": "warning"})

    run = await run_chain(agents(book), "i", [lag], [])
    assert run.outcome == "act" and run.plan is not None
    assert run.plan.actions[0].params == {"service": "orders-worker", "replicas": 6}
    frozen = await run_chain(agents(book), "i", [lag], [ev("orders-worker", "change_freeze")])
    assert frozen.outcome == "escalate" and "change-freeze: change freeze on orders-worker" in frozen.reason
