"""What the incident workflow calls to notify and to count: deterministic, sandbox-safe.

Imported by workflow code (inside `workflow.unsafe.imports_passed_through()`): it uses only
`temporalio.workflow` and the models, never an I/O library.

Notifications (`Notifier`): `send` starts the event's notification on every configured
channel and returns at once; the incident never waits for chat or a ticket system. Events
of one channel go out in order (a Jira comment follows its issue), each channel on its own
bounded retry policy, and a channel that keeps failing is logged and given up on. `close`
sends the closing event and waits (at most `CLOSE_WAIT`) for what is still in flight, so
the close message is not lost when the workflow completes. The activities are the
activity table's (`activities.table`); `activities.notify` implements them.

Metrics (`phase_entered`, `incident_closed`): recorded with `workflow.metric_meter()`,
which records nothing while replaying. They reach Prometheus through the worker's Temporal
runtime (`runtime.metrics.TemporalBridge`).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from activities import table
from models.constants import (
    WF_ALERTS_DEDUPLICATED,
    WF_APPROVAL_WAIT,
    WF_INCIDENT_COST,
    WF_INCIDENT_SECONDS,
    WF_INCIDENTS_CLOSED,
    WF_PHASE_ENTERED,
    WF_TIME_TO_DECISION,
)
from models.incident import IncidentState
from models.notify import NotifyChannel, NotifyEvent, NotifyInput, NotifyResult
from models.policy import PolicyVerdict

# How long a closing incident waits for its notifications before completing anyway.
CLOSE_WAIT = timedelta(seconds=60)


class Notifier:
    """The incident's notifications: fire and forget, in order per channel, bounded."""

    def __init__(self, tickets: dict[NotifyChannel, str] | None = None, announced: bool = False) -> None:
        """`tickets` and `announced`: what earlier runs of the incident told whom."""
        self._channels: asyncio.Task[list[NotifyChannel]] | None = None
        self._last: dict[NotifyChannel, asyncio.Task[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.tickets: dict[NotifyChannel, str] = dict(tickets or {})  # the incident's ticket per channel
        self.results: list[NotifyResult] = []
        self.failures: list[str] = []
        self._sent = announced

    @property
    def announced(self) -> bool:
        """Whether the incident has told anyone anything (then its close is sent too)."""
        return self._sent

    def send(self, event: NotifyEvent, state: IncidentState, reason: str | None = None) -> None:
        """Start notifying every configured channel of `event`; returns immediately."""
        input = NotifyInput.from_state(event, state, workflow.now(), reason)
        self._sent = True
        if self._channels is None:
            self._channels = asyncio.create_task(self._configured())
        for channel in NotifyChannel:  # enum order: deterministic
            task = asyncio.create_task(self._deliver(channel, input, self._last.get(channel)))
            self._last[channel] = task
            self._tasks.append(task)

    async def close(self, state: IncidentState, reason: str) -> None:
        """Send the closing event and wait, bounded, for everything in flight.

        An escalation is always sent (a human must act); any other close only when the
        incident was announced before: one that resolved while settling told no one.
        """
        if state.outcome is not None:
            event = NotifyInput.close_event(state.outcome)
            if self._sent or event == NotifyEvent.ESCALATED:
                self.send(event, state, reason)
        await self.flush()

    async def flush(self, wait: timedelta = CLOSE_WAIT) -> None:
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            await workflow.wait(pending, timeout=wait.total_seconds())

    async def _configured(self) -> list[NotifyChannel]:
        try:
            result = await table.execute(table.NOTIFY_CHANNELS, None)
        except ActivityError as exc:
            self._failed("channels", exc)
            return []
        return result.channels

    async def _deliver(
        self, channel: NotifyChannel, input: NotifyInput, previous: asyncio.Task[None] | None
    ) -> None:
        if previous is not None:
            await previous  # never raises: failures are recorded, not thrown
        assert self._channels is not None
        if channel not in await self._channels:
            return
        try:
            result = await table.execute(
                table.NOTIFY_BY_CHANNEL[channel],
                input.model_copy(update={"ticket": self.tickets.get(channel)}),
            )
        except ActivityError as exc:
            self._failed(f"{channel.value} {input.event.value}", exc)
            return
        self.results.append(result)
        if result.ticket:
            self.tickets[channel] = result.ticket

    def _failed(self, what: str, exc: ActivityError) -> None:
        cause = exc.cause
        why = cause.message if isinstance(cause, ApplicationError) else str(cause or exc)
        self.failures.append(f"{what}: {why}")
        workflow.logger.warning("notification %s failed: %s", what, why)


# --- metrics ----------------------------------------------------------------------------------


def phase_entered(phase: str) -> None:
    """Count an incident entering a phase (call where the phase is set)."""
    workflow.metric_meter().create_counter(WF_PHASE_ENTERED, "Incidents entering each phase.").add(
        1, {"phase": phase}
    )


def incident_closed(state: IncidentState) -> None:
    """Record a closed incident: outcome, duration, time to decision, approval wait, dedup, cost."""
    meter = workflow.metric_meter()
    closed_at = state.closed_at or workflow.now()
    attrs = {
        "outcome": state.outcome.value if state.outcome else "unknown",
        "severity": state.severity.value if state.severity else "unknown",
    }
    meter.create_counter(WF_INCIDENTS_CLOSED, "Closed incidents by outcome and severity.").add(1, attrs)
    meter.create_histogram_float(WF_INCIDENT_SECONDS, "Incident duration, open to close.", "s").record(
        _seconds(state.opened_at, closed_at), attrs
    )
    decided = next((d.at for d in state.decisions if d.kind == "policy"), None)
    if decided is not None and state.policy is not None:
        meter.create_histogram_float(
            WF_TIME_TO_DECISION, "Time from the first alert to the policy's decision.", "s"
        ).record(_seconds(state.opened_at, decided), {"verdict": state.policy.verdict.value, **attrs})
        if state.policy.verdict == PolicyVerdict.NEEDS_APPROVAL:
            answer = next((a for a in state.approvals if a.decision != "refused"), None)
            meter.create_histogram_float(
                WF_APPROVAL_WAIT, "Time a plan waited for a human answer (or gave up).", "s"
            ).record(
                _seconds(decided, answer.at if answer else closed_at),
                {"decision": answer.decision if answer else "none", **attrs},
            )
    if state.duplicate_alerts:
        meter.create_counter(
            WF_ALERTS_DEDUPLICATED, "Alerts delivered again and ignored (same fingerprint and status)."
        ).add(state.duplicate_alerts)
    meter.create_histogram_float(WF_INCIDENT_COST, "LLM spend per incident, in US dollars.", "USD").record(
        state.llm_usage.cost_usd, attrs
    )


def _seconds(start: datetime, end: datetime) -> float:
    return max((end - start).total_seconds(), 0.0)
