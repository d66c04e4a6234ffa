"""RemediationWorkflow: one catalog action, run as a child of its incident."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.remediation import RemediationActivities
    from models.constants import REMEDIATION_WORKFLOW
    from models.incident import RemediationInput, RemediationResult

# Vault and Ansible faults that a retry can fix are retried a few times; a playbook that
# ran and failed is a result, not an exception, and is never retried blindly.
PLAYBOOK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=4,
    non_retryable_error_types=["CatalogError", "CredentialDenied"],
)
PLAYBOOK_HEARTBEAT_TIMEOUT = timedelta(seconds=30)


@workflow.defn(name=REMEDIATION_WORKFLOW)
class RemediationWorkflow:
    @workflow.run
    async def run(self, input: RemediationInput) -> RemediationResult:
        workflow.set_current_details(
            f"Running `{input.action.action}` on `{input.action.target}`"
            f"{' in check mode' if input.check_mode else ''} for {input.incident_id}."
        )
        return await workflow.execute_activity_method(
            RemediationActivities.run_playbook,
            input,
            # The Vault token's TTL is bounded by the same timeout.
            start_to_close_timeout=timedelta(seconds=input.action.timeout_seconds),
            heartbeat_timeout=PLAYBOOK_HEARTBEAT_TIMEOUT,
            retry_policy=PLAYBOOK_RETRY,
        )
