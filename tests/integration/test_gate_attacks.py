"""Attacks on the safety gate, on the real Temporal dev server, OpenBao and ansible-runner.

Each hostile value would create a canary file if Ansible (or a shell) ever executed it. It
goes into every field that can reach Ansible, through every door: the run_playbook activity
itself, the webhook, a direct client start of IncidentWorkflow, the Claude planner (the
local Messages API stand-in, tests/fake_anthropic.py, answering with hostile params: no real
Anthropic server can be reached here), and a direct client start of RemediationWorkflow.
Afterwards no canary exists, and each value was either refused naming its field or reached
the target verbatim, as data.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.remediation import RemediationActivities
from api.approvals import token_digest
from integrations.vault import ActionCredentials
from models.agents import ProposedAction
from models.alert import Alert, AlertBatch, AlertStatus, Severity
from models.constants import INCIDENT_WORKFLOW, REMEDIATION_WORKFLOW, SIGNAL_ALERTS, SIGNAL_APPROVE
from models.incident import (
    ApprovalSignal,
    IncidentResult,
    IncidentState,
    IncidentWorkflowInput,
    Outcome,
    RemediationInput,
    RemediationResult,
)
from policies.catalog import load_catalog
from policies.seals import ApprovalCodes, Sealer, configured_key
from runtime.settings import PROJECT_ROOT, Settings
from tests.admitted import admission_key, admit, parent_worker, start_admitted
from tests.conftest import VaultServer
from tests.fake_anthropic import FakeAnthropic, ToolUse
from tests.integration.conftest import (
    StackFactory,
    awaiting,
    claude_settings,
    open_incident,
    unique_service,
)
from tests.integration.test_agents_flow import APPROVE, LAG, diagnosis, open_lag_incident, triage
from tests.integration.test_policy_flow import policies_with
from tests.payloads import alertmanager_alert, alertmanager_payload

pytestmark = pytest.mark.integration

CANARY = "@CANARY@"


def hostile_values(canary: Path) -> dict[str, str]:
    """Each would touch `canary` if executed as a template or by a shell."""
    table = {
        "jinja-lookup": "{{ lookup('pipe', 'touch @CANARY@') }}",
        "jinja-block": "{% for x in [1] %}{{ lookup('pipe', 'touch @CANARY@') }}{% endfor %}",
        "jinja-unicode": "\uff5b\uff5b lookup('pipe','touch @CANARY@') \uff5d\uff5d {{'{{'}}",
        "jinja-in-lookup-arg": "x{{ query('pipe', 'touch @CANARY@') | join }}y",
        "shell": "$(touch @CANARY@); `touch @CANARY@` | touch @CANARY@ && touch @CANARY@",
        "newlines": (
            "ok\n- hosts: all\n  tasks: [{shell: 'touch @CANARY@'}]\n{{ lookup('pipe','touch @CANARY@') }}"
        ),
        "host-all": "all",
        "host-star": "*",
        "host-list": "localhost,evil",
        "traversal": "../../../../../../@CANARY@",
        "huge": "A" * 100_000 + "{{ lookup('pipe', 'touch @CANARY@') }}",
    }
    return {name: value.replace(CANARY, str(canary)) for name, value in table.items()}


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    path = tmp_path / "canary" / "CANARY"
    path.parent.mkdir()
    return path


def assert_no_canary(canary: Path) -> None:
    made = sorted(str(p) for p in canary.parent.rglob("*")) + ([str(canary)] if canary.exists() else [])
    assert made == [], f"a hostile value executed: {made}"


# --- Door 1: the activity itself, with a valid admission (the last line of defence) ---------


def remediation_activities(
    settings: Settings, vault: VaultServer, credentials: ActionCredentials | None = None, **options: Any
) -> RemediationActivities:
    """The real activity, with the worker's key and credentials, as the worker builds it;
    `options` are RemediationActivities' own (preview limits, run slots)."""
    return RemediationActivities(
        catalog=load_catalog(PROJECT_ROOT / "playbooks"),
        sealer=Sealer(admission_key(settings)),
        credentials=credentials or ActionCredentials(vault.addr, vault.worker_token),
        vault_addr=vault.addr,
        target_state_dir=settings.resolved_target_state_dir(),
        **options,
    )


