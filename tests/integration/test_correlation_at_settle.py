"""Correlation at settle against the real stack: the API keys incidents by service, and a
settled incident hands its alerts to an open incident of a neighbouring service (the
topology's), with nothing lost on the way. Real Temporal, worker and API."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest
import yaml

from models.incident import IncidentState, Outcome, Phase
from tests.integration.conftest import (
    Stack,
    StackFactory,
    open_incident,
    resolve,
    start_incident,
    unique_service,
)
from tests.payloads import alertmanager_alert, alertmanager_payload

pytestmark = pytest.mark.integration

SETTLED = {Phase.AWAITING_APPROVAL, Phase.CLOSED}


def chain(path: Path, *services: str) -> Path:
    """A topology where each service depends on the next one."""
    entries: dict[str, dict[str, object]] = {services[-1]: {"kind": "service"}}
    for caller, callee in pairwise(services):
        entries[caller] = {"depends_on": [callee]}
    path.write_text(yaml.safe_dump({"services": entries}))
    return path


def past_settling(state: IncidentState) -> bool:
    return state.phase in SETTLED


async def test_a_neighbours_alerts_and_their_resolution_join_the_open_incident(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    frontend, backend, unrelated = unique_service(), unique_service(), unique_service()
    stack = await make_stack(topology_file=chain(tmp_path / "topology.yaml", frontend, backend))
    root = await open_incident(stack, backend)
    await stack.wait_for(root, past_settling)

    symptom = await open_incident(stack, frontend)
    result = await stack.handle(symptom).result()
    assert result.outcome == Outcome.CORRELATED, result
    assert root in result.summary and f"{frontend} is 1 dependency hop from {backend}" in result.summary
    state = await stack.wait_for(root, lambda s: len(s.alerts) == 2)
    assert {a.service for a in state.alerts.values()} == {backend, frontend}
    assert state.outcome is None, "the root incident goes on"

    # The symptom resolves: its resolution reaches the root incident through a new run.
    await resolve(stack, frontend)
    state = await stack.wait_for(
        root, lambda s: [a.status for a in s.alerts.values() if a.service == frontend] == ["resolved"]
    )
    assert not state.all_resolved, "the root's own alert still fires"

    # No dependency, no join.
    alone = await open_incident(stack, unrelated)
    state = await stack.wait_for(alone, past_settling)
    assert state.outcome is None and state.phase == Phase.AWAITING_APPROVAL
    assert [a.service for a in state.alerts.values()] == [unrelated]


async def test_a_neighbour_still_settling_is_not_joined_and_other_clusters_never_join(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    """Incidents settling at the same time could each join the other and both close, with no
    one left holding the alerts: only an incident that settled and stayed can be joined."""
    frontend, backend = unique_service(), unique_service()
    stack = await make_stack(topology_file=chain(tmp_path / "topology.yaml", frontend, backend))
    slow = await start_incident(
        stack, alertmanager_alert("KubePodCrashLooping", backend), max_signals_per_run=1000, settle_seconds=20
    )
    quick = await open_incident(stack, frontend)
    state = await stack.wait_for(quick, past_settling)
    assert state.outcome is None and state.phase == Phase.AWAITING_APPROVAL, state.outcome
    assert (await stack.state(slow.id)).phase == Phase.SETTLING, "the neighbour was still settling"

    # The same neighbour in another cluster is another failure: no join though one is open.
    other = await open_in_cluster(stack, backend, "eu-2")
    state = await stack.wait_for(other, past_settling)
    assert state.outcome is None and state.phase == Phase.AWAITING_APPROVAL, state.outcome
    await slow.terminate("test done")


async def open_in_cluster(stack: Stack, service: str, cluster: str) -> str:
    alert = alertmanager_alert("KubePodCrashLooping", service, extra_labels={"cluster": cluster})
    response = await stack.post_alertmanager(alertmanager_payload(alert))
    assert response.status_code == 202, response.text
    (incident_id,) = response.json()["incidents"]
    return str(incident_id)
