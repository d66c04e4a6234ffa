"""Names that the API, the worker, the CLI and the workflows must agree on."""

from temporalio.common import SearchAttributeKey

TASK_QUEUE = "firebreak-incidents"
# Memory activities (retrieval, episodic memory, track records) run on their own queue, next
# to whichever queue the incident runs on, so the dense model lives only in memory workers.
MEMORY_TASK_QUEUE_SUFFIX = "-memory"

# Workflow type names, so the API can start workflows without importing their code.
INCIDENT_WORKFLOW = "IncidentWorkflow"
REMEDIATION_WORKFLOW = "RemediationWorkflow"

INCIDENT_WORKFLOW_ID_PREFIX = "incident-"

# Signal, query and update names, also what the Temporal UI lists under "Send a Signal".
SIGNAL_ALERTS = "alerts"
SIGNAL_APPROVE = "approve"
SIGNAL_REJECT = "reject"
# The same answers as updates: the caller learns at once whether the answer was admitted.
UPDATE_APPROVE = "approve_plan"
UPDATE_REJECT = "reject_plan"
QUERY_STATE = "state"

# The per-target resource lock (workflows/lock.py).
LOCK_WORKFLOW = "ResourceLockWorkflow"
# Metric names (the contract with dashboards; runtime.metrics sets their buckets).
WF_PHASE_ENTERED = "firebreak_incident_phase_entered"
WF_INCIDENTS_CLOSED = "firebreak_incidents_closed_by_outcome"
WF_INCIDENT_SECONDS = "firebreak_incident_duration_seconds"
WF_TIME_TO_DECISION = "firebreak_incident_time_to_decision_seconds"
WF_APPROVAL_WAIT = "firebreak_incident_approval_wait_seconds"
WF_ALERTS_DEDUPLICATED = "firebreak_alerts_deduplicated"
WF_INCIDENT_COST = "firebreak_incident_llm_cost_usd"

LOCK_WORKFLOW_ID_PREFIX = "lock-"
SIGNAL_LOCK_ACQUIRE = "acquire"
SIGNAL_LOCK_RELEASE = "release"
SIGNAL_LOCK_GRANTED = "lock_granted"

# Custom search attributes, registered by the dev stack and the test fixtures.
SA_SEVERITY = SearchAttributeKey.for_keyword("FirebreakSeverity")
SA_SERVICE = SearchAttributeKey.for_keyword("FirebreakService")
SA_PHASE = SearchAttributeKey.for_keyword("FirebreakPhase")
SA_OUTCOME = SearchAttributeKey.for_keyword("FirebreakOutcome")
SEARCH_ATTRIBUTES = (SA_SEVERITY, SA_SERVICE, SA_PHASE, SA_OUTCOME)


def memory_task_queue(task_queue: str) -> str:
    """The queue the memory activities of workflows on `task_queue` are scheduled on."""
    return f"{task_queue}{MEMORY_TASK_QUEUE_SUFFIX}"


def incident_workflow_id(key: str) -> str:
    return f"{INCIDENT_WORKFLOW_ID_PREFIX}{key}"