def restart(service: str, **params: Any) -> ProposedAction:
    return ProposedAction(action="restart_service", params={"service": service, **params}, target=service)


@pytest.mark.parametrize("check_mode", [True, False], ids=["check", "real"])
async def test_hostile_values_in_every_field_never_execute(
    settings: Settings, vault: VaultServer, canary: Path, check_mode: bool
) -> None:
    """incident_id, idempotency_key, rollback_of, target and params.service are refused naming
    the field unless plain; the free-text reason reaches the target verbatim (or is refused
    for its length); nothing ever executes, in check mode or for real."""
    key = admission_key(settings)
    activities = remediation_activities(settings, vault)
    env = ActivityEnvironment()
    outcomes: dict[str, str] = {}
    for name, value in hostile_values(canary).items():
        service = unique_service()
        base = RemediationInput(
            incident_id=f"incident-{service}",
            action=restart(service),
            idempotency_key=secrets.token_hex(16),
            check_mode=check_mode,
        )
        variants: dict[str, RemediationInput] = {
            "incident_id": base.model_copy(update={"incident_id": value}),
            "idempotency_key": base.model_copy(update={"idempotency_key": value}),
            "action.target": base.model_copy(
                update={"action": base.action.model_copy(update={"target": value})}
            ),
            "service": base.model_copy(update={"action": restart(value)}),
            "reason": base.model_copy(update={"action": restart(service, reason=value)}),
        }
        # Each its own key, so one variant's run never makes another's a no-op.
        variants = {
            field: run
            if field == "idempotency_key"
            else run.model_copy(update={"idempotency_key": secrets.token_hex(16)})
            for field, run in variants.items()
        }
        for field, run in variants.items():
            try:
                result: RemediationResult = await env.run(activities.run_playbook, admit(run, key))
            except ApplicationError as exc:
                assert exc.type == "CatalogError", exc
                assert field.split(".")[-1] in str(exc), f"{name} in {field}: refusal names no field: {exc}"
                outcomes[f"{name}/{field}"] = "refused"
                continue
            assert result.status == "successful", f"{name} in {field}: {result.summary}"
            outcomes[f"{name}/{field}"] = "ran as data"
            if field == "reason" and not check_mode:
                written = settings.resolved_target_state_dir() / service / f"reason-{run.idempotency_key}.txt"
                assert written.read_text() == value, "the reason reached the target verbatim, unrendered"
    assert_no_canary(canary)
    # Every non-plain identifier was refused; only free text and plain tokens ever ran.
    for name in ("jinja-lookup", "jinja-block", "shell", "newlines", "host-star", "host-list", "traversal"):
        for field in ("incident_id", "idempotency_key", "action.target", "service"):
            assert outcomes[f"{name}/{field}"] == "refused", (name, field)
    assert outcomes["jinja-lookup/reason"] == "ran as data" and outcomes["huge/reason"] == "refused"


async def test_rollback_of_is_an_identifier_too(settings: Settings, vault: VaultServer, canary: Path) -> None:
    key = admission_key(settings)
    activities = remediation_activities(settings, vault)
    service = unique_service()
    run = RemediationInput(
        incident_id=f"incident-{service}",
        action=ProposedAction(
            action="scale_service", params={"service": service, "replicas": 2}, target=service
        ),
        idempotency_key=secrets.token_hex(16),
        rollback_of=hostile_values(canary)["jinja-lookup"],
    )
    with pytest.raises(ApplicationError, match=r"rollback_of: .* is not a plain identifier"):
        await ActivityEnvironment().run(activities.run_playbook, admit(run, key))
    assert_no_canary(canary)


# --- Door 2: the webhook ----------------------------------------------------------------------


