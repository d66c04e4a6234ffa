"""The approval gate (policies/gate.py), the only code that lets a plan run.

Properties over thousands of random plans, policy decisions and signal sequences (every
signal from a random person, for a random plan hash, at a random moment), played through
`refusal` exactly as IncidentWorkflow's signal handler does and then through `gate`:

- a plan with a denied action never runs, not even in check mode;
- a plan that needs approval runs only after a recorded approval, for this plan's hash,
  from someone every approval-needing action's group admits;
- a refused signal is recorded and never counts; shadow mode never applies anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from models.incident import ApprovalRecord, ApprovalSignal
from models.policy import PolicyDecision, PolicyVerdict
from policies.gate import Gate, admitted, answer, gate, refusal, strictest

PEOPLE = ["alice", "bob", "carol", "mallory", "lead@example.com"]
HASHES = ["planhash-a", "planhash-b"]
AT = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def decision(verdict: PolicyVerdict, approvers: list[str], mode: str = "apply") -> PolicyDecision:
    return PolicyDecision(
        verdict=verdict,
        reasons=[f"because {verdict}"],
        approver_group="sre" if verdict == PolicyVerdict.NEEDS_APPROVAL else None,
        approvers=approvers if verdict == PolicyVerdict.NEEDS_APPROVAL else [],
        mode="check" if mode == "check" and verdict == PolicyVerdict.ALLOW else "apply",
        policy="firebreak.remediation",
    )


decisions_st = st.lists(
    st.builds(
        decision,
        st.sampled_from(list(PolicyVerdict)),
        st.lists(st.sampled_from([*PEOPLE, "*"]), max_size=3, unique=True),
        st.sampled_from(["apply", "apply", "check"]),
    ),
    min_size=1,
    max_size=3,
)
signals_st = st.lists(
    st.tuples(
        st.sampled_from(["approved", "rejected"]),
        st.sampled_from(PEOPLE),
        st.sampled_from([*HASHES, None]),
        st.booleans(),  # did it arrive while the request was open (True) or before/after it?
    ),
    max_size=6,
)


@dataclass
class Played:
    outcome: Gate
    approvals: list[ApprovalRecord]


def play(
    decisions: list[PolicyDecision], plan_hash: str, signals: list[tuple[str, str, str | None, bool]]
) -> Played:
    """What IncidentWorkflow does: ask the gate, take signals while waiting, ask again."""
    approvals: list[ApprovalRecord] = []
    first = gate(decisions, plan_hash, approvals)
    waiting = first == Gate.WAIT
    accepted: ApprovalRecord | None = None
    for kind, by, signed_hash, while_open in signals:
        signal = ApprovalSignal(by=by, reason="r", plan_hash=signed_hash)
        record = ApprovalRecord.model_validate(
            {"decision": kind, "by": by, "reason": "r", "at": AT, "plan_hash": signed_hash}
        )
        why = refusal(decisions, plan_hash, waiting and while_open and accepted is None, signal)
        if why is None:
            accepted = record
            approvals.append(record)
        else:
            approvals.append(record.model_copy(update={"decision": "refused", "note": why}))
    return Played(gate(decisions, plan_hash, approvals) if waiting else first, approvals)


@settings(max_examples=4000, deadline=None)
@given(decisions=decisions_st, plan_hash=st.sampled_from(HASHES), signals=signals_st)
def test_nothing_denied_or_unapproved_ever_runs(
    decisions: list[PolicyDecision], plan_hash: str, signals: list[tuple[str, str, str | None, bool]]
) -> None:
    played = play(decisions, plan_hash, signals)
    denied = any(d.verdict == PolicyVerdict.DENY for d in decisions)
    needing = [d for d in decisions if d.verdict == PolicyVerdict.NEEDS_APPROVAL]
    shadow = any(d.mode == "check" for d in decisions)

    if denied:
        assert played.outcome == Gate.DENY
    if played.outcome in (Gate.RUN, Gate.SHADOW):
        assert not denied
    if played.outcome == Gate.SHADOW:
        assert shadow
    if played.outcome == Gate.RUN:
        assert not shadow, "a shadow-mode plan is never applied"
        if needing:
            approvals = [
                a
                for a in played.approvals
                if a.decision == "approved"
                and a.plan_hash == plan_hash
                and all(d.admits(a.by) for d in needing)
            ]
            assert approvals, "ran without a recorded approval from an admitted approver"
    if played.outcome == Gate.REJECT:
        assert any(
            a.decision == "rejected" and a.plan_hash == plan_hash and all(d.admits(a.by) for d in needing)
            for a in played.approvals
        )
    # At most one answer is ever accepted; every other signal is recorded as refused.
    assert sum(a.decision != "refused" for a in played.approvals) <= 1
    assert len(played.approvals) == len(signals)


@settings(max_examples=2000, deadline=None)
@given(decisions=decisions_st, plan_hash=st.sampled_from(HASHES), signals=signals_st)
def test_gate_outcome_is_what_the_decisions_and_answers_say(
    decisions: list[PolicyDecision], plan_hash: str, signals: list[tuple[str, str, str | None, bool]]
) -> None:
    """The converse: the gate is not merely safe by refusing everything."""
    played = play(decisions, plan_hash, signals)
    denied = any(d.verdict == PolicyVerdict.DENY for d in decisions)
    shadow = any(d.mode == "check" for d in decisions)
    needing = [d for d in decisions if d.verdict == PolicyVerdict.NEEDS_APPROVAL]
    if denied:
        expected = Gate.DENY
    elif shadow:
        expected = Gate.SHADOW
    elif not needing:
        expected = Gate.RUN
    else:
        first = next(
            (
                kind
                for kind, by, signed, while_open in signals
                if while_open and signed == plan_hash and all(d.admits(by) for d in needing)
            ),
            None,
        )
        expected = {None: Gate.WAIT, "approved": Gate.RUN, "rejected": Gate.REJECT}[first]
    assert played.outcome == expected


def test_refusals_say_why() -> None:
    needs = [decision(PolicyVerdict.NEEDS_APPROVAL, ["alice"])]
    ok = ApprovalSignal(by="alice", plan_hash="h")
    assert refusal(needs, "h", True, ok) is None
    assert refusal(needs, "h", False, ok) == "no approval is pending"
    assert refusal(needs, "h", True, ApprovalSignal(by="alice", plan_hash="old")) == (
        "plan_hash 'old' does not match the pending plan 'h'"
    )
    assert refusal(needs, "h", True, ApprovalSignal(by="mallory", plan_hash="h")) == (
        "mallory is not in the approver group for this plan (sre)"
    )


def test_every_action_group_must_admit_the_approver() -> None:
    both = [
        decision(PolicyVerdict.NEEDS_APPROVAL, ["alice", "bob"]),
        decision(PolicyVerdict.NEEDS_APPROVAL, ["bob"]),
        decision(PolicyVerdict.ALLOW, []),
    ]
    assert admitted(both, "bob") and not admitted(both, "alice")
    assert not admitted([decision(PolicyVerdict.ALLOW, [])], "bob"), "nothing to approve"


def test_a_refused_record_never_counts_as_an_answer() -> None:
    needs = [decision(PolicyVerdict.NEEDS_APPROVAL, ["alice"])]
    refused = ApprovalRecord(decision="refused", by="alice", reason="", at=AT, plan_hash="h")
    outsider = ApprovalRecord(decision="approved", by="mallory", reason="", at=AT, plan_hash="h")
    stale = ApprovalRecord(decision="approved", by="alice", reason="", at=AT, plan_hash="old")
    assert gate(needs, "h", [refused, outsider, stale]) == Gate.WAIT
    good = ApprovalRecord(decision="approved", by="alice", reason="", at=AT, plan_hash="h")
    assert answer(needs, "h", [refused, good]) == good
    assert gate(needs, "h", [refused, outsider, stale, good]) == Gate.RUN


def test_no_decision_or_no_plan_is_a_deny() -> None:
    assert gate([], "h", []) == Gate.DENY
    assert gate([decision(PolicyVerdict.ALLOW, [])], None, []) == Gate.DENY


def test_strictest_keeps_shadow_mode_unless_denied() -> None:
    shadow = decision(PolicyVerdict.ALLOW, [], mode="check")
    approve = decision(PolicyVerdict.NEEDS_APPROVAL, ["alice"])
    assert strictest([shadow, approve]).mode == "check"
    assert strictest([shadow, decision(PolicyVerdict.DENY, [])]).mode == "apply"
