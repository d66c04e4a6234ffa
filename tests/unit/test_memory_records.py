"""Incident records built from workflow state, what they count for, and how actions are ranked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from memory.episodes import action_lists
from memory.suggestions import rank_actions
from models.agents import ProposedAction, TriageResult
from models.alert import Alert, AlertStatus, Severity
from models.incident import ApprovalRecord, IncidentState, Outcome, Plan, RemediationResult
from models.memory import (
    ActionOutcome,
    ApprovalNote,
    FeedbackNote,
    IncidentRecord,
    Passage,
    RetrievedContext,
    RetrieveInput,
    SimilarIncident,
)
from workflows.records import incident_record

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def alert(name: str, service: str, summary: str, status: AlertStatus = AlertStatus.FIRING) -> Alert:
    return Alert(
        fingerprint=f"{name}-{service}",
        status=status,
        name=name,
        service=service,
        severity=Severity.P2,
        labels={"alertname": name, "service": service},
        annotations={"summary": summary, "description": f"{summary} (details)"},
        starts_at=T0,
        source="alertmanager",
    )


def closed_state(outcome: Outcome, approval: str | None, ran: str | None) -> IncidentState:
    action = ProposedAction(action="restart_service", params={"service": "checkout"}, target="checkout")
    plan = Plan(actions=[action])
    state = IncidentState(
        incident_id="incident-prod-checkout",
        key="prod-checkout",
        opened_at=T0,
        closed_at=T0 + timedelta(minutes=7),
        outcome=outcome,
        severity=Severity.P2,
        alerts={"a": alert("HighErrorRate", "checkout", "5xx ratio 12%", AlertStatus.RESOLVED)},
        triage=TriageResult(
            severity=Severity.P2,
            category="errors",
            services=["checkout"],
            summary="HighErrorRate on checkout",
            confidence=0.75,
            reasoner="rules",
        ),
        plan=plan,
        plan_hash=plan.digest(),
    )
    if approval:
        state.approvals.append(
            ApprovalRecord(
                decision="approved" if approval == "approved" else "rejected",
                by="dana",
                reason="pool leak, restart releases it",
                at=T0 + timedelta(minutes=2),
                plan_hash=plan.digest(),
            )
        )
        state.approvals.append(
            ApprovalRecord(decision="refused", by="eve", reason="", at=T0, note="approved: stale plan")
        )
    if ran:
        state.remediations.append(
            RemediationResult(
                action="restart_service",
                target="checkout",
                status="successful" if ran == "ok" else "failed",
                changed=True,
                check_mode=False,
                idempotency_key="k",
                duration_seconds=3.0,
                summary="restarted 3 instances",
            )
        )
    return state


def test_record_of_a_remediated_incident_says_who_chose_what_and_how_long_it_took() -> None:
    record = incident_record(
        closed_state(Outcome.REMEDIATED, "approved", "ok"),
        run_id="run-1",
        root_cause="connection leak in checkout",
        cited=["runbook:high-error-rate#2", "runbook:high-error-rate#2", "incident-x@r"],
    )
    assert record.id == "incident-prod-checkout@run-1"
    assert record.alert_names == ["HighErrorRate"]
    assert record.symptoms == ["HighErrorRate on checkout: 5xx ratio 12%"]
    assert record.category == "errors" and record.services == ["checkout"]
    assert record.time_to_resolve_seconds == 420.0
    assert record.cited == ["runbook:high-error-rate#2", "incident-x@r"]
    [done] = record.actions
    assert (done.action, done.status, done.verified, done.approved_by) == (
        "restart_service",
        "successful",
        True,
        "dana",
    )
    assert done.params == {"service": "checkout"}
    # A refused signal is not a decision.
    assert [(a.decision, a.by, a.actions) for a in record.approvals] == [
        ("approved", "dana", ["restart_service"])
    ]
    lists = action_lists(record)
    assert lists["act_success"] == ["restart_service"] and lists["act_approved"] == ["restart_service"]
    assert lists["act_failure"] == lists["act_rejected"] == []


def test_record_of_a_rejected_plan_and_of_a_failed_action() -> None:
    rejected = incident_record(closed_state(Outcome.REJECTED, "rejected", None), run_id="r2")
    assert [(a.action, a.status) for a in rejected.actions] == [("restart_service", "rejected")]
    assert rejected.approvals[0].reason == "pool leak, restart releases it"
    assert rejected.time_to_resolve_seconds is None
    assert action_lists(rejected)["act_rejected"] == ["restart_service"]

    failed = incident_record(closed_state(Outcome.ESCALATED, "approved", "failed"), run_id="r3")
    assert failed.actions[0].failed and not failed.actions[0].succeeded
    assert action_lists(failed)["act_failure"] == ["restart_service"]

    # Ran fine, but the alerts stayed: that is a failure of the action too.
    stayed = incident_record(closed_state(Outcome.ESCALATED, None, "ok"), run_id="r4")
    assert stayed.actions[0].verified is False
    assert action_lists(stayed)["act_failure"] == ["restart_service"]


def test_an_open_incident_has_no_record() -> None:
    state = closed_state(Outcome.REMEDIATED, None, None)
    state.outcome = None
    with pytest.raises(ValueError, match="not closed"):
        incident_record(state, run_id="r")


def test_retrieve_input_from_alerts_names_alerts_services_and_words() -> None:
    request = RetrieveInput.from_alerts(
        "incident-x",
        [
            alert("KubePodCrashLooping", "payments-api", "pod restarting"),
            alert("ServiceDown", "payments-api", "down"),
        ],
        summary="payments-api is down",
        category="availability",
    )
    assert request.alert_names == ["KubePodCrashLooping", "ServiceDown"]
    assert request.services == ["payments-api"]
    assert request.text.splitlines()[0] == "payments-api is down"
    assert "KubePodCrashLooping on payments-api: pod restarting pod restarting (details)" in request.text


def passage(doc: str, actions: list[str], kind: str = "runbook") -> Passage:
    return Passage(
        id=f"{doc}#0",
        doc_id=doc,
        kind="runbook" if kind == "runbook" else "postmortem",
        title=doc,
        section="Remediation",
        path=f"knowledge/{doc}.md",
        text="...",
        actions=actions,
        score=1.0,
    )


def record(run: str, actions: list[ActionOutcome], **extra: object) -> IncidentRecord:
    return IncidentRecord.model_validate(
        {
            "incident_id": "incident-prod-checkout",
            "run_id": run,
            "opened_at": T0,
            "closed_at": T0 + timedelta(minutes=5),
            "outcome": "remediated",
            "actions": [a.model_dump() for a in actions],
            **extra,
        }
    )


def similar(rec: IncidentRecord, matched: list[str]) -> SimilarIncident:
    return SimilarIncident(id=rec.id, record=rec, score=1.0, matched_on=matched)


def test_runbooks_alone_rank_by_document_rank() -> None:
    ranked = rank_actions(
        [passage("runbook:a", ["restart_service"]), passage("runbook:b", ["scale_service"])], []
    )
    assert [(s.action, s.score) for s in ranked] == [("restart_service", 0.5), ("scale_service", 0.25)]
    assert ranked[0].cited == ["runbook:a#0"]


def test_a_past_success_chosen_by_a_human_outranks_the_runbook_and_a_rejection_sinks_an_action() -> None:
    past = record(
        "a",
        [
            ActionOutcome(action="restart_service", status="rejected"),
            ActionOutcome(action="scale_service", status="successful", verified=True, approved_by="dana"),
        ],
        approvals=[
            ApprovalNote(decision="rejected", by="dana", reason="load doubled; restart adds nothing", at=T0),
        ],
    )
    ranked = rank_actions(
        [passage("runbook:a", ["restart_service"])], [similar(past, ["alert:HighErrorRate"])]
    )
    assert ranked[0].action == "scale_service"
    assert ranked[0].score == pytest.approx(1.25)
    assert ranked[0].cited == ["incident-prod-checkout@a"]
    restart = next(s for s in ranked if s.action == "restart_service")
    assert restart.score == pytest.approx(0.5 - 0.8)
    assert restart.cited == ["runbook:a#0", "incident-prod-checkout@a"]


def test_weaker_matches_and_later_ranks_weigh_less_and_feedback_counts() -> None:
    good = record("g", [ActionOutcome(action="scale_service", status="successful", verified=True)])
    wrong = record(
        "w",
        [ActionOutcome(action="restart_service", status="successful", verified=True)],
        feedback=[FeedbackNote(useful=False, by="sam", note="it was a bad deploy", at=T0)],
    )
    ranked = {s.action: s for s in rank_actions([], [similar(good, ["text"]), similar(wrong, ["alert:X"])])}
    assert ranked["scale_service"].score == pytest.approx(0.3 * 1.0)  # text-only match, rank 0
    assert ranked["restart_service"].score == pytest.approx(
        1.0 / 2 * (1.0 - 1.0)
    )  # rank 1, success judged wrong
    assert any("judged wrong by sam: it was a bad deploy" in r for r in ranked["restart_service"].reasons)
    shadow = record("s", [ActionOutcome(action="scale_service", status="successful", check_mode=True)])
    assert rank_actions([], [similar(shadow, ["alert:X"])]) == []


def test_rendered_context_names_every_citable_id_and_says_when_there_is_none() -> None:
    empty = RetrievedContext(query="q", mode="sparse")
    assert empty.empty and empty.citations == []
    assert "cites nothing" in empty.render()
    past = record(
        "a",
        [ActionOutcome(action="scale_service", status="successful", verified=True, approved_by="dana")],
        summary="checkout 503s under load",
        time_to_resolve_seconds=1500.0,
    )
    passages = [passage("runbook:saturation", ["scale_service"])]
    incidents = [similar(past, ["alert:HighErrorRate"])]
    context = RetrievedContext(
        query="q",
        mode="sparse",
        passages=passages,
        incidents=incidents,
        suggestions=rank_actions(passages, incidents),
    )
    text = context.render()
    assert context.citations == ["runbook:saturation#0", "incident-prod-checkout@a"]
    assert "[runbook:saturation#0] runbook:saturation — Remediation (actions: scale_service)" in text
    assert "[incident-prod-checkout@a] checkout 503s under load — outcome remediated in 25 min" in text
    assert "(matched on alert:HighErrorRate)" in text
    assert "scale_service on ?: successful, verified, chosen by dana" in text
    assert len(context.render(max_chars=100)) <= 100
