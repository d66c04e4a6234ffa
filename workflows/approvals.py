"""Answers to an incident's pending approval: accepted, or refused with the reason recorded.

An answer arrives as a signal (what the Temporal UI sends) or as an update (the CLI). Both
run `Approvals.answer`: the gate's own checks (pending, plan hash, approver group), then the
worker's `verify_approval` activity, which authenticates the approver and attests the
record the admission will trust. An update is validated first (`Approvals.validate`, sync,
no activity): what the gate or the approval code's claims refuse is rejected before
anything is written to history, so the caller learns at once and the incident is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities import table
    from models.incident import (
        ApprovalRecord,
        ApprovalSignal,
        IncidentState,
        VerifyApprovalInput,
    )
    from models.policy import PolicyDecision
    from policies.gate import approval_needed, refusal
    from policies.seals import code_refusal
    from workflows.wording import cause, decide

Answer = Literal["approved", "rejected"]


class Approvals:
    """The incident's approval request: whether one is open, and its answers."""

    def __init__(self, state: IncidentState, *, awaiting: bool, changed: Callable[[], None]) -> None:
        self._state = state
        self.awaiting = awaiting  # the incident waits for an answer
        self.accepted: ApprovalRecord | None = None
        self._changed = changed  # the incident's details need refreshing

    @property
    def answered(self) -> bool:
        return self.accepted is not None

    @property
    def pending(self) -> bool:
        return self.awaiting and self.accepted is None

    def validate(self, signal: ApprovalSignal) -> None:
        """Refuse (before anything is recorded) what the gate or the code's claims refuse."""
        state = self._state
        why = refusal(gate_decisions(state), state.plan_hash, self.pending, signal)
        if why is None and signal.code is not None:
            why = code_refusal(
                signal.code, state.incident_id, state.plan_hash, workflow.now(), self._used_nonces()
            )
        if why is not None:
            raise ApplicationError(why, type="ApprovalRefused", non_retryable=True)

    async def answer(self, decision: Answer, signal: ApprovalSignal) -> ApprovalRecord:
        """Accept an answer to the pending approval, or record why it is refused; the record.

        Checked again after the verification's wait: a second answer that arrived meanwhile
        finds the request already answered.
        """
        state = self._state
        why = refusal(gate_decisions(state), state.plan_hash, self.pending, signal)
        record: ApprovalRecord | None = None
        if why is None:
            try:
                verified = await table.execute(
                    table.VERIFY_APPROVAL,
                    VerifyApprovalInput(
                        incident_id=state.incident_id,
                        plan_hash=state.plan_hash,
                        decision=decision,
                        signal=signal,
                        decisions=approval_needed(gate_decisions(state)),
                        used_nonces=self._used_nonces(),
                    ),
                )
            except ActivityError as exc:
                why = f"could not verify the approver: {cause(exc)}"
            else:
                why, record = verified.refused, verified.record
            if why is None and not self.pending:
                why = "no approval is pending"
        if why is not None or record is None:
            why = why or "not verified"
            refused = ApprovalRecord(
                decision="refused",
                by=signal.by,
                reason=signal.reason,
                at=workflow.now(),
                plan_hash=signal.plan_hash,
                note=f"{decision}: {why}",
                code_nonce=record.code_nonce if record is not None else None,
            )
            state.approvals.append(refused)
            decide(state, "approval", signal.by, f"{decision} signal refused", [why])
            workflow.logger.warning("approval signal from %s refused: %s", signal.by, why)
            self._changed()
            return refused
        self.accepted = record
        state.approvals.append(record)
        decide(
            state,
            "approval",
            record.by,
            f"plan {decision}",
            ([signal.reason] if signal.reason else []) + [f"authenticated by {record.authenticated_by}"],
        )
        return record

    def _used_nonces(self) -> list[str]:
        return [a.code_nonce for a in self._state.approvals if a.code_nonce]


def admitted_or_raise(record: ApprovalRecord) -> ApprovalRecord:
    """An update's answer: the accepted record, or the refusal (already recorded) as an error."""
    if record.decision == "refused":
        raise ApplicationError(record.note or "refused", type="ApprovalRefused", non_retryable=True)
    return record


def gate_decisions(state: IncidentState) -> list[PolicyDecision]:
    """The decisions the gate judges answers by: one per action, or the plan's strictest."""
    return state.policy_decisions or ([state.policy] if state.policy else [])
