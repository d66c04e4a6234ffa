"""The Rego policy engine: the shipped policy's own tests, and refusing to load or decide."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from activities.policy import policy_document
from models.agents import ProposedAction
from models.alert import Severity
from models.policy import PolicyInput
from policies.engine import PolicyEngine, PolicyEvaluationError, PolicyLoadError
from runtime.settings import PROJECT_ROOT

POLICIES = PROJECT_ROOT / "policies"

# What run_tests() should find, read independently of the engine (same rule shape it uses).
REGO_TESTS = sorted(
    f"{path.name}::{name}"
    for path in POLICIES.glob("*_test.rego")
    for name in re.findall(r"^(test_\w+)\s+if", path.read_text(), re.MULTILINE)
)

DECISION_OK = """package firebreak.remediation

import rego.v1

decision := {"verdict": "allow", "reasons": ["test"], "approver_group": null}
"""


@pytest.fixture(scope="module")
def rego_results() -> dict[str, bool]:
    return PolicyEngine.load(POLICIES, include_tests=True).run_tests()


@pytest.fixture(scope="module")
def engine() -> PolicyEngine:
    return PolicyEngine.load(POLICIES)


def policy_dir(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def policy_input(**action: Any) -> dict[str, Any]:
    """The Rego input the policy activity builds: Saturday 10:00 UTC, inside the weekend window."""
    proposed = ProposedAction(
        action="restart_service",
        params={"service": "checkout"},
        target="checkout",
        risk="medium",
        autonomy="approve",
    ).model_copy(update=action)
    request = PolicyInput(
        incident_id="incident-prod-eu-1-payments-checkout",
        severity=Severity.P2,
        services=["checkout"],
        action=proposed,
        now=datetime(2026, 11, 21, 10, 0, tzinfo=UTC),
    )
    return policy_document(request, topology=None)


# --- The shipped policy's Rego tests ---------------------------------------------------------


def test_there_are_rego_tests(rego_results: dict[str, bool]) -> None:
    assert len(REGO_TESTS) >= 50
    assert sorted(rego_results) == REGO_TESTS


@pytest.mark.parametrize("name", REGO_TESTS)
def test_rego(rego_results: dict[str, bool], name: str) -> None:
    assert rego_results[name] is True, f"{name} is not true"


def test_tests_are_not_loaded_by_default(engine: PolicyEngine) -> None:
    assert engine.run_tests() == {}


# --- Deciding --------------------------------------------------------------------------------


def test_shipped_policy_decides(engine: PolicyEngine) -> None:
    decision = engine.decide(policy_input())
    assert decision["verdict"] == "needs_approval"
    assert decision["approver_group"] == "sre"
    assert decision["reasons"] == ["action class restart_service runs only with approval (autonomy: approve)"]


def test_shipped_policy_allows_an_autonomous_low_risk_action(engine: PolicyEngine) -> None:
    decision = engine.decide(policy_input(risk="low", autonomy="autonomous"))
    assert decision["verdict"] == "allow"
    assert decision["approver_group"] is None


def test_data_yaml_deny_list_is_applied(tmp_path: Path) -> None:
    shutil.copy(POLICIES / "remediation.rego", tmp_path)
    (tmp_path / "data.yaml").write_text(
        "firebreak:\n"
        "  deny_list: {actions: [], targets: [checkout]}\n"
        "  approver_groups: {low: sre, medium: sre, high: sre-leads}\n"
    )
    decision = PolicyEngine.load(tmp_path).decide(policy_input(autonomy="autonomous"))
    assert decision["verdict"] == "deny"
    assert decision["reasons"] == ["target checkout is on the deny list"]


def test_a_malformed_decision_is_an_error(tmp_path: Path) -> None:
    engine = PolicyEngine.load(
        policy_dir(
            tmp_path,
            {"p.rego": DECISION_OK.replace('"verdict": "allow"', '"verdict": "maybe"')},
        )
    )
    with pytest.raises(PolicyEvaluationError, match="no valid decision"):
        engine.decide(policy_input())


def test_a_decision_that_is_not_an_object_is_an_error(tmp_path: Path) -> None:
    source = "package firebreak.remediation\n\nimport rego.v1\n\ndecision := true\n"
    engine = PolicyEngine.load(policy_dir(tmp_path, {"p.rego": source}))
    with pytest.raises(PolicyEvaluationError):
        engine.decide(policy_input())


NO_DECISION = {
    "no-decision-rule": "package firebreak.remediation\n\nimport rego.v1\n\nother := 1\n",
    "undefined-for-this-input": (
        "package firebreak.remediation\n\nimport rego.v1\n\n"
        'decision := {"verdict": "allow", "reasons": []} if input.never\n'
    ),
    "other-package": DECISION_OK.replace("firebreak.remediation", "firebreak.other"),
    "conflicting-values": (
        "package firebreak.remediation\n\nimport rego.v1\n\n"
        'decision := {"verdict": "allow", "reasons": []} if input.action\n\n'
        'decision := {"verdict": "deny", "reasons": []} if input.severity\n'
    ),
}


@pytest.mark.parametrize("source", NO_DECISION.values(), ids=NO_DECISION.keys())
def test_no_decision_is_an_error_never_an_allow(tmp_path: Path, source: str) -> None:
    engine = PolicyEngine.load(policy_dir(tmp_path, {"p.rego": source}))
    with pytest.raises(PolicyEvaluationError):
        engine.decide(policy_input())


def test_shipped_policy_without_an_action_is_an_error(engine: PolicyEngine) -> None:
    with pytest.raises(PolicyEvaluationError):
        engine.decide({"incident_id": "i", "severity": "P1"})


def test_a_failing_rego_test_is_reported_false(tmp_path: Path) -> None:
    directory = policy_dir(
        tmp_path,
        {
            "p.rego": DECISION_OK,
            "p_test.rego": "package firebreak.p_test\n\nimport rego.v1\n\n"
            "test_passes if {\n\ttrue\n}\n\ntest_fails if {\n\t1 == 2\n}\n",
        },
    )
    results = PolicyEngine.load(directory, include_tests=True).run_tests()
    assert results == {"p_test.rego::test_fails": False, "p_test.rego::test_passes": True}


# --- Loading ---------------------------------------------------------------------------------

BROKEN = {
    # (source, line the error is on)
    "dangling-operator": (
        "package firebreak.extra\n\nimport rego.v1\n\nx := 1\n\nallow if {\n\tinput.user ==\n}\n",
        8,
    ),
    "unclosed-brace": (
        "package firebreak.extra\n\nimport rego.v1\n\nx := 1\n\nallow if {\n\tinput.a == 1\n",
        7,
    ),
    "no-package": ("import rego.v1\n\nallow := true\n", 1),
}


@pytest.mark.parametrize(("source", "line"), BROKEN.values(), ids=BROKEN.keys())
def test_broken_rego_names_file_and_line(tmp_path: Path, source: str, line: int) -> None:
    directory = policy_dir(tmp_path, {"remediation.rego": DECISION_OK, "extra.rego": source})
    with pytest.raises(PolicyLoadError) as exc:
        PolicyEngine.load(directory)
    assert f"{directory / 'extra.rego'}:{line}:" in str(exc.value)


def test_broken_test_file_only_matters_when_tests_are_loaded(tmp_path: Path) -> None:
    source, line = BROKEN["dangling-operator"]
    directory = policy_dir(tmp_path, {"remediation.rego": DECISION_OK, "extra_test.rego": source})
    PolicyEngine.load(directory)  # the worker does not load tests
    with pytest.raises(PolicyLoadError, match=rf"extra_test\.rego:{line}:"):
        PolicyEngine.load(directory, include_tests=True)


@pytest.mark.parametrize(
    "text",
    [
        "firebreak: {deny_list: [\n",  # invalid YAML
        "- firebreak\n- deny_list\n",  # a list
        "just a sentence\n",  # a scalar
    ],
    ids=["invalid-yaml", "list", "scalar"],
)
def test_bad_data_yaml_names_the_file(tmp_path: Path, text: str) -> None:
    directory = policy_dir(tmp_path, {"remediation.rego": DECISION_OK, "data.yaml": text})
    with pytest.raises(PolicyLoadError, match=r"data\.yaml"):
        PolicyEngine.load(directory)


def test_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(PolicyLoadError, match=r"no \.rego policy files"):
        PolicyEngine.load(tmp_path)


def test_directory_with_only_tests(tmp_path: Path) -> None:
    directory = policy_dir(tmp_path, {"p_test.rego": "package p_test\n"})
    with pytest.raises(PolicyLoadError, match=r"no \.rego policy files"):
        PolicyEngine.load(directory)


def test_missing_data_yaml_is_empty_data(tmp_path: Path) -> None:
    engine = PolicyEngine.load(policy_dir(tmp_path, {"p.rego": DECISION_OK}))
    assert engine.decide(policy_input())["verdict"] == "allow"
