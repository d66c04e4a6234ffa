"""Correlation at settle: a newly settled incident joins an open incident of a neighbour.

The API keys incidents by service (`Alert.incident_key`), so every replica sends an alert to
the same workflow without shared state. Topology-aware correlation (rca/correlation.py's rule:
services within `hops` dependency edges of each other, same cluster and namespace, while the
other incident is recent) happens here instead, once per incident, when its settle window ends:
the neighbours' incident ids follow from the same key, so finding them is a describe per
neighbour, not a search.

An incident that settled and stayed (phase triage up to the approval gate) can be joined; one
still settling only if it comes first in a strict order: lower dependency rank (fewer levels of
dependencies below its service: causes tend to sit below their symptoms), then earlier run
start, then lower workflow id. A storm's incidents settling at the same moment thus collapse
towards the dependency, and two of them never join each other, which would leave no one
holding the alerts. Nothing
joins an incident whose remediation already runs. The alerts go over
as a plain signal: if the other incident closed in between, the signal fails and this one is
handled on its own, so no alert is ever dropped. A retried signal is absorbed by the other
incident's fingerprint de-duplication.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from models.alert import AlertBatch
from models.constants import SA_PHASE, SA_SERVICE, SIGNAL_ALERTS, incident_workflow_id
from models.incident import IncidentResult, JoinInput, JoinResult, Outcome, Phase
from rca.topology import Topology

# Phases of an incident that settled and stayed, and has not started to act.
JOINABLE = frozenset(
    {
        Phase.TRIAGE,
        Phase.GATHERING,
        Phase.DIAGNOSING,
        Phase.PLANNING,
        Phase.REVIEWING,
        Phase.POLICY,
        Phase.AWAITING_APPROVAL,
    }
)
STILL_SETTLING = str(Phase.SETTLING)
MAX_NEIGHBOURS = 50  # a hub's neighbours are looked up at most this many at a time
MAX_FOLLOWS = 3  # correlated incidents followed to the one holding their alerts


@dataclass(frozen=True)
class Candidate:
    distance: int
    started: datetime
    workflow_id: str
    service: str  # the neighbour's
    phase: str
    holder_service: str  # the service of the incident holding the alerts (the neighbour's, unless followed)


class CorrelationActivities:
    def __init__(self, topology: Topology | None, *, hops: int, window: timedelta) -> None:
        self._topology = topology
        self._hops = hops
        self._window = window

    @activity.defn(name="join_related_incident")
    async def join_related_incident(self, input: JoinInput) -> JoinResult:
        if self._topology is None or self._hops < 1:
            return JoinResult()
        first = input.alerts[0]
        neighbours = self._topology.within_distances(first.service, self._hops)
        client = activity.client()
        candidates: list[Candidate] = []
        for service, distance in sorted(neighbours.items(), key=lambda kv: (kv[1], kv[0])):
            if distance == 0 or len(candidates) >= MAX_NEIGHBOURS:
                continue
            workflow_id = incident_workflow_id(first.model_copy(update={"service": service}).incident_key())
            if workflow_id == input.incident_id:
                continue
            found = await _open_incident(client, workflow_id, self._window)
            if found is not None and found.workflow_id != input.incident_id:
                candidates.append(
                    Candidate(distance, found.started, found.workflow_id, service, found.phase, found.service)
                )
        if any(c.phase == STILL_SETTLING for c in candidates):
            # Joining one still settling follows a strict order, so no two join each other:
            # towards the dependency (the likelier cause), then the incident that opened first.
            rank = self._topology.dependency_rank
            mine = (await client.get_workflow_handle(input.incident_id).describe()).start_time
            me = (rank(first.service), mine, input.incident_id)
            candidates = [
                c
                for c in candidates
                if c.phase != STILL_SETTLING or (rank(c.holder_service), c.started, c.workflow_id) < me
            ]
        # The closest relation wins; among equals, the incident that opened most recently.
        candidates.sort(key=lambda c: (c.distance, -c.started.timestamp(), c.workflow_id))
        batch = AlertBatch(alerts=input.alerts, received_at=datetime.now(UTC))
        for candidate in candidates:
            try:
                await client.get_workflow_handle(candidate.workflow_id).signal(SIGNAL_ALERTS, batch)
            except RPCError as exc:
                if exc.status == RPCStatusCode.NOT_FOUND:  # it closed in between: try the next
                    continue
                raise
            hops = "hop" if candidate.distance == 1 else "hops"
            return JoinResult(
                joined=candidate.workflow_id,
                reason=(
                    f"{first.service} is {candidate.distance} dependency {hops} from {candidate.service}, "
                    f"whose alerts are in incident {candidate.workflow_id}, open ({candidate.phase})"
                ),
            )
        return JoinResult()


@dataclass(frozen=True)
class OpenIncident:
    workflow_id: str
    started: datetime  # the current run's start
    phase: str
    service: str


async def _open_incident(client: Client, workflow_id: str, window: timedelta) -> OpenIncident | None:
    """The open incident under this id, if it may be joined, or None. A neighbour's incident
    that closed as correlated is followed to the incident holding its alerts (at most
    MAX_FOLLOWS times), so a storm's chains collapse to one incident."""
    for _ in range(MAX_FOLLOWS + 1):
        handle = client.get_workflow_handle(workflow_id, result_type=IncidentResult)
        try:
            described = await handle.describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
        if described.status == WorkflowExecutionStatus.RUNNING:
            return _joinable(workflow_id, described, window)
        if described.status != WorkflowExecutionStatus.COMPLETED:
            return None
        result = await handle.result()
        if result.outcome != Outcome.CORRELATED or result.joined is None:
            return None
        workflow_id = result.joined
    return None


def _joinable(
    workflow_id: str, described: WorkflowExecutionDescription, window: timedelta
) -> OpenIncident | None:
    attributes = described.typed_search_attributes
    phase = attributes.get(SA_PHASE)
    if phase not in JOINABLE and phase != STILL_SETTLING:
        return None
    if datetime.now(UTC) - described.start_time > window:
        return None  # a long-open incident must not absorb new failures
    return OpenIncident(workflow_id, described.start_time, str(phase), attributes.get(SA_SERVICE) or "")
