"""Messages of the per-target resource lock (workflows/lock.py)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from models.alert import slug
from models.constants import LOCK_WORKFLOW_ID_PREFIX


class LockRequest(BaseModel):
    request_id: str
    workflow_id: str  # who to signal when granted
    severity_rank: int = Field(ge=1, le=4)  # 1 = P1
    lease_seconds: float = Field(gt=0)
    seq: int = 0  # arrival order, assigned by the lock


class LockGrant(BaseModel):
    request_id: str
    target: str


class LockRelease(BaseModel):
    request_id: str


class LockState(BaseModel):
    target: str
    queue: list[LockRequest] = Field(default_factory=list)
    next_seq: int = 0
    holder: LockRequest | None = None
    grants: int = 0
    expired_leases: list[str] = Field(default_factory=list)


class RequestLockInput(BaseModel):
    target: str
    task_queue: str
    request: LockRequest


def lock_workflow_id(target: str) -> str:
    """The id of the lock workflow for `target` (one per target)."""
    return LOCK_WORKFLOW_ID_PREFIX + slug(target)
