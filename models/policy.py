"""What the policy decides on and what it decides: verdicts, autonomy, blast radius.

These models are Temporal payloads: add fields with defaults only, so that histories of
incidents already in flight still decode.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from models.agents import ProposedAction
from models.alert import Severity
from models.memory import ActionTrackRecord


class PolicyVerdict(StrEnum):
    ALLOW = "allow"
    NEEDS_APPROVAL = "needs_approval"
    DENY = "deny"


class PolicyInput(BaseModel):
    incident_id: str
    severity: Severity
    services: list[str]
    action: ProposedAction
    now: datetime
    # The action class's track record. None: memory could not say, and the catalog's autonomy
    # level applies as is.
    track_record: ActionTrackRecord | None = None


class BlastRadius(BaseModel):
    """Who depends on the target, transitively (rca.topology.Topology.blast_radius)."""

    known: bool = False  # False: no topology configured, or the target is not in it
    size: int = 0
    services: list[str] = Field(default_factory=list)  # sorted, at most MAX_BLAST_SERVICES


MAX_BLAST_SERVICES = 50


class AutonomyAssessment(BaseModel):
    """An action class's autonomy level: the catalog's, moved by its track record."""

    configured: str
    effective: str
    change: Literal["promoted", "demoted"] | None = None
    progress: list[str] = Field(default_factory=list)  # what promotion still needs


class PolicyDecision(BaseModel):
    verdict: PolicyVerdict
    reasons: list[str]
    approver_group: str | None = None
    policy: str  # which package decided
    approvers: list[str] = Field(default_factory=list)  # who may answer; "*" admits anyone
    mode: Literal["apply", "check"] = "apply"  # check: shadow mode, --check --diff only
    autonomy: AutonomyAssessment | None = None
    action: str | None = None  # the action and target decided on (None: a plan's combined verdict)
    target: str | None = None
    blast_radius: BlastRadius | None = None
    # HMAC by the policy activity over the decision and the action it decided on, for this
    # incident (policies/seals.py): the admission trusts only sealed decisions.
    seal: str | None = None

    def admits(self, by: str) -> bool:
        """May `by` answer this decision's approval request?"""
        who = by.strip().casefold()
        return any(member == "*" or member.strip().casefold() == who for member in self.approvers)