async def test_hostile_alerts_through_the_webhook(make_stack: StackFactory, canary: Path) -> None:
    stack = await make_stack()
    values = hostile_values(canary)
    opened: list[str] = []
    for name in ("jinja-lookup", "jinja-block", "shell"):
        service = unique_service()
        alert = alertmanager_alert(
            "KubePodCrashLooping",
            service,
            summary=values[name],
            extra_labels={"cluster": values[name][:200], "container": values[name][:200]},
        )
        alert["annotations"]["description"] = values[name]
        response = await stack.post_alertmanager(alertmanager_payload(alert))
        assert response.status_code == 202, response.text
        opened += response.json()["incidents"]
    # The service label itself: it names the plan's target and params.service.
    for name in ("jinja-lookup", "shell", "host-list", "traversal"):
        alert = alertmanager_alert("KubePodCrashLooping", values[name])
        response = await stack.post_alertmanager(alertmanager_payload(alert))
        if response.status_code == 422:
            assert "service" in response.text, response.text  # refused, naming the field
            continue
        assert response.status_code == 202, response.text
        opened += response.json()["incidents"]
    services_seen: list[str] = []
    for incident_id in opened:
        state = await stack.wait_for(incident_id, lambda s: awaiting(s) or s.outcome is not None)
        if awaiting(state):
            await stack.handle(incident_id).signal(
                SIGNAL_APPROVE, ApprovalSignal(by="oncall", reason="go", plan_hash=state.plan_hash)
            )
            state = await stack.wait_for(incident_id, lambda s: s.remediations != [] or s.outcome is not None)
        services_seen += [a.params.get("service", "") for a in (state.plan.actions if state.plan else [])]
    assert_no_canary(canary)
    # Whatever reached a plan is a plain service name the catalog's pattern admits.
    assert all(re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,62}", str(s)) for s in services_seen), services_seen


# --- Door 3: a client starts IncidentWorkflow itself, with a hostile id -------------------------


async def test_direct_incident_start_with_a_hostile_id_escalates_naming_the_field(
    make_stack: StackFactory, canary: Path
) -> None:
    stack = await make_stack()
    service = unique_service()
    incident_id = "incident-" + hostile_values(canary)["jinja-lookup"]
    alert = Alert(
        fingerprint=f"fp-{service}",
        status=AlertStatus.FIRING,
        name="KubePodCrashLooping",
        service=service,
        severity=Severity.P2,
        labels={"alertname": "KubePodCrashLooping", "service": service},
        starts_at=datetime.now(UTC) - timedelta(minutes=5),
        source="generic",
    )
    handle = await stack.client.start_workflow(
        INCIDENT_WORKFLOW,
        IncidentWorkflowInput(
            key=service, settle_seconds=0.2, approval_timeout_seconds=30, verify_window_seconds=5
        ),
        id=incident_id,
        task_queue=stack.settings.task_queue,
        start_signal=SIGNAL_ALERTS,
        start_signal_args=[AlertBatch(alerts=[alert], received_at=datetime.now(UTC))],
        result_type=IncidentResult,
    )
    state = await stack.wait_for(incident_id, lambda s: awaiting(s) or s.outcome is not None)
    if awaiting(state):
        assert all(p.status == "failed" and "incident_id" in p.summary for p in state.previews), (
            state.previews
        )
        await handle.signal(
            SIGNAL_APPROVE, ApprovalSignal(by="oncall", reason="go", plan_hash=state.plan_hash)
        )
    result = await asyncio.wait_for(handle.result(), timeout=120)
    assert result.outcome == Outcome.ESCALATED
    assert "incident_id" in result.summary and "not a plain identifier" in result.summary, result.summary
    assert stack.credentials.issued == [], "nothing was minted for a refused run"
    assert stack.restarts(service) == []
    assert_no_canary(canary)


# --- Door 4: the Claude planner answers with hostile params -------------------------------------


def hostile_plan(service: str, **params: Any) -> dict[str, Any]:
    return {
        "decision": "act",
        "actions": [
            {"action": "restart_service", "params": {"service": service, **params}, "target": service}
        ],
        "rationale": "restart",
        "expected_effect": "lag falls",
        "verification": f"{LAG} resolves",
        "confidence": 0.8,
    }


