"""Notifications and ITSM tickets: what the incident tells chat, Jira and ServiceNow.

`NotifyInput` is built in the workflow from the incident's state (`NotifyInput.from_state`)
and carries only what a message or ticket shows: no secrets, no raw alert payloads.
These are Temporal payloads: add fields with defaults only.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from models.incident import IncidentState, Outcome


class NotifyEvent(StrEnum):
    OPENED = "opened"  # triaged: severity and services known
    APPROVAL_NEEDED = "approval_needed"  # a plan waits for a human
    ESCALATED = "escalated"  # handed to a human (no plan, timeout, failed remediation, ...)
    CLOSED = "closed"  # any other outcome


class NotifyChannel(StrEnum):
    CHAT = "chat"  # Slack-compatible incoming webhook
    JIRA = "jira"
    SERVICENOW = "servicenow"


class NotifyInput(BaseModel):
    event: NotifyEvent
    incident_id: str
    key: str
    at: datetime
    severity: str | None = None
    services: list[str] = Field(default_factory=list)
    phase: str = ""
    title: str = Field(default="", max_length=255)
    summary: str = Field(default="", max_length=4000)
    plan: list[str] = Field(default_factory=list)  # "restart_service on checkout {...}"
    plan_hash: str | None = None
    policy: str | None = None  # verdict and reasons
    approver_group: str | None = None
    outcome: str | None = None
    reason: str | None = None  # why it escalated or closed
    llm_cost_usd: float = 0.0
    # The ticket this incident already has on the channel, from an earlier event's result:
    # with it, an update never searches (and so never races the ticket system's index).
    ticket: str | None = None

    @classmethod
    def from_state(
        cls, event: NotifyEvent, state: IncidentState, at: datetime, reason: str | None = None
    ) -> NotifyInput:
        triage = state.triage
        services = list(triage.services) if triage else sorted({a.service for a in state.alerts.values()})
        severity = state.severity.value if state.severity else None
        names = sorted({a.name for a in state.alerts.values()})
        title = f"[{severity or '?'}] {', '.join(names[:3]) or state.key} on {', '.join(services[:3]) or '?'}"
        plan = (
            [f"{a.action} on {a.target} {json.dumps(a.params, sort_keys=True)}" for a in state.plan.actions]
            if state.plan
            else []
        )
        policy = None
        if state.policy is not None:
            policy = f"{state.policy.verdict.value}: {'; '.join(state.policy.reasons)}"[:1000]
        return cls(
            event=event,
            incident_id=state.incident_id,
            key=state.key,
            at=at,
            severity=severity,
            services=services[:20],
            phase=state.phase.value,
            title=title[:255],
            summary=(triage.summary if triage else "")[:4000],
            plan=plan[:10],
            plan_hash=state.plan_hash,
            policy=policy,
            approver_group=state.policy.approver_group if state.policy else None,
            outcome=state.outcome.value if state.outcome else None,
            reason=reason[:2000] if reason else None,
            llm_cost_usd=state.llm_usage.cost_usd,
        )

    @staticmethod
    def close_event(outcome: Outcome) -> NotifyEvent:
        return NotifyEvent.ESCALATED if outcome == Outcome.ESCALATED else NotifyEvent.CLOSED


NotifyStatus = Literal["sent", "created", "updated", "exists", "skipped"]


class NotifyResult(BaseModel):
    channel: NotifyChannel
    event: NotifyEvent
    status: NotifyStatus
    ticket: str | None = None  # Jira issue key / ServiceNow sys_id
    number: str | None = None  # human-facing id (Jira key / ServiceNow INC number)
    url: str | None = None  # the ticket's page (never a webhook URL: those are credentials)
    detail: str = ""


class ChannelsResult(BaseModel):
    """Which channels this worker has configured (so unconfigured ones cost no activity)."""

    channels: list[NotifyChannel] = Field(default_factory=list)
