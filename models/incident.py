"""Incident state and the inputs/results of the incident's workflows and activities.

These models are Temporal payloads: add fields with defaults only, so that histories of
incidents already in flight still decode.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from models.admission import Admission, AdmissionMode
from models.agents import (
    DiagnosisResult,
    Evidence,
    Grounding,
    LLMUsage,
    PlanResult,
    ProposedAction,
    ReviewResult,
    TriageResult,
)
from models.alert import Alert, Severity
from models.policy import PolicyDecision


class Phase(StrEnum):
    SETTLING = "settling"
    TRIAGE = "triage"
    GATHERING = "gathering_context"
    DIAGNOSING = "diagnosing"
    PLANNING = "planning"
    REVIEWING = "reviewing"
    POLICY = "policy"
    AWAITING_APPROVAL = "awaiting_approval"
    REMEDIATING = "remediating"
    VERIFYING = "verifying"
    CLOSED = "closed"


class Outcome(StrEnum):
    REMEDIATED = "remediated"
    TRANSIENT = "transient"  # every alert resolved within the settle window
    SELF_RESOLVED = "self_resolved"  # every alert resolved before an action ran
    REJECTED = "rejected"  # a human rejected the plan
    DENIED = "denied"  # the policy denied the plan
    VETOED = "vetoed"  # the reviewer agent vetoed the plan
    ESCALATED = "escalated"  # handed to a human: no plan, approval timeout, failed remediation
    NO_ACTION = "no_action"  # triage found nothing to do beyond notifying
    RECOMMENDED = "recommended"  # shadow mode: the plan ran in check mode, nothing was applied
    CORRELATED = "correlated"  # its alerts joined an open incident of a neighbouring service


# --- Approval --------------------------------------------------------------------------------


class ApprovalSignal(BaseModel):
    """What a human sends from the Temporal UI or `firebreak approve` (one JSON object)."""

    by: str = Field(min_length=1, max_length=256)
    reason: str = Field(default="", max_length=4096)
    plan_hash: str | None = Field(default=None, max_length=128)
    # An approval code from `firebreak approval-code` / POST /approvals/{incident}/code, issued to
    # an authenticated approver: required unless the worker runs with FIREBREAK_APPROVAL_AUTH=roster.
    code: str | None = Field(default=None, max_length=2048)


class ApprovalRecord(BaseModel):
    decision: Literal["approved", "rejected", "refused"]
    by: str
    reason: str
    at: datetime
    plan_hash: str | None = None
    note: str | None = None  # why a signal was refused (stale plan, ...)
    # How the approver was authenticated ("code" or "roster") and the worker's seal over the
    # record: the admission accepts only attested answers.
    authenticated_by: str | None = None
    code_nonce: str | None = None  # a code is good for one answer
    attestation: str | None = None


# --- Remediation -----------------------------------------------------------------------------


class Plan(BaseModel):
    """What will run if approved; its hash binds an approval to exactly this plan."""

    actions: list[ProposedAction]

    def digest(self) -> str:
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class RemediationInput(BaseModel):
    """One action of an approved plan; the idempotency key is stable across retries.

    With `rollback_of` (the forward run's idempotency key) the action's catalog rollback
    playbook runs instead of its playbook, and undoes what that run did.
    """

    incident_id: str
    action: ProposedAction
    idempotency_key: str
    check_mode: bool = False
    rollback_of: str | None = None
    severity_rank: int = Field(default=3, ge=1, le=4)  # orders the wait for the target's lock
    lock_wait_seconds: float = Field(default=1800.0, gt=0)
    # The gate's sealed admission of this run; without a valid one nothing is minted or run.
    admission: Admission | None = None

    @property
    def mode(self) -> AdmissionMode:
        """What kind of run this is, as an admission must name it."""
        if self.rollback_of is not None:
            return AdmissionMode.ROLLBACK
        return AdmissionMode.CHECK if self.check_mode else AdmissionMode.APPLY


def action_digest(action: ProposedAction) -> str:
    """What a seal binds an action by: everything that reaches the policy and Ansible."""
    canonical = json.dumps(action.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class AdmitInput(BaseModel):
    """Ask the gate's admission activity to admit one run of a plan's action."""

    incident_id: str
    plan: Plan
    plan_hash: str
    index: int = Field(ge=0)
    mode: AdmissionMode
    idempotency_key: str
    rollback_of: str | None = None
    decisions: list[PolicyDecision]
    approvals: list[ApprovalRecord] = Field(default_factory=list)
    forward: Admission | None = None  # a rollback: the admission of the run it undoes


class VerifyApprovalInput(BaseModel):
    incident_id: str
    plan_hash: str | None
    decision: Literal["approved", "rejected"]
    signal: ApprovalSignal
    decisions: list[PolicyDecision]
    used_nonces: list[str] = Field(default_factory=list)


class VerifyApprovalResult(BaseModel):
    refused: str | None = None  # why, naming the field; None: admitted
    record: ApprovalRecord


# --- Correlation at settle ---------------------------------------------------------------------

# At most this many alerts are handed on to a related incident in one signal (a payload bound);
# an incident with more is handled on its own.
MAX_JOINED_ALERTS = 500


class JoinInput(BaseModel):
    """A settled incident's alerts, to hand to an open incident of a neighbouring service."""

    incident_id: str
    alerts: list[Alert] = Field(min_length=1, max_length=MAX_JOINED_ALERTS)


class JoinResult(BaseModel):
    joined: str | None = None  # the incident the alerts now belong to; None: handled on its own
    reason: str = ""


class PlannedChange(BaseModel):
    """One task's change as Ansible's --diff reports it (bounded; no_log tasks never show)."""

    task: str
    diff: str


class RemediationResult(BaseModel):
    action: str
    target: str
    status: Literal["successful", "failed", "timeout", "canceled"]
    changed: bool
    check_mode: bool
    idempotency_key: str
    credential_accessor: str | None = None  # the Vault token's accessor: an id, never a secret
    credential_ttl_seconds: int | None = None
    credential_revoked: bool = False
    duration_seconds: float
    summary: str
    failed_tasks: list[str] = Field(default_factory=list)
    changes: list[PlannedChange] = Field(default_factory=list)  # what changed / would change
    rollback_of: str | None = None  # set on a rollback run: the key of the run it undid
    rollback_available: bool = False  # the catalog declares a rollback playbook for the action


# --- The incident ----------------------------------------------------------------------------


class Decision(BaseModel):
    """One step of the incident's reasoning, as the audit shows it."""

    at: datetime
    kind: Literal[
        "triage",
        "context",
        "diagnosis",
        "plan",
        "review",
        "llm",
        "policy",
        "approval",
        "remediation",
        "verification",
        "close",
        "autonomy",
        "preview",
        "rollback",
        "admission",
        "continue_as_new",
        "correlation",
    ]
    by: str  # reasoner, policy package, human or "firebreak"
    summary: str
    reasons: list[str] = Field(default_factory=list)
    confidence: float | None = None  # agents' decisions
    routing: str | None = None  # agents' decisions: why this reasoner


class IncidentState(BaseModel):
    incident_id: str
    key: str
    phase: Phase = Phase.SETTLING
    outcome: Outcome | None = None
    opened_at: datetime
    closed_at: datetime | None = None
    severity: Severity | None = None
    alerts: dict[str, Alert] = Field(default_factory=dict)  # by fingerprint
    alert_signals: int = 0
    duplicate_alerts: int = 0
    triage: TriageResult | None = None
    diagnosis: DiagnosisResult | None = None
    proposal: PlanResult | None = None  # the planner's answer: actions, rationale, verification
    review: ReviewResult | None = None
    plan: Plan | None = None
    plan_hash: str | None = None
    policy: PolicyDecision | None = None  # the plan's verdict: the strictest of policy_decisions
    policy_decisions: list[PolicyDecision] = Field(default_factory=list)  # one per plan action
    previews: list[RemediationResult] = Field(default_factory=list)  # check mode, before approval
    approvals: list[ApprovalRecord] = Field(default_factory=list)
    remediations: list[RemediationResult] = Field(default_factory=list)
    rollbacks: list[RemediationResult] = Field(default_factory=list)
    # The gate's sealed admissions of each child run (a rollback presents its forward run's).
    admissions: list[Admission] = Field(default_factory=list)
    decisions: list[Decision] = Field(default_factory=list)
    llm_usage: LLMUsage = Field(default_factory=LLMUsage)  # every agent's LLM calls, summed
    redactions: dict[str, int] = Field(default_factory=dict)  # secrets kept out of prompts, by kind
    llm_unavailable: str | None = None  # set when the LLM stayed down: the rest ran on rules
    # Context gathered before diagnosis: telemetry evidence, the ranker's candidates, memory.
    evidence: list[Evidence] = Field(default_factory=list)
    root_cause_candidates: list[str] = Field(default_factory=list)  # "service (confidence)", best first
    grounding: Grounding | None = None
    degraded: list[str] = Field(default_factory=list)  # evidence that could not be had, and why
    memory_record: str | None = None  # id of the episodic record written at close
    runs: int = 1  # workflow runs so far: each continue-as-new starts one more

    @property
    def firing(self) -> list[Alert]:
        return [a for a in self.alerts.values() if a.status == "firing"]

    @property
    def all_resolved(self) -> bool:
        return bool(self.alerts) and not self.firing


class Stage(StrEnum):
    """Where a run continued as new: the wait it was in."""

    SETTLE = "settle"
    APPROVAL = "approval"
    VERIFY = "verify"


class IncidentResume(BaseModel):
    """What a run hands the next one when it continues as new: the whole incident."""

    state: IncidentState
    stage: Stage
    deadline: datetime  # when the interrupted wait ends: the next run waits only what is left
    # What earlier runs notified (workflows/notifier.Notifier): the incident's ticket per
    # channel (by channel name) and whether anyone was told, so later events comment on them.
    notify_tickets: dict[str, str] = Field(default_factory=dict)
    notified: bool = False


class IncidentWorkflowInput(BaseModel):
    key: str
    settle_seconds: float = Field(default=30.0, ge=0)
    approval_timeout_seconds: float = Field(default=3600.0, gt=0)
    verify_window_seconds: float = Field(default=300.0, ge=0)
    # Remediation child workflows run here; None means the incident's own task queue.
    remediation_task_queue: str | None = None
    # History stays bounded: at a wait, after this many alert signals in one run (or when
    # Temporal suggests it), the run continues as new with the state in `resume`.
    max_signals_per_run: int = Field(default=1000, ge=1)
    resume: IncidentResume | None = None


class IncidentResult(BaseModel):
    incident_id: str
    outcome: Outcome
    summary: str
    joined: str | None = None  # outcome correlated: the incident that holds the alerts now