async def test_a_planner_answer_with_hostile_params(
    make_stack: StackFactory, fake_anthropic: FakeAnthropic, canary: Path
) -> None:
    """A hostile service is refused at planning (the schema); a hostile reason is free text
    that reaches the target verbatim, in the preview and in the real run, never executed."""
    stack = await make_stack(**claude_settings(fake_anthropic))
    values = hostile_values(canary)
    # A hostile service: the plan never validates, the incident escalates.
    bad = unique_service()
    fake_anthropic.script("record_triage", ToolUse(triage(bad)))
    fake_anthropic.script("record_diagnosis", ToolUse(diagnosis(bad)))
    fake_anthropic.script("record_plan", *[ToolUse(hostile_plan(values["jinja-lookup"]))] * 2)
    incident_id = await open_lag_incident(stack, bad)
    result = await asyncio.wait_for(stack.handle(incident_id).result(), timeout=120)
    assert result.outcome == Outcome.ESCALATED, result

    # A hostile reason: admitted as free text, runs as data.
    service = unique_service()
    reason = values["jinja-block"][:200]
    fake_anthropic.script("record_triage", ToolUse(triage(service)))
    fake_anthropic.script("record_diagnosis", ToolUse(diagnosis(service)))
    fake_anthropic.script("record_plan", ToolUse(hostile_plan(service, reason=reason)))
    fake_anthropic.script("record_review", ToolUse(APPROVE))
    incident_id = await open_lag_incident(stack, service)
    state = await stack.wait_for(incident_id, lambda s: awaiting(s) or s.outcome is not None)
    assert awaiting(state), state.outcome
    (preview,) = state.previews
    assert preview.status == "successful" and any(reason in c.diff for c in preview.changes), preview
    await stack.handle(incident_id).signal(
        SIGNAL_APPROVE, ApprovalSignal(by="oncall", reason="ok", plan_hash=state.plan_hash)
    )
    state = await stack.wait_for(incident_id, lambda s: s.remediations != [])
    (run,) = state.remediations
    assert run.status == "successful", run.summary
    written = stack.settings.resolved_target_state_dir() / service / f"reason-{run.idempotency_key}.txt"
    assert written.read_text() == reason
    assert_no_canary(canary)


# --- Door 5: a client starts RemediationWorkflow itself -----------------------------------------


