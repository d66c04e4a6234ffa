"""The shape of `data.yaml` (`data.firebreak.*`), checked when the policies load.

Rego reads a missing or misspelt key as "undefined", which quietly switches a rule off:
a window with `strat: "02:00"` would never open, a limit under the wrong risk would never
bind. So the sections the shipped policy reads are validated here, and a mistake stops the
worker naming `data.yaml` and the key. Every section is optional (a policy set that does
not use windows need not declare any); keys the shipped policy does not know are kept for
custom policies.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Weekday = Literal["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
Requirement = Literal["allow", "needs_approval", "deny"]
Level = Literal["notify", "recommend", "approve", "autonomous"]
# Fields of models.memory.ActionTrackRecord a promotion rule may bound.
TrackField = Literal[
    "incidents", "successes", "failures", "rejections", "approvals", "shadow_runs", "useful", "wrong"
]
_CLOCK = re.compile(r"^(?:[01]\d|2[0-3]):[0-5]\d$|^24:00$")


def minute_of_day(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Window(_Strict):
    """Open on `days` (UTC) from `start` (inclusive) to `end` (exclusive), same day."""

    name: str = Field(min_length=1)
    days: list[Weekday] = Field(min_length=1)
    start: str
    end: str

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not _CLOCK.match(value):
            raise ValueError(f"{value!r} is not a time of day HH:MM (00:00 to 24:00)")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if minute_of_day(self.start) >= minute_of_day(self.end):
            raise ValueError(
                f"window {self.name!r} ends ({self.end}) before it starts ({self.start}); "
                "split a window that crosses midnight in two"
            )
        return self


class Maintenance(_Strict):
    windows: list[Window] = Field(default_factory=list)
    # action -> severity -> what the action needs outside every window (default: allow)
    outside_window: dict[str, dict[Literal["P1", "P2", "P3", "P4"], Requirement]] = Field(
        default_factory=dict
    )


class BlastLimits(_Strict):
    approve_above: int = Field(ge=0)
    deny_above: int = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> BlastLimits:
        if self.deny_above < self.approve_above:
            raise ValueError("deny_above must be at least approve_above")
        return self


class BlastRadius(_Strict):
    limits: dict[str, BlastLimits] = Field(default_factory=dict)  # by risk
    unknown: Literal["allow", "needs_approval"] = "allow"  # target not in the topology, or no topology


class PromotionRule(_Strict):
    min: dict[TrackField, int] = Field(default_factory=dict)
    max: dict[TrackField, int] = Field(default_factory=dict)


class Demotion(_Strict):
    min_failures: int = Field(ge=1)
    max_failure_rate: float = Field(ge=0, le=1)
    floor: Level = "approve"  # demotion never goes below this level


class Autonomy(_Strict):
    promote: dict[Literal["notify", "recommend", "approve"], PromotionRule] = Field(default_factory=dict)
    demote: Demotion | None = None


class DenyList(_Strict):
    actions: list[str] = Field(default_factory=list)
    targets: list[str] = Field(default_factory=list)


class FirebreakData(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    deny_list: DenyList | None = None
    approver_groups: dict[str, str] = Field(default_factory=dict)  # risk -> group
    action_approver_groups: dict[str, str] = Field(default_factory=dict)  # action -> group (wins)
    approvers: dict[str, list[str]] | None = None  # group -> members; "*" admits anyone
    maintenance: Maintenance | None = None
    blast_radius: BlastRadius | None = None
    autonomy: Autonomy | None = None

    @model_validator(mode="after")
    def _groups_have_members(self) -> FirebreakData:
        if self.approvers is None:
            return self
        named = {*self.approver_groups.values(), *self.action_approver_groups.values()}
        missing = sorted(g for g in named if not self.approvers.get(g))
        if missing:
            raise ValueError(f"approver group(s) {', '.join(missing)} have no members under approvers")
        return self


def check_policy_data(data: dict[str, Any]) -> str | None:
    """None if `data.firebreak` is well formed, else `key.path: problem` lines."""
    section = data.get("firebreak")
    if section is None:
        return None
    try:
        FirebreakData.model_validate(section)
    except ValidationError as exc:
        return "\n".join(
            f"firebreak.{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in exc.errors(include_url=False)
        )
    return None


def permissive_policies(source: Path, destination: Path) -> Path:
    """A copy of the policies in `source` whose every approver group admits anyone ("*").

    For the dev stack and the test suite only, which run with FIREBREAK_APPROVAL_AUTH=roster
    and say so (banner, Current Details). Production rosters name people.
    """
    destination.mkdir(parents=True, exist_ok=True)
    for path in source.glob("*.rego"):
        shutil.copyfile(path, destination / path.name)
    document = yaml.safe_load((source / "data.yaml").read_text()) or {}
    section = document.setdefault("firebreak", {})
    groups = set(section.get("approvers") or {}) | set((section.get("approver_groups") or {}).values())
    groups |= set((section.get("action_approver_groups") or {}).values())
    section["approvers"] = {group: ["*"] for group in sorted(groups)}
    (destination / "data.yaml").write_text(
        "# Generated: the shipped policies with a permissive roster (dev stack / tests only).\n"
        + yaml.safe_dump(document, sort_keys=False)
    )
    return destination
