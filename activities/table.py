"""The activity table: every activity Firebreak schedules, and how workflows call it.

One entry per activity: its name, input and result types, its `workflow.ActivityConfig`
(timeouts, bounded retry policy, the error types a retry cannot fix) and a summary the
Temporal UI shows beside the scheduled event. Workflows call every activity through
`execute` / `start` with an entry; `worker.py` registers the implementations the table
names (and refuses to start when one is missing or not in the table); the audit and the
tracing interceptor find result types here by activity name.

Deterministic and sandbox-safe: this module imports temporalio, the models and error
classes only, never an activity implementation or an I/O library. Non-retryable error
types are the error classes' names, so renaming a class cannot silently turn a
permanent failure into retries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, Literal, TypeVar, Unpack

from temporalio import workflow
from temporalio.common import RetryPolicy

from activities.errors import CredentialDenied, NotifyRejected, PolicyError
from agents.errors import LLMRequestRejected, LLMUnavailable
from memory.errors import RecordNotFound
from models.admission import Admission
from models.agents import (
    DiagnosisInput,
    DiagnosisResult,
    PlanInput,
    PlanResult,
    ReviewInput,
    ReviewResult,
    TriageInput,
    TriageResult,
)
from models.catalog import CatalogError
from models.constants import memory_task_queue
from models.incident import (
    AdmitInput,
    JoinInput,
    JoinResult,
    RemediationInput,
    RemediationResult,
    VerifyApprovalInput,
    VerifyApprovalResult,
)
from models.locks import RequestLockInput
from models.memory import (
    IncidentRecord,
    RecordResult,
    RetrievedContext,
    RetrieveInput,
    TrackRecordInput,
    TrackRecordResult,
)
from models.notify import ChannelsResult, NotifyChannel, NotifyInput, NotifyResult
from models.policy import PolicyDecision, PolicyInput
from models.rca import TelemetryInput, TelemetryResult
from policies.admission import NotAdmitted
from rca.topology import TopologyError

InputT = TypeVar("InputT")
ResultT = TypeVar("ResultT")

# Which worker serves an activity. "memory": the memory worker, on the queue beside the
# calling workflow's own (models.constants.memory_task_queue), so the embedding model
# never loads in the process that runs incidents.
Queue = Literal["incident", "memory"]
QUEUES: tuple[Queue, ...] = ("incident", "memory")


@dataclass(frozen=True)
class ActivitySpec(Generic[InputT, ResultT]):
    """One activity: what it takes, what it returns, and how it is scheduled."""

    name: str
    input_type: type[InputT] | None  # None: the activity takes no argument
    result_type: type[ResultT]
    config: workflow.ActivityConfig
    summary: str
    queue: Queue = "incident"


def _retry(
    *, initial: float, maximum: float, attempts: int, never: tuple[type[BaseException], ...] = ()
) -> RetryPolicy:
    return RetryPolicy(
        initial_interval=timedelta(seconds=initial),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=maximum),
        maximum_attempts=attempts,
        non_retryable_error_types=[e.__name__ for e in never],
    )


# Deciding steps (policy, admission, approver verification, an agent on rules alone) are
# quick and local: a short timeout, a few retries, never for a policy or catalog fault.
DECISION_RETRY = _retry(initial=1, maximum=20, attempts=5, never=(PolicyError, CatalogError))
DECISION: workflow.ActivityConfig = {
    "start_to_close_timeout": timedelta(seconds=15),
    "retry_policy": DECISION_RETRY,
}
# Context (telemetry, memory, track record) is worth waiting for briefly, never worth
# blocking on.
CONTEXT: workflow.ActivityConfig = {
    "start_to_close_timeout": timedelta(seconds=60),
    "retry_policy": _retry(initial=1, maximum=5, attempts=3, never=(RecordNotFound, TopologyError)),
}
# An agent activity may make an LLM call and its repair (each bounded by the client's own
# timeout, at most 35 s); a few attempts, then the incident continues on rules.
AGENT: workflow.ActivityConfig = {
    "start_to_close_timeout": timedelta(seconds=90),
    "schedule_to_close_timeout": timedelta(minutes=4),
    "retry_policy": _retry(initial=1, maximum=30, attempts=3, never=(LLMRequestRejected,)),
}
# The same agent once its LLM is given up on: rules only, quick.
AGENT_ON_RULES: workflow.ActivityConfig = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": DECISION_RETRY,
}
# The faults after which an incident stops asking the LLM and goes on with rules.
LLM_FAULTS = (LLMUnavailable.__name__, LLMRequestRejected.__name__)

# Vault and Ansible faults that a retry can fix are retried a few times; a playbook that
# ran and failed is a result, not an exception, and is never retried blindly. The
# start-to-close timeout is the action's own (the Vault token's TTL is bounded by it).
PLAYBOOK_RETRY = _retry(
    initial=2, maximum=30, attempts=4, never=(CatalogError, CredentialDenied, NotAdmitted)
)
PLAYBOOK: workflow.ActivityConfig = {
    "heartbeat_timeout": timedelta(seconds=30),
    "retry_policy": PLAYBOOK_RETRY,
}
LOCK_REQUEST: workflow.ActivityConfig = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(maximum_attempts=10, maximum_interval=timedelta(seconds=10)),
}
# Notifications: each channel on its own bounded retries; a rejection (bad credentials,
# another 4xx) is final.
NOTIFY_RETRY = _retry(initial=1, maximum=20, attempts=3, never=(NotifyRejected,))
NOTIFY: workflow.ActivityConfig = {
    "start_to_close_timeout": timedelta(seconds=30),
    "schedule_to_close_timeout": timedelta(minutes=2),
    "retry_policy": NOTIFY_RETRY,
}


def _spec(
    name: str,
    input_type: type[InputT] | None,
    result_type: type[ResultT],
    config: workflow.ActivityConfig,
    summary: str,
    queue: Queue = "incident",
) -> ActivitySpec[InputT, ResultT]:
    return ActivitySpec(name, input_type, result_type, config, summary, queue)


TRIAGE = _spec("triage", TriageInput, TriageResult, AGENT, "triage the alerts")
DIAGNOSE = _spec("diagnose", DiagnosisInput, DiagnosisResult, AGENT, "rank root-cause hypotheses")
PLAN_REMEDIATION = _spec("plan_remediation", PlanInput, PlanResult, AGENT, "propose catalog actions")
REVIEW_PLAN = _spec("review_plan", ReviewInput, ReviewResult, AGENT, "review the plan against the evidence")
EVALUATE_POLICY = _spec(
    "evaluate_policy", PolicyInput, PolicyDecision, DECISION, "policy verdict on one action"
)
ADMIT_REMEDIATION = _spec(
    "admit_remediation", AdmitInput, Admission, DECISION, "seal the gate's admission of one run"
)
VERIFY_APPROVAL = _spec(
    "verify_approval", VerifyApprovalInput, VerifyApprovalResult, DECISION, "authenticate an approver"
)
RUN_PLAYBOOK = _spec(
    "run_playbook", RemediationInput, RemediationResult, PLAYBOOK, "run the action's playbook"
)
REQUEST_LOCK = _spec("request_lock", RequestLockInput, str, LOCK_REQUEST, "queue for the target's lock")
JOIN_RELATED = _spec(
    "join_related_incident",
    JoinInput,
    JoinResult,
    DECISION,
    "hand the alerts to an open incident of a neighbouring service",
)
GATHER_TELEMETRY = _spec(
    "gather_telemetry", TelemetryInput, TelemetryResult, CONTEXT, "metrics, traces, logs and ranking"
)
RETRIEVE_CONTEXT = _spec(
    "retrieve_context", RetrieveInput, RetrievedContext, CONTEXT, "runbooks and similar incidents", "memory"
)
ACTION_TRACK_RECORD = _spec(
    "action_track_record",
    TrackRecordInput,
    TrackRecordResult,
    CONTEXT,
    "action classes' track record",
    "memory",
)
RECORD_INCIDENT = _spec(
    "record_incident", IncidentRecord, RecordResult, CONTEXT, "write episodic memory", "memory"
)
NOTIFY_CHANNELS: ActivitySpec[None, ChannelsResult] = _spec(
    "notify_channels",
    None,
    ChannelsResult,
    {"start_to_close_timeout": timedelta(seconds=10), "retry_policy": NOTIFY_RETRY},
    "configured notification channels",
)
NOTIFY_CHAT = _spec("notify_chat", NotifyInput, NotifyResult, NOTIFY, "post to chat")
NOTIFY_JIRA = _spec("notify_jira", NotifyInput, NotifyResult, NOTIFY, "Jira issue or comment")
NOTIFY_SERVICENOW = _spec(
    "notify_servicenow", NotifyInput, NotifyResult, NOTIFY, "ServiceNow incident or note"
)

NOTIFY_BY_CHANNEL: Mapping[NotifyChannel, ActivitySpec[NotifyInput, NotifyResult]] = {
    NotifyChannel.CHAT: NOTIFY_CHAT,
    NotifyChannel.JIRA: NOTIFY_JIRA,
    NotifyChannel.SERVICENOW: NOTIFY_SERVICENOW,
}

ACTIVITIES: tuple[ActivitySpec[Any, Any], ...] = (
    TRIAGE,
    DIAGNOSE,
    PLAN_REMEDIATION,
    REVIEW_PLAN,
    EVALUATE_POLICY,
    ADMIT_REMEDIATION,
    VERIFY_APPROVAL,
    RUN_PLAYBOOK,
    REQUEST_LOCK,
    JOIN_RELATED,
    GATHER_TELEMETRY,
    RETRIEVE_CONTEXT,
    ACTION_TRACK_RECORD,
    RECORD_INCIDENT,
    NOTIFY_CHANNELS,
    NOTIFY_CHAT,
    NOTIFY_JIRA,
    NOTIFY_SERVICENOW,
)
BY_NAME: Mapping[str, ActivitySpec[Any, Any]] = {spec.name: spec for spec in ACTIVITIES}


def result_types() -> dict[str, type]:
    """Activity name -> result type, for code that may not import this table (runtime)."""
    return {spec.name: spec.result_type for spec in ACTIVITIES}


# --- calling an activity from a workflow ------------------------------------------------------


def _options(
    spec: ActivitySpec[Any, Any], config: workflow.ActivityConfig | None, overrides: workflow.ActivityConfig
) -> workflow.ActivityConfig:
    options: workflow.ActivityConfig = {"summary": spec.summary}
    if spec.queue == "memory":
        options["task_queue"] = memory_task_queue(workflow.info().task_queue)
    options.update(spec.config if config is None else config)
    options.update(overrides)
    return options


def _args(spec: ActivitySpec[InputT, Any], arg: InputT) -> list[Any]:
    if spec.input_type is None:
        return []
    return [arg]


async def execute(
    spec: ActivitySpec[InputT, ResultT],
    arg: InputT,
    *,
    config: workflow.ActivityConfig | None = None,
    **overrides: Unpack[workflow.ActivityConfig],
) -> ResultT:
    """Run the activity and wait for its result.

    `config` replaces the entry's configuration (an agent on rules alone); `overrides` change
    single options of it (a playbook's own timeout).
    """
    result: ResultT = await workflow.execute_activity(
        spec.name,
        args=_args(spec, arg),
        result_type=spec.result_type,
        **_options(spec, config, overrides),
    )
    return result


def start(
    spec: ActivitySpec[InputT, ResultT],
    arg: InputT,
    *,
    config: workflow.ActivityConfig | None = None,
    **overrides: Unpack[workflow.ActivityConfig],
) -> workflow.ActivityHandle[ResultT]:
    """Start the activity and return at once; await the handle for its result."""
    return workflow.start_activity(
        spec.name,
        args=_args(spec, arg),
        result_type=spec.result_type,
        **_options(spec, config, overrides),
    )
