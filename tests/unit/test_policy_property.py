"""Property: over random incidents, actions, times, track records and approvers, the shipped
Rego policy (evaluated by the real engine, with the activity's input) and the workflow's
gate never let a denied action run, nor an approval-needing one run without a recorded
approval from an admitted approver.

Expectations are computed here from data.yaml directly, not from the policy's output, so
a policy that drifts from its data fails.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from activities.policy import blast_radius, policy_document, to_decision
from models.agents import ProposedAction
from models.alert import Severity
from models.memory import ActionTrackRecord
from models.policy import PolicyDecision, PolicyInput, PolicyVerdict
from policies.data import minute_of_day
from policies.engine import PolicyEngine
from policies.gate import Gate
from rca.topology import Topology
from runtime.settings import PROJECT_ROOT
from tests.unit.test_gate import HASHES, PEOPLE, play

TOPOLOGY = Topology.from_data(
    {
        "services": {
            "edge": {"depends_on": ["web", "api"]},
            "web": {"depends_on": ["cart", "catalog"]},
            "api": {"depends_on": ["cart", "checkout"]},
            "checkout": {"depends_on": ["payments", "cart"]},
            "cart": {"depends_on": ["pricing"]},
            "catalog": {"depends_on": ["pricing"]},
            "pricing": {"depends_on": ["db"]},
            "payments": {"depends_on": ["db"]},
            "db": {"kind": "database"},
        }
    }
)
TARGETS = [*sorted(TOPOLOGY.services), "not-in-topology"]
ACTIONS = ["restart_service", "scale_service", "clear_disk_space", "failover_database"]
LEVELS = ["notify", "recommend", "approve", "autonomous"]
MONDAY = datetime(2026, 11, 16, tzinfo=UTC)
TRACK_FIELDS = ("successes", "failures", "approvals", "rejections", "shadow_runs", "useful", "wrong")


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> tuple[PolicyEngine, dict[str, Any]]:
    """The shipped policy and data, plus a deny list and real approver rosters."""
    directory = tmp_path_factory.mktemp("policies")
    shutil.copy(PROJECT_ROOT / "policies" / "remediation.rego", directory)
    data = yaml.safe_load((PROJECT_ROOT / "policies" / "data.yaml").read_text())
    data["firebreak"]["deny_list"] = {"actions": ["failover_database"], "targets": ["db"]}
    data["firebreak"]["approvers"] = {"sre": ["alice", "bob"], "sre-leads": ["lead@example.com"]}
    (directory / "data.yaml").write_text(yaml.safe_dump(data))
    return PolicyEngine.load(directory), data["firebreak"]


records_st = st.one_of(
    st.none(),
    st.builds(
        lambda counts: ActionTrackRecord(action="restart_service", **counts),
        st.fixed_dictionaries(
            {
                field: st.integers(0, 8)
                for field in (
                    "successes",
                    "failures",
                    "approvals",
                    "rejections",
                    "shadow_runs",
                    "useful",
                    "wrong",
                )
            }
        ),
    ),
)


@st.composite
def requests(draw: st.DrawFn) -> PolicyInput:
    target = draw(st.sampled_from(TARGETS))
    record = draw(records_st)
    return PolicyInput(
        incident_id="incident-prop",
        severity=draw(st.sampled_from(list(Severity))),
        services=[target],
        action=ProposedAction(
            action=draw(st.sampled_from(ACTIONS)),
            params={"service": target},
            target=target,
            risk=draw(st.sampled_from(["low", "medium", "high"])),
            autonomy=draw(st.sampled_from(LEVELS)),
        ),
        now=MONDAY + timedelta(minutes=draw(st.integers(0, 7 * 24 * 60 - 1))),
        track_record=record,
    )


def in_window(data: dict[str, Any], now: datetime) -> bool:
    minute = now.hour * 60 + now.minute
    return any(
        now.strftime("%A") in w["days"] and minute_of_day(w["start"]) <= minute < minute_of_day(w["end"])
        for w in data["maintenance"]["windows"]
    )


def effective_level(data: dict[str, Any], configured: str, record: dict[str, int] | None) -> str:
    rank = LEVELS.index(configured)
    rec = record or {}
    failures, successes = rec.get("failures", 0), rec.get("successes", 0)
    demote = data["autonomy"]["demote"]
    if (
        failures >= demote["min_failures"]
        and failures / (failures + successes) > demote["max_failure_rate"]
        and rank > LEVELS.index(demote["floor"])
    ):
        return LEVELS[rank - 1]
    rule = data["autonomy"]["promote"].get(configured)
    if rule is not None and rank < 3:
        ok = all(rec.get(f, 0) >= n for f, n in rule.get("min", {}).items()) and all(
            rec.get(f, 0) <= n for f, n in rule.get("max", {}).items()
        )
        if ok:
            return LEVELS[rank + 1]
    return configured


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    request=requests(),
    signals=st.lists(
        st.tuples(
            st.sampled_from(["approved", "rejected"]),
            st.sampled_from([*PEOPLE, "bob"]),
            st.sampled_from([*HASHES, None]),
            st.booleans(),
        ),
        max_size=4,
    ),
)
def test_policy_and_gate_never_run_what_they_must_not(
    policy: tuple[PolicyEngine, dict[str, Any]],
    request: PolicyInput,
    signals: list[tuple[str, str, str | None, bool]],
) -> None:
    engine, data = policy
    action = request.action
    blast = blast_radius(TOPOLOGY, action.target)
    decision: PolicyDecision = to_decision(engine.decide(policy_document(request, TOPOLOGY)), request, blast)
    played = play([decision], HASHES[0], signals)

    record = request.track_record.model_dump() if request.track_record is not None else None
    effective = effective_level(data, action.autonomy, record)
    assert decision.autonomy is not None and decision.autonomy.effective == effective
    outside = (
        data["maintenance"]["outside_window"].get(action.action, {}).get(request.severity.value, "allow")
    )
    windowed = not in_window(data, request.now)
    limits = data["blast_radius"]["limits"].get(action.risk)

    must_deny = (
        action.action in data["deny_list"]["actions"]
        or action.target in data["deny_list"]["targets"]
        or effective == "notify"
        or (windowed and outside == "deny")  # a deny holds in every mode, shadow included
        or (blast.known and limits is not None and blast.size > limits["deny_above"])
    )
    if must_deny:
        assert decision.verdict == PolicyVerdict.DENY, decision.reasons
        assert played.outcome == Gate.DENY
        return
    if effective == "recommend":
        assert played.outcome == Gate.SHADOW and decision.mode == "check"
        return
    must_ask = (
        effective == "approve"
        or action.risk == "high"
        or (request.severity == Severity.P1 and effective == "autonomous")
        or (windowed and outside == "needs_approval")
        or (blast.known and limits is not None and blast.size > limits["approve_above"])
    )
    if not must_ask:
        assert decision.verdict == PolicyVerdict.ALLOW and played.outcome == Gate.RUN
        return
    assert decision.verdict == PolicyVerdict.NEEDS_APPROVAL, decision.reasons
    group = data["approver_groups"].get(action.risk, "sre")
    assert decision.approver_group == group and decision.approvers == data["approvers"][group]
    if played.outcome == Gate.RUN:
        assert any(
            a.decision == "approved" and a.plan_hash == HASHES[0] and a.by in data["approvers"][group]
            for a in played.approvals
        ), "ran without a recorded approval from the approver group"
    else:
        assert played.outcome in (Gate.WAIT, Gate.REJECT)


def test_the_property_reaches_every_verdict(policy: tuple[PolicyEngine, dict[str, Any]]) -> None:
    """The random inputs above are not all denied: each verdict and shadow mode occur."""
    engine, _ = policy
    seen: set[str] = set()
    saturday = MONDAY + timedelta(days=5, hours=12)
    for level in LEVELS:
        for risk in ("low", "high"):
            request = PolicyInput(
                incident_id="i",
                severity=Severity.P3,
                services=["edge"],
                action=ProposedAction(action="scale_service", target="edge", risk=risk, autonomy=level),
                now=saturday,
            )
            raw = engine.decide(policy_document(request, TOPOLOGY))
            seen.add(f"{raw['verdict']}/{raw['mode']}")
    assert seen == {"deny/apply", "allow/check", "needs_approval/apply", "allow/apply"}


def test_the_weekend_window_is_open_every_minute_of_the_weekend(
    policy: tuple[PolicyEngine, dict[str, Any]],
) -> None:
    """The counterexample the property above found, pinned: the shipped windows (a nightly one
    and a whole-day weekend one) left the weekend shut before ~01:40, so a P4 restart there was
    denied. Every quarter hour of Saturday and Sunday, the window is open."""
    engine, data = policy
    assert data["maintenance"]["outside_window"]["restart_service"]["P4"] == "deny"
    shut = []
    for day in (datetime(2026, 11, 21, tzinfo=UTC), datetime(2026, 11, 22, tzinfo=UTC)):
        for minute in range(0, 24 * 60, 15):
            request = PolicyInput(
                incident_id="incident-weekend",
                severity=Severity.P4,
                services=["api"],
                action=ProposedAction(
                    action="restart_service", params={"service": "api"}, target="api", autonomy="approve"
                ),
                now=day + timedelta(minutes=minute),
            )
            decision = engine.decide(policy_document(request, TOPOLOGY))
            if decision["verdict"] == "deny":
                shut.append(f"{request.now:%A %H:%M}: {decision['reasons']}")
    assert shut == []
