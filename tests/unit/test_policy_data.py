"""Policy data is checked at load; the activity's input (time, blast radius) and its decision."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from activities.policy import blast_radius, policy_document, to_decision
from models.agents import ProposedAction
from models.alert import Severity
from models.policy import PolicyDecision, PolicyInput, PolicyVerdict
from policies.engine import PolicyEngine, PolicyEvaluationError, PolicyLoadError
from rca.topology import Topology
from runtime.settings import PROJECT_ROOT

POLICIES = PROJECT_ROOT / "policies"
SHIPPED = yaml.safe_load((POLICIES / "data.yaml").read_text())

TOPOLOGY = Topology.from_data(
    {
        "services": {
            "edge": {"depends_on": ["checkout", "catalog"]},
            "checkout": {"depends_on": ["payments"]},
            "catalog": {"depends_on": ["payments"]},
            "payments": {"depends_on": ["ledger-db"]},
            "ledger-db": {"kind": "database"},
        }
    }
)


def request(target: str = "checkout", now: datetime | None = None, **action: Any) -> PolicyInput:
    return PolicyInput(
        incident_id="incident-x",
        severity=Severity.P3,
        services=[target],
        action=ProposedAction(
            action="restart_service", params={"service": target}, target=target, autonomy="approve"
        ).model_copy(update=action),
        now=now or datetime(2026, 11, 18, 12, 0, tzinfo=UTC),  # a Wednesday
    )


def with_data(tmp_path: Path, patch: dict[str, Any]) -> Path:
    """A copy of the shipped policies whose data.firebreak has `patch` merged in."""
    shutil.copy(POLICIES / "remediation.rego", tmp_path)
    data = {"firebreak": {**SHIPPED["firebreak"], **patch}}
    (tmp_path / "data.yaml").write_text(yaml.safe_dump(data))
    return tmp_path


# --- data.yaml is checked at load ------------------------------------------------------------

BAD_DATA = {
    "window-time": (
        {"maintenance": {"windows": [{"name": "n", "days": ["Monday"], "start": "2am", "end": "05:00"}]}},
        "firebreak.maintenance.windows.0.start",
    ),
    "window-backwards": (
        {"maintenance": {"windows": [{"name": "n", "days": ["Monday"], "start": "23:00", "end": "01:00"}]}},
        "crosses midnight",
    ),
    "weekday": (
        {"maintenance": {"windows": [{"name": "n", "days": ["Mon"], "start": "01:00", "end": "02:00"}]}},
        "firebreak.maintenance.windows.0.days.0",
    ),
    "misspelt-key": (
        {"maintenance": {"windows": [{"name": "n", "days": ["Monday"], "strat": "01:00", "end": "02:00"}]}},
        "strat",
    ),
    "requirement": (
        {"maintenance": {"outside_window": {"restart_service": {"P1": "maybe"}}}},
        "firebreak.maintenance.outside_window.restart_service.P1",
    ),
    "blast-limits": (
        {"blast_radius": {"limits": {"medium": {"approve_above": 5, "deny_above": 2}}}},
        "deny_above must be at least approve_above",
    ),
    "promotion-field": (
        {"autonomy": {"promote": {"approve": {"min": {"sucesses": 5}}}}},
        "firebreak.autonomy.promote.approve.min.sucesses",
    ),
    "demotion-without-failures": (
        {"autonomy": {"demote": {"min_failures": 0, "max_failure_rate": 0.2}}},
        "firebreak.autonomy.demote.min_failures",
    ),
    "group-without-members": (
        {"approvers": {"sre": ["*"]}},
        "sre-leads have no members",
    ),
}


@pytest.mark.parametrize(("patch", "names"), BAD_DATA.values(), ids=BAD_DATA.keys())
def test_bad_policy_data_names_the_file_and_key(tmp_path: Path, patch: dict[str, Any], names: str) -> None:
    directory = with_data(tmp_path, patch)
    with pytest.raises(PolicyLoadError) as exc:
        PolicyEngine.load(directory)
    assert str(directory / "data.yaml") in str(exc.value)
    assert names in str(exc.value)


def test_sections_are_optional(tmp_path: Path) -> None:
    shutil.copy(POLICIES / "remediation.rego", tmp_path)
    (tmp_path / "data.yaml").write_text("firebreak:\n  deny_list: {actions: [], targets: []}\n")
    decision = PolicyEngine.load(tmp_path).decide(policy_document(request(), None))
    # No approvers section: nobody may approve, so an approval-only action is denied now.
    assert decision["verdict"] == "deny"
    assert decision["reasons"] == ["needs approval from group sre, which has no members"]


# --- What the activity adds to the input -----------------------------------------------------


def test_time_is_computed_in_utc() -> None:
    # 01:30 on Thursday in UTC+5 is 20:30 on Wednesday in UTC.
    local = datetime(2026, 11, 19, 1, 30, tzinfo=timezone(timedelta(hours=5)))
    document = policy_document(request(now=local), None)
    assert document["time"] == {"weekday": "Wednesday", "clock": "20:30"}
    assert document["now"] == "2026-11-18T20:30:00+00:00"


def test_blast_radius_is_every_transitive_dependent() -> None:
    assert blast_radius(TOPOLOGY, "payments").model_dump() == {
        "known": True,
        "size": 3,
        "services": ["catalog", "checkout", "edge"],
    }
    assert blast_radius(TOPOLOGY, "edge").size == 0
    assert blast_radius(TOPOLOGY, "unknown-svc").known is False
    assert blast_radius(None, "payments").known is False


def test_blast_radius_reaches_the_policy(tmp_path: Path) -> None:
    directory = with_data(
        tmp_path,
        {
            "blast_radius": {"limits": {"medium": {"approve_above": 1, "deny_above": 2}}, "unknown": "allow"},
            "maintenance": {"windows": [], "outside_window": {}},
        },
    )
    engine = PolicyEngine.load(directory)
    auto: dict[str, Any] = {"autonomy": "autonomous"}
    assert engine.decide(policy_document(request("edge", **auto), TOPOLOGY))["verdict"] == "allow"
    checkout = engine.decide(policy_document(request("checkout", **auto), TOPOLOGY))
    assert checkout["verdict"] == "allow"  # one dependent (edge): within 1
    ledger = engine.decide(policy_document(request("ledger-db", **auto), TOPOLOGY))
    assert ledger["verdict"] == "deny"
    assert ledger["reasons"] == ["blast radius 4 exceeds 2 for a medium-risk action (ledger-db dependents)"]
    payments = engine.decide(policy_document(request("payments", **auto), TOPOLOGY))
    assert payments["verdict"] == "deny"


def test_one_engine_decides_many_inputs_independently() -> None:
    """The engine reuses a compiled interpreter: an input must never leak into the next."""
    engine = PolicyEngine.load(POLICIES)
    saturday = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
    for _ in range(3):
        high = engine.decide(policy_document(request(risk="high", now=saturday), None))
        assert high["approver_group"] == "sre-leads"
        low = engine.decide(policy_document(request(risk="low", now=saturday), None))
        assert low["approver_group"] == "sre"
        denied = engine.decide(policy_document(request(autonomy="notify", now=saturday), None))
        assert denied["verdict"] == "deny"


# --- The decision the workflow gets ----------------------------------------------------------


def test_decision_carries_approvers_mode_autonomy_and_blast_radius() -> None:
    engine = PolicyEngine.load(POLICIES)
    req = request("payments", risk="high")
    document = policy_document(req, TOPOLOGY)
    decision = to_decision(engine.decide(document), req, blast_radius(TOPOLOGY, "payments"))
    assert decision.verdict == PolicyVerdict.NEEDS_APPROVAL
    assert decision.approver_group == "sre-leads" and decision.approvers == ["lead@example.com"]
    assert decision.mode == "apply"
    assert decision.autonomy is not None and decision.autonomy.effective == "approve"
    assert decision.action == "restart_service" and decision.target == "payments"
    assert decision.blast_radius is not None and decision.blast_radius.size == 3
    assert decision.admits("Lead@Example.com") and not decision.admits("mallory")


def test_a_malformed_decision_is_refused() -> None:
    raw = {"verdict": "allow", "reasons": [], "autonomy": {"configured": "approve"}}
    with pytest.raises(PolicyEvaluationError, match="malformed"):
        to_decision(raw, request(), blast_radius(None, "x"))


@pytest.mark.parametrize(
    ("approvers", "by", "admitted"),
    [
        (["*"], "anyone", True),
        (["alice@example.com"], "ALICE@example.com ", True),
        (["alice@example.com"], "alice", False),
        ([], "alice", False),
    ],
)
def test_admits(approvers: list[str], by: str, admitted: bool) -> None:
    decision = PolicyDecision(
        verdict=PolicyVerdict.NEEDS_APPROVAL, reasons=[], policy="p", approvers=approvers
    )
    assert decision.admits(by) is admitted
