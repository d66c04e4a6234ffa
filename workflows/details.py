"""The Temporal UI's "Current Details" of an incident: Markdown, from the state alone.

Deterministic and free of I/O (called from workflow code on every change). The pending
approval section is the approval request: exactly what will run (actions, params, target),
who it hurts (blast radius), what Ansible's check mode says it would change, who may answer,
and the signal to send with the plan's hash.
"""

from __future__ import annotations

import json

from models.constants import SIGNAL_APPROVE, SIGNAL_REJECT
from models.incident import IncidentState, RemediationResult
from models.policy import PolicyDecision

MAX_DIFF_LINES = 30


def render_details(state: IncidentState, awaiting_approval: bool) -> str:
    lines = _header(state) + _analysis(state) + _plan(state)
    if awaiting_approval:
        lines += _approval_request(state)
    lines += _results(state)
    if state.outcome and state.decisions:
        last = state.decisions[-1]
        lines += ["", f"**Outcome:** {last.reasons[0] if last.reasons else state.outcome.value}"]
    return "\n".join(lines)


def _header(state: IncidentState) -> list[str]:
    firing = state.firing
    lines = [
        f"## Incident `{state.key}` — {state.phase.value}"
        + (f" ({state.outcome.value})" if state.outcome else "")
        + (f" · run {state.runs}" if state.runs > 1 else ""),
        "",
        f"**Alerts:** {len(firing)} firing, {len(state.alerts) - len(firing)} resolved"
        f" ({state.duplicate_alerts} duplicates ignored)",
    ]
    for alert in sorted(firing, key=lambda a: (a.severity.rank, a.name))[:10]:
        lines.append(f"- `{alert.severity}` **{alert.name}** on `{alert.service}`: {alert.summary[:200]}")
    return lines


def _analysis(state: IncidentState) -> list[str]:
    lines: list[str] = []
    if state.triage:
        t = state.triage
        lines += ["", f"**Triage** ({t.reasoner}, confidence {t.confidence:.2f}): {t.summary[:300]}"]
    if state.diagnosis and state.diagnosis.hypotheses:
        d = state.diagnosis
        lines += ["", f"**Diagnosis** ({d.reasoner}, confidence {d.confidence:.2f}):"]
        lines += [f"- `{h.service}` {h.cause[:200]} ({h.confidence:.2f})" for h in d.hypotheses[:3]]
    if state.proposal and state.proposal.actions:
        p = state.proposal
        lines += ["", f"**Why** ({p.reasoner}, confidence {p.confidence:.2f}): {p.rationale[:300]}"]
        if p.verification:
            lines.append(f"**Verify:** {p.verification[:200]}")
    if state.review:
        r = state.review
        lines += ["", f"**Review** ({r.reasoner}): {r.verdict} — {'; '.join(r.reasons)[:300]}"]
    if state.llm_usage.calls or state.llm_unavailable:
        u = state.llm_usage
        lines += ["", f"**LLM:** {u.calls} call(s), {u.total_tokens} tokens, ${u.cost_usd:.4f}"]
        if state.llm_unavailable:
            lines.append(f"**LLM unavailable:** {state.llm_unavailable}")
    return lines


def _plan(state: IncidentState) -> list[str]:
    lines: list[str] = []
    if state.plan:
        lines += ["", f"**Plan** `{state.plan_hash}`:"]
        for index, action in enumerate(state.plan.actions):
            params = json.dumps(action.params, sort_keys=True)
            lines.append(
                f"- `{action.action}` on `{action.target}` params `{params}`"
                f" (risk {action.risk}, timeout {action.timeout_seconds}s)"
            )
            if index < len(state.policy_decisions):
                lines += [f"  - {line}" for line in _decision_lines(state.policy_decisions[index])]
    if state.policy:
        mode = " (shadow: check mode only)" if state.policy.mode == "check" else ""
        lines += ["", f"**Policy:** {state.policy.verdict.value}{mode} — {'; '.join(state.policy.reasons)}"]
    return lines


def _decision_lines(decision: PolicyDecision) -> list[str]:
    lines = []
    autonomy = decision.autonomy
    if autonomy is not None:
        moved = f" ({autonomy.change} from {autonomy.configured})" if autonomy.change else ""
        lines.append(f"autonomy: {autonomy.effective}{moved}")
        lines += autonomy.progress[:2]
    blast = decision.blast_radius
    if blast is not None:
        if blast.known:
            who = ", ".join(blast.services[:10]) + (" …" if blast.size > 10 else "")
            lines.append(f"blast radius: {blast.size} dependent service(s)" + (f": {who}" if who else ""))
        else:
            lines.append("blast radius: unknown (no topology entry)")
    return lines


def _approval_request(state: IncidentState) -> list[str]:
    payload = json.dumps(
        {"by": "YOUR NAME", "reason": "WHY", "plan_hash": state.plan_hash, "code": "YOUR APPROVAL CODE"}
    )
    group = state.policy.approver_group if state.policy else None
    approvers = sorted({a for d in state.policy_decisions for a in d.approvers})
    who = (
        "anyone who signs: PERMISSIVE roster, for the dev stack and tests only "
        "(typed names are not authenticated)"
        if "*" in approvers
        else ", ".join(approvers) or "nobody"
    )
    lines = [
        "",
        "### Pending: approval" + (f" (group `{group}`)" if group else ""),
        f"**May approve:** {who}",
    ]
    lines += ["", "**Check mode (`--check --diff`): what would change**"]
    for preview in state.previews:
        lines += _change_block(preview)
    if not state.previews:
        lines.append("The check-mode run is still going; what it finds appears here, before anything runs.")
    lines += [
        "",
        f"More Actions → Send a Signal → `{SIGNAL_APPROVE}` (or `{SIGNAL_REJECT}`) with data:",
        "",
        f"`{payload}`",
        "",
        f"The code: `firebreak approval-code {state.key}` (your personal approver token in "
        "`FIREBREAK_APPROVER_TOKEN`), which prints this data filled in. A worker running with "
        "`FIREBREAK_APPROVAL_AUTH=roster` (the dev stack) takes a typed name without a code.",
        "",
        f"CLI: `firebreak approve {state.key} --by NAME --reason TEXT` (add `--reject` to reject)",
    ]
    refused = [a for a in state.approvals if a.decision == "refused"]
    if refused:
        lines += ["", "**Refused signals:**"] + [f"- {a.by}: {a.note}" for a in refused[-5:]]
    return lines


def _change_block(result: RemediationResult) -> list[str]:
    lines = [f"- {result.summary}"]
    for change in result.changes:
        diff = change.diff.splitlines()[:MAX_DIFF_LINES]
        lines += [f"  - {change.task}:", "", "```diff", *diff, "```", ""]
    return lines


def _results(state: IncidentState) -> list[str]:
    lines: list[str] = []
    if state.remediations:
        lines += ["", "**Actions:**"]
        for result in state.remediations:
            lines += _change_block(result) if result.check_mode else [f"- {result.summary}"]
    if state.rollbacks:
        lines += ["", "**Rollbacks:**"] + [f"- {r.summary}" for r in state.rollbacks]
    autonomy = [d for d in state.decisions if d.kind == "autonomy"]
    if autonomy:
        lines += ["", "**Autonomy changes:**"] + [f"- {d.summary}" for d in autonomy]
    return lines
