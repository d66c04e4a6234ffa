"""The approval gate: what an incident may do with its plan, as pure functions.

IncidentWorkflow decides only through these, and the admission activity
(policies/admission.py) asks them again, over sealed decisions and attested answers only,
before anything may run: `refusal` when an approve/reject signal
arrives (a refused signal is recorded and the request stays open), `gate` before anything
runs. They read the per-action policy decisions, the plan's hash and the recorded answers,
nothing else, so tests/unit/test_gate.py can check over thousands of random cases that no
denied action runs and no action that needs approval runs without a recorded approval from
someone its policy admits, for this exact plan.

Deterministic and free of I/O: safe inside the workflow sandbox.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from models.incident import ApprovalRecord, ApprovalSignal
from models.policy import PolicyDecision, PolicyVerdict


class Gate(StrEnum):
    DENY = "deny"  # a policy denied an action (or there is no decision): nothing runs
    SHADOW = "shadow"  # an action is in shadow mode: the plan runs in check mode only
    WAIT = "wait"  # an approval is needed and no admitted answer has come
    REJECT = "reject"  # an admitted approver rejected this plan
    RUN = "run"  # apply the plan


_ORDER = {PolicyVerdict.ALLOW: 0, PolicyVerdict.NEEDS_APPROVAL: 1, PolicyVerdict.DENY: 2}


def strictest(decisions: Sequence[PolicyDecision]) -> PolicyDecision:
    """One decision for a plan of several actions: the strictest verdict, every reason."""
    worst = max(decisions, key=lambda d: _ORDER[d.verdict])
    reasons = list(dict.fromkeys(r for d in decisions for r in d.reasons))
    update: dict[str, object] = {"reasons": reasons}
    if worst.verdict != PolicyVerdict.DENY and any(d.mode == "check" for d in decisions):
        update["mode"] = "check"
    return worst.model_copy(update=update)


def approval_needed(decisions: Sequence[PolicyDecision]) -> list[PolicyDecision]:
    return [d for d in decisions if d.verdict == PolicyVerdict.NEEDS_APPROVAL]


def admitted(decisions: Sequence[PolicyDecision], by: str) -> bool:
    """May `by` answer for the whole plan? Only if every action's approver group admits them."""
    needed = approval_needed(decisions)
    return bool(needed) and all(d.admits(by) for d in needed)


def refusal(
    decisions: Sequence[PolicyDecision], plan_hash: str | None, pending: bool, signal: ApprovalSignal
) -> str | None:
    """Why an approve/reject signal must be refused, or None to accept it."""
    if not pending:
        return "no approval is pending"
    if signal.plan_hash != plan_hash:
        return f"plan_hash {signal.plan_hash!r} does not match the pending plan {plan_hash!r}"
    if not admitted(decisions, signal.by):
        groups = ", ".join(sorted({d.approver_group or "?" for d in approval_needed(decisions)}))
        return f"{signal.by} is not in the approver group for this plan ({groups})"
    return None


def answer(
    decisions: Sequence[PolicyDecision], plan_hash: str | None, approvals: Sequence[ApprovalRecord]
) -> ApprovalRecord | None:
    """The first recorded approve/reject for this plan from someone the policy admits."""
    for record in approvals:
        if (
            record.decision in ("approved", "rejected")
            and record.plan_hash == plan_hash
            and admitted(decisions, record.by)
        ):
            return record
    return None


def gate(
    decisions: Sequence[PolicyDecision], plan_hash: str | None, approvals: Sequence[ApprovalRecord]
) -> Gate:
    """What the plan may do now."""
    if not decisions or plan_hash is None:
        return Gate.DENY
    if any(d.verdict == PolicyVerdict.DENY for d in decisions):
        return Gate.DENY
    if any(d.mode == "check" for d in decisions):
        return Gate.SHADOW
    if not approval_needed(decisions):
        return Gate.RUN
    record = answer(decisions, plan_hash, approvals)
    if record is None:
        return Gate.WAIT
    return Gate.RUN if record.decision == "approved" else Gate.REJECT