async def test_remediation_started_by_a_client_gets_no_credential_and_no_effect(
    make_stack: StackFactory, vault: VaultServer
) -> None:
    stack = await make_stack()
    service = unique_service()
    role = "firebreak-restart-service"
    minted_before = vault.token_creations(role)
    run = RemediationInput(
        incident_id=f"incident-{service}", action=restart(service), idempotency_key=secrets.token_hex(16)
    )
    genuine_key = admission_key(stack.settings)
    forger_key = SecretStr(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())

    failures: dict[str, str] = {}

    async def refused(name: str, coro: Any) -> None:
        with pytest.raises(WorkflowFailureError) as failure:
            await coro
        causes: list[str] = []
        error: BaseException | None = failure.value
        while error is not None:
            causes.append(str(error))
            error = error.__cause__ or getattr(error, "cause", None)
        failures[name] = " / ".join(causes)

    # 1. A direct start, with a copied genuine admission: no parent, refused at once.
    await refused(
        "direct",
        stack.client.execute_workflow(
            REMEDIATION_WORKFLOW,
            admit(run, genuine_key),
            id=f"direct-{service}",
            task_queue=stack.settings.task_queue,
            result_type=RemediationResult,
        ),
    )
    async with parent_worker(stack.client) as parents:
        # 2. Under a parent named after the incident, but sealed with a key the worker lacks.
        forged = admit(run, forger_key)
        await refused(
            "forged",
            (await start_admitted(stack.client, parents, forged, stack.settings.task_queue)).result(),
        )
        # 3. A genuine admission for another action, presented for a restart.
        other = run.model_copy(update={"incident_id": f"incident-other-{service}"})
        mismatched = admit(other, genuine_key, action_digest="0" * 64)
        await refused(
            "mismatch",
            (await start_admitted(stack.client, parents, mismatched, stack.settings.task_queue)).result(),
        )
        # 4. A genuine admission that has expired.
        late = run.model_copy(update={"incident_id": f"incident-late-{service}"})
        expired = admit(late, genuine_key, expires_at=datetime.now(UTC) - timedelta(seconds=1))
        await refused(
            "expired",
            (await start_admitted(stack.client, parents, expired, stack.settings.task_queue)).result(),
        )
        # 5. No admission at all.
        bare = run.model_copy(update={"incident_id": f"incident-bare-{service}"})
        await refused(
            "missing", (await start_admitted(stack.client, parents, bare, stack.settings.task_queue)).result()
        )

    assert "only as a child of its IncidentWorkflow" in failures["direct"], failures
    assert "seal does not verify" in failures["forged"], failures
    assert "does not cover this run (action differ)" in failures["mismatch"], failures
    assert "admission: expired" in failures["expired"], failures
    assert "admission: missing" in failures["missing"], failures
    assert stack.credentials.issued == [], "the worker minted nothing"
    assert vault.token_creations(role) == minted_before, "OpenBao created no token for the role"
    assert stack.restarts(service) == []
    # The refusal is in the remediation's own history.
    history = await stack.client.get_workflow_handle(f"direct-{service}").fetch_history()
    failed = [e for e in history.events if e.HasField("workflow_execution_failed_event_attributes")]
    assert (
        failed and "only as a child" in failed[0].workflow_execution_failed_event_attributes.failure.message
    )

    # The control: the same audit count sees a genuinely admitted run's token.
    async with parent_worker(stack.client) as parents:
        good = run.model_copy(update={"incident_id": f"incident-good-{service}"})
        handle = await start_admitted(
            stack.client, parents, admit(good, genuine_key), stack.settings.task_queue
        )
        assert (await handle.result()).status == "successful"
    assert vault.token_creations(role) == minted_before + 1 and len(stack.restarts(service)) == 1


# --- Approvals from authenticated people ------------------------------------------------------


def answers_recorded(count: int, state: IncidentState) -> bool:
    return len(state.approvals) == count


