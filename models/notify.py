"""Notifications and ITSM tickets: what the incident tells chat, Jira and ServiceNow.

`NotifyInput` is built in the workflow from the incident's state (`workflows.notifier.notify_input`)
and carries only what a message or ticket shows: no secrets, no raw alert payloads.
These are Temporal payloads: add fields with defaults only.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field


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
