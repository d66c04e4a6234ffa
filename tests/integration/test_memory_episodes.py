"""Episodic memory on Qdrant's real engine: the learning loop, feedback and action track records."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from memory.dense import load_embedder
from memory.errors import RecordNotFound
from memory.service import Memory
from memory.store import QdrantStore, StoreConfig
from models.agents import ProposedAction
from models.alert import Alert, AlertStatus, Severity
from models.incident import ApprovalRecord, IncidentState, Outcome, Plan, RemediationResult
from models.memory import (
    ActionOutcome,
    ApprovalNote,
    FeedbackInput,
    IncidentRecord,
    RetrieveInput,
)
from policies.catalog import load_catalog
from runtime.settings import PROJECT_ROOT
from tests.integration.test_memory_knowledge import seeded_memory
from workflows.records import incident_record

pytestmark = pytest.mark.integration

T0 = datetime(2025, 11, 3, 18, 0, tzinfo=UTC)
ACTIONS = set(load_catalog(PROJECT_ROOT / "playbooks").actions)


def memory_at(path: Path, mode: str = "sparse") -> Memory:
    return Memory(QdrantStore(StoreConfig(path=path)), load_embedder("dense") if mode == "hybrid" else None)


@pytest.fixture(scope="module", params=["sparse", "hybrid"])
def seeded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Memory]:
    yield seeded_memory(request.param, tmp_path_factory)


@pytest.fixture
def memory(tmp_path: Path) -> Memory:
    return memory_at(tmp_path / "q")


def alert(name: str, service: str, summary: str, description: str = "") -> Alert:
    return Alert(
        fingerprint=f"{name}-{service}-{summary[:8]}",
        status=AlertStatus.FIRING,
        name=name,
        service=service,
        severity=Severity.P2,
        labels={"alertname": name, "service": service},
        annotations={"summary": summary, **({"description": description} if description else {})},
        starts_at=T0,
        source="alertmanager",
    )


def record(
    run: str,
    actions: list[ActionOutcome],
    *,
    incident: str = "incident-prod-checkout",
    alerts: tuple[str, ...] = ("HighErrorRate",),
    services: tuple[str, ...] = ("checkout",),
    symptoms: tuple[str, ...] = (),
    closed_minutes: int = 30,
    **extra: object,
) -> IncidentRecord:
    return IncidentRecord.model_validate(
        {
            "incident_id": incident,
            "run_id": run,
            "key": incident.removeprefix("incident-"),
            "opened_at": T0,
            "closed_at": T0 + timedelta(minutes=closed_minutes),
            "alert_names": list(alerts),
            "services": list(services),
            "symptoms": list(symptoms),
            "outcome": "remediated",
            "actions": [a.model_dump() for a in actions],
            **extra,
        }
    )


def test_learning_loop_a_human_choice_that_worked_ranks_first_next_time(seeded: Memory) -> None:
    b = RetrieveInput.from_alerts(
        "incident-prod-checkout",
        [
            alert(
                "HighErrorRate",
                "checkout",
                "checkout 5xx ratio is 9% over 5m",
                "503 Service Unavailable from checkout since the request rate doubled at 18:00",
            )
        ],
        category="errors",
    )
    before = seeded.retrieve(b)
    assert before.incidents == []
    assert before.suggestions[0].action == "restart_service", "the runbooks alone say restart"
    restart_before = before.suggestions[0].score

    # Incident A, a week earlier: the planner proposed a restart, a human rejected it and chose
    # to scale out instead; the scale-out ran and the alerts resolved.
    a = record(
        "run-a",
        [
            ActionOutcome(action="restart_service", target="checkout", status="rejected"),
            ActionOutcome(
                action="scale_service",
                target="checkout",
                params={"service": "checkout", "replicas": 8},
                status="successful",
                verified=True,
                approved_by="dana",
            ),
        ],
        symptoms=("HighErrorRate on checkout: 503s from checkout while traffic doubled for a campaign",),
        category="errors",
        summary="HighErrorRate on checkout [P2]: 503s under a campaign's load",
        root_cause="checkout lacked capacity for doubled traffic",
        approvals=[
            ApprovalNote(
                decision="rejected",
                by="dana",
                reason="restarting adds no capacity; load doubled",
                at=T0,
                actions=["restart_service"],
            ),
            ApprovalNote(
                decision="approved", by="dana", reason="scale to 8", at=T0, actions=["scale_service"]
            ),
        ],
        time_to_resolve_seconds=1500.0,
    )
    # An unrelated incident must not steer the ranking.
    c = record(
        "run-c",
        [
            ActionOutcome(
                action="clear_disk_space", target="search-indexer", status="successful", verified=True
            )
        ],
        incident="incident-prod-search-indexer",
        alerts=("NodeFilesystemAlmostOutOfSpace",),
        services=("search-indexer",),
        symptoms=("NodeFilesystemAlmostOutOfSpace on search-indexer: /var 98% full",),
    )
    assert seeded.record(a).created and seeded.record(c).created

    after = seeded.retrieve(b)
    assert after.incidents[0].id == a.id == "incident-prod-checkout@run-a"
    assert "alert:HighErrorRate" in after.incidents[0].matched_on
    top = after.suggestions[0]
    assert top.action == "scale_service", after.suggestions
    assert a.id in top.cited and c.id not in top.cited
    assert any("chosen by dana" in r for r in top.reasons)
    restart = next(s for s in after.suggestions if s.action == "restart_service")
    assert restart.score < restart_before
    assert any("restarting adds no capacity" in r for r in restart.reasons)
    assert a.id in after.citations
    rendered = after.render()
    assert f"[{a.id}]" in rendered and "scale_service" in rendered


def test_a_record_built_from_workflow_state_is_found_and_cited(memory: Memory) -> None:
    memory.knowledge.ingest(PROJECT_ROOT / "knowledge", known_actions=ACTIONS)
    crash = alert(
        "KubePodCrashLooping", "cart", "Pod shop/cart-5d8 is in waiting state (reason: CrashLoopBackOff)"
    )
    action = ProposedAction(action="restart_service", params={"service": "cart"}, target="cart")
    plan = Plan(actions=[action])
    state = IncidentState(
        incident_id="incident-prod-cart",
        key="prod-cart",
        opened_at=T0,
        closed_at=T0 + timedelta(minutes=4),
        outcome=Outcome.REMEDIATED,
        alerts={crash.fingerprint: crash.model_copy(update={"status": AlertStatus.RESOLVED})},
        plan=plan,
        plan_hash=plan.digest(),
        approvals=[
            ApprovalRecord(decision="approved", by="lee", reason="wedged", at=T0, plan_hash=plan.digest())
        ],
        remediations=[
            RemediationResult(
                action="restart_service",
                target="cart",
                status="successful",
                changed=True,
                check_mode=False,
                idempotency_key="k1",
                duration_seconds=2.0,
                summary="restarted",
            )
        ],
    )
    rec = incident_record(
        state, run_id="r1", root_cause="event loop wedged", cited=["runbook:service-down#3"]
    )
    memory.record(rec)
    later = memory.retrieve(RetrieveInput.from_alerts("incident-prod-cart", [crash]))
    assert later.incidents[0].id == "incident-prod-cart@r1"
    assert later.incidents[0].record.time_to_resolve_seconds == 240.0
    top = later.suggestions[0]
    assert top.action == "restart_service" and "incident-prod-cart@r1" in top.cited


def test_track_record_counts_incidents_per_action_and_retries_do_not_double_count(memory: Memory) -> None:
    ok = ActionOutcome(action="restart_service", status="successful", verified=True, approved_by="dana")
    approved = [ApprovalNote(decision="approved", by="dana", at=T0, actions=["restart_service"])]
    r1 = record("r1", [ok], approvals=approved)
    r2 = record("r2", [ok.model_copy(update={"status": "failed", "verified": None})], approvals=approved)
    r3 = record(
        "r3",
        [ActionOutcome(action="restart_service", status="rejected")],
        approvals=[ApprovalNote(decision="rejected", by="sam", reason="deploy running", at=T0, actions=[])],
    )
    r4 = record("r4", [ActionOutcome(action="scale_service", status="successful", check_mode=True)])
    r5 = record("r5", [ActionOutcome(action="scale_service", status="successful", verified=True)])
    for r in (r1, r2, r3, r4, r5):
        assert memory.record(r).created
    assert not memory.record(r1).created, "a retried close rewrites, it does not add"
    note = FeedbackInput(
        incident_id=r5.incident_id, run_id="r5", useful=False, by="sam", note="bad deploy", at=T0
    )
    memory.feedback(note)
    memory.feedback(note)  # a retried activity

    records = memory.track_record()
    assert sorted(records) == ["restart_service", "scale_service"]
    restart, scale = records["restart_service"], records["scale_service"]
    assert (
        restart.incidents,
        restart.successes,
        restart.failures,
        restart.rejections,
        restart.approvals,
    ) == (
        3,
        1,
        1,
        1,
        2,
    )
    assert restart.success_rate == 0.5
    assert (scale.incidents, scale.successes, scale.shadow_runs, scale.wrong, scale.useful) == (2, 1, 1, 1, 0)
    assert memory.episodes.count() == 5
    assert memory.episodes.get(r5.incident_id, "r5").feedback[0].note == "bad deploy"
    assert memory.track_record(["clear_disk_space"])["clear_disk_space"].incidents == 0


def test_feedback_goes_to_the_latest_run_and_survives_a_rewritten_record(memory: Memory) -> None:
    ok = [ActionOutcome(action="restart_service", status="successful", verified=True)]
    old, new = record("old", ok, closed_minutes=10), record("new", ok, closed_minutes=90)
    memory.record(new)
    memory.record(old)
    result = memory.feedback(
        FeedbackInput(incident_id="incident-prod-checkout", useful=True, by="kim", at=T0)
    )
    assert result.record_id == "incident-prod-checkout@new"
    memory.record(new)  # the close activity retried after the feedback arrived
    assert [f.by for f in memory.episodes.get("incident-prod-checkout").feedback] == ["kim"]
    assert memory.episodes.get("incident-prod-checkout", "old").feedback == []
    with pytest.raises(RecordNotFound, match="had no action 'scale_service'"):
        memory.feedback(
            FeedbackInput(incident_id="incident-prod-checkout", useful=False, by="k", action="scale_service")
        )
    with pytest.raises(RecordNotFound, match="no memory of incident-nope"):
        memory.feedback(FeedbackInput(incident_id="incident-nope", useful=False, by="k"))


def test_cli_feedback_updates_the_track_record(tmp_path: Path) -> None:
    memory = memory_at(tmp_path / "q")
    memory.record(record("r1", [ActionOutcome(action="restart_service", status="successful", verified=True)]))
    env = {"PATH": "", "HOME": str(tmp_path), "FIREBREAK_QDRANT_PATH": str(tmp_path / "q")}

    def firebreak(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cli.main", *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            cwd=PROJECT_ROOT,
        )

    done = firebreak("feedback", "prod-checkout", "--wrong", "--note", "masked a bad deploy", "--by", "sam")
    assert done.returncode == 0, done.stderr
    assert "incident-prod-checkout@r1: recorded wrong from sam (1 feedback note(s))" in done.stdout
    shown = firebreak("kb", "track-record", "restart_service")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["restart_service"]["wrong"] == 1
    missing = firebreak("feedback", "prod-nothing", "--useful")
    assert missing.returncode == 1
    assert "no memory of incident-prod-nothing" in missing.stderr
    neither = firebreak("feedback", "prod-checkout")
    assert neither.returncode == 2 and "say --useful or --wrong" in neither.stderr