async def test_only_an_authenticated_member_approves_with_a_fresh_code_for_this_plan(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    """Production mode (approval codes): every way around it is refused and recorded while
    the gate stays open; a member's own code for this plan approves once."""
    tokens = {
        person: secrets.token_urlsafe(24) for person in ("alice@example.com", "carol@example.com", "mallory")
    }
    tokens_file = tmp_path / "approvers.yaml"
    tokens_file.write_text("".join(f"{p}: {token_digest(t)}\n" for p, t in tokens.items()))
    stack = await make_stack(
        approval_auth="code",
        approver_tokens_file=tokens_file,
        policies_dir=policies_with(
            tmp_path / "policies",
            approvers={"sre": ["alice@example.com", "carol@example.com"], "sre-leads": ["lead@example.com"]},
        ),
    )
    service = unique_service()
    incident_id = await open_incident(stack, service)
    state = await stack.wait_for(incident_id, awaiting)
    handle = stack.handle(incident_id)

    async def code_for(person: str) -> str:
        response = await stack.http.post(
            f"/approvals/{incident_id}/code", headers={"Authorization": f"Bearer {tokens[person]}"}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["approver"] == person and body["plan_hash"] == state.plan_hash
        assert body["signal"]["code"] == body["code"]
        return str(body["code"])

    unknown = await stack.http.post(
        f"/approvals/{incident_id}/code", headers={"Authorization": "Bearer nope"}
    )
    assert unknown.status_code == 401 and "personal approver token" in unknown.text
    webhook_token = await stack.http.post(f"/approvals/{incident_id}/code", headers=stack.headers)
    assert webhook_token.status_code == 401, "the webhook token is not a person"

    alice = await code_for("alice@example.com")
    codes = ApprovalCodes(configured_key(None, stack.settings.data_dir, "approval"))
    now = datetime.now(UTC)
    prefix, claims, mac = alice.split(".")
    raw = json.loads(base64.urlsafe_b64decode(claims + "=="))
    forged_claims = (
        base64.urlsafe_b64encode(
            json.dumps(
                {**raw, "approver": "carol@example.com"}, sort_keys=True, separators=(",", ":")
            ).encode()
        )
        .decode()
        .rstrip("=")
    )
    attempts: list[tuple[str, ApprovalSignal, str]] = [
        (
            "typed name, no code",
            ApprovalSignal(by="alice@example.com", plan_hash=state.plan_hash),
            "code: missing",
        ),
        (
            "a member's code, signed as another member",
            ApprovalSignal(by="carol@example.com", plan_hash=state.plan_hash, code=alice),
            "was issued to 'alice@example.com'",
        ),
        (
            "an authenticated non-member",
            ApprovalSignal(by="mallory", plan_hash=state.plan_hash, code=await code_for("mallory")),
            "mallory is not in the approver group",
        ),
        (
            "a forged code",
            ApprovalSignal(
                by="carol@example.com", plan_hash=state.plan_hash, code=f"{prefix}.{forged_claims}.{mac}"
            ),
            "signature does not verify",
        ),
        (
            "an expired code",
            ApprovalSignal(
                by="alice@example.com",
                plan_hash=state.plan_hash,
                code=codes.issue(
                    incident_id, str(state.plan_hash), "alice@example.com", now, timedelta(seconds=-1)
                ),
            ),
            "expired",
        ),
        (
            "a code for another plan",
            ApprovalSignal(
                by="alice@example.com",
                plan_hash=state.plan_hash,
                code=codes.issue(incident_id, "0123456789abcdef", "alice@example.com", now),
            ),
            "issued for plan '0123456789abcdef'",
        ),
        (
            "a code for another incident",
            ApprovalSignal(
                by="alice@example.com",
                plan_hash=state.plan_hash,
                code=codes.issue("incident-elsewhere", str(state.plan_hash), "alice@example.com", now),
            ),
            "issued for incident 'incident-elsewhere'",
        ),
    ]
    for count, (name, signal, why) in enumerate(attempts, start=1):
        await handle.signal(SIGNAL_APPROVE, signal)
        state = await stack.wait_for(incident_id, partial(answers_recorded, count))
        refused = state.approvals[-1]
        assert refused.decision == "refused" and why in (refused.note or ""), (name, refused)
        assert awaiting(state), f"{name}: the gate closed"
    assert stack.restarts(service) == [] and stack.credentials.issued == []

    await handle.signal(
        SIGNAL_APPROVE,
        ApprovalSignal(by="alice@example.com", reason="on call", plan_hash=state.plan_hash, code=alice),
    )
    state = await stack.wait_for(incident_id, lambda s: s.remediations != [])
    approved = state.approvals[len(attempts)]
    assert (approved.decision, approved.by, approved.authenticated_by) == (
        "approved",
        "alice@example.com",
        "code",
    )
    assert approved.attestation and approved.code_nonce
    assert len(stack.restarts(service)) == 1
    # The same code again: refused, recorded, and nothing runs twice.
    await handle.signal(
        SIGNAL_APPROVE, ApprovalSignal(by="alice@example.com", plan_hash=state.plan_hash, code=alice)
    )
    state = await stack.wait_for(incident_id, lambda s: len(s.approvals) == len(attempts) + 2)
    assert state.approvals[-1].decision == "refused"
    assert len(stack.restarts(service)) == 1
    admissions = [d for d in state.decisions if d.kind == "admission"]
    assert any(d.by == "alice@example.com" and "(approved)" in d.summary for d in admissions), admissions
    late = await stack.http.post(
        f"/approvals/{incident_id}/code", headers={"Authorization": f"Bearer {tokens['alice@example.com']}"}
    )
    assert late.status_code == 409
