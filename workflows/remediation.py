"""RemediationWorkflow: one catalog action, run as a child of its incident.

It holds the target's lock (workflows/lock.py) for the whole run, so two incidents never
act on one target at once, and waiting work goes most severe first. The same workflow runs
an action for real, in check mode (the approval preview and shadow mode: no credential, no
change) and as a rollback (`rollback_of`: the catalog's rollback playbook, its own key).

It runs only as a child of the incident whose gate admitted it: a run without a parent
(started by a client) fails at once, and run_playbook verifies the sealed admission in the
input before it mints a credential (policies/admission.py).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities import table
    from models.constants import REMEDIATION_WORKFLOW, SIGNAL_LOCK_GRANTED
    from models.incident import RemediationInput, RemediationResult
    from models.locks import LockGrant, LockRequest
    from workflows.lock import LockClient, LockNotGranted

# The lease covers every playbook attempt with its backoff, so a live holder never loses it.
LEASE_MARGIN_SECONDS = 120.0


@workflow.defn(name=REMEDIATION_WORKFLOW)
class RemediationWorkflow:
    def __init__(self) -> None:
        self._lock = LockClient()

    @workflow.signal(name=SIGNAL_LOCK_GRANTED)
    def lock_granted(self, grant: LockGrant) -> None:
        self._lock.granted(grant)

    @workflow.run
    async def run(self, input: RemediationInput) -> RemediationResult:
        action = input.action
        info = workflow.info()
        # A side door no more: only a child of the incident its admission names may run. The
        # admission's seal is checked by run_playbook before Vault is asked for anything.
        refused = not_admitted_child(info, input)
        if refused is not None:
            raise ApplicationError(refused, type="NotAdmitted", non_retryable=True)
        request = LockRequest(
            request_id=input.idempotency_key,
            workflow_id=info.workflow_id,
            severity_rank=input.severity_rank,
            lease_seconds=action.timeout_seconds * table.PLAYBOOK_RETRY.maximum_attempts
            + LEASE_MARGIN_SECONDS,
        )
        workflow.set_current_details(f"Waiting for the lock on `{action.target}` for {input.incident_id}.")
        try:
            async with self._lock.hold(action.target, request, timedelta(seconds=input.lock_wait_seconds)):
                workflow.set_current_details(
                    f"Running `{action.action}` on `{action.target}`"
                    f"{' in check mode' if input.check_mode else ''} for {input.incident_id}."
                )
                # The Vault token's TTL is bounded by the same timeout.
                return await table.execute(
                    table.RUN_PLAYBOOK,
                    input,
                    start_to_close_timeout=timedelta(seconds=action.timeout_seconds),
                )
        except LockNotGranted:
            return RemediationResult(
                action=action.action,
                target=action.target,
                status="timeout",
                changed=False,
                check_mode=input.check_mode,
                idempotency_key=input.idempotency_key,
                duration_seconds=0.0,
                summary=f"{action.action} on {action.target}: no lock within {input.lock_wait_seconds:g}s "
                "(another remediation holds the target)",
            )


def not_admitted_child(info: workflow.Info, input: RemediationInput) -> str | None:
    """Why this run may not go on: not a child of the incident that admitted it."""
    parent = info.parent
    if parent is None:
        return (
            "RemediationWorkflow runs only as a child of its IncidentWorkflow; "
            "this one was started directly by a client"
        )
    if input.admission is None:
        return "admission: missing; the incident's gate did not admit this run"
    if parent.workflow_id != input.incident_id or input.admission.incident_id != input.incident_id:
        return (
            f"incident_id: the parent is {parent.workflow_id!r}, the input names {input.incident_id!r} "
            f"and the admission {input.admission.incident_id!r}"
        )
    return None
