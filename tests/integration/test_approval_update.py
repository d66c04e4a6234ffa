"""Approvals as Temporal updates (what `firebreak approve` sends), on the real stack.

An admitted answer comes back as the attested record; a refused one raises with the reason
before anything is written: the state, the decisions and the history stay as they were.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from models.constants import UPDATE_APPROVE, UPDATE_REJECT
from models.incident import ApprovalRecord, ApprovalSignal, Outcome, Phase
from policies.seals import ApprovalCodes
from tests.integration.conftest import StackFactory, awaiting, open_incident, resolve, unique_service

pytestmark = pytest.mark.integration

_UPDATE_EVENTS = (
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED,
)


async def test_admitted_approval_by_update_returns_the_attested_record(make_stack: StackFactory) -> None:
    stack = await make_stack()
    service = unique_service()
    incident_id = await open_incident(stack, service)
    state = await stack.wait_for(incident_id, awaiting)
    handle = stack.handle(incident_id)

    record = await handle.execute_update(
        UPDATE_APPROVE,
        ApprovalSignal(by="dana@example.com", reason="runbook step 2", plan_hash=state.plan_hash),
        result_type=ApprovalRecord,
    )
    assert record.decision == "approved"
    assert record.by == "dana@example.com" and record.plan_hash == state.plan_hash
    assert record.authenticated_by == "roster" and record.attestation

    state = await stack.wait_for(incident_id, lambda s: s.phase == Phase.VERIFYING)
    assert [a.decision for a in state.approvals] == ["approved"]
    assert state.approvals[0].attestation == record.attestation
    assert len(stack.restarts(service)) == 1
    await resolve(stack, service)
    assert (await handle.result()).outcome == Outcome.REMEDIATED


async def test_refused_update_raises_the_reason_and_changes_nothing(make_stack: StackFactory) -> None:
    stack = await make_stack()
    service = unique_service()
    incident_id = await open_incident(stack, service)
    before = await stack.wait_for(incident_id, awaiting)
    assert before.plan_hash is not None
    handle = stack.handle(incident_id)
    elsewhere = ApprovalCodes(SecretStr(secrets.token_hex(32))).issue(
        "incident-some-other", before.plan_hash, "dana@example.com", datetime.now(UTC)
    )
    expired = ApprovalCodes(SecretStr(secrets.token_hex(32))).issue(
        incident_id, before.plan_hash, "dana@example.com", datetime.now(UTC) - timedelta(hours=1)
    )
    refusals = [
        (UPDATE_APPROVE, ApprovalSignal(by="mallory", plan_hash="0000"), "does not match the pending plan"),
        (UPDATE_REJECT, ApprovalSignal(by="mallory", plan_hash=None), "does not match the pending plan"),
        (
            UPDATE_APPROVE,
            ApprovalSignal(by="dana@example.com", plan_hash=before.plan_hash, code="not-a-code"),
            "not a Firebreak approval code",
        ),
        (
            UPDATE_APPROVE,
            ApprovalSignal(by="dana@example.com", plan_hash=before.plan_hash, code=elsewhere),
            "issued for incident 'incident-some-other'",
        ),
        (
            UPDATE_APPROVE,
            ApprovalSignal(by="dana@example.com", plan_hash=before.plan_hash, code=expired),
            "expired at",
        ),
    ]
    for update, answer, reason in refusals:
        with pytest.raises(WorkflowUpdateFailedError) as raised:
            await handle.execute_update(update, answer, result_type=ApprovalRecord)
        cause = raised.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == "ApprovalRefused"
        assert reason in cause.message, cause.message

    after = await stack.state(incident_id)
    assert after.phase == Phase.AWAITING_APPROVAL
    assert after.approvals == [] and after.decisions == before.decisions
    events = [e.event_type async for e in handle.fetch_history_events()]
    assert not any(t in _UPDATE_EVENTS for t in events), "a refused update is not in the history"
    assert stack.restarts(service) == []

    # The request is still open: a good answer goes through.
    await handle.execute_update(
        UPDATE_REJECT,
        ApprovalSignal(by="carol", reason="deploy in progress", plan_hash=before.plan_hash),
        result_type=ApprovalRecord,
    )
    assert (await handle.result()).outcome == Outcome.REJECTED
