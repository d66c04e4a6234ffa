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
    edge, frontend, backend, unrelated = (unique_service() for _ in range(4))
    stack = await make_stack(topology_file=chain(tmp_path / "topology.yaml", edge, frontend, backend))
    root = await open_incident(stack, backend)
    await stack.wait_for(root, past_settling)

    symptom = await open_incident(stack, frontend)
    result = await stack.handle(symptom).result()
    assert result.outcome == Outcome.CORRELATED and result.joined == root, result
    assert root in result.summary and f"{frontend} is 1 dependency hop from {backend}" in result.summary
    state = await stack.wait_for(root, lambda s: len(s.alerts) == 2)
    assert {a.service for a in state.alerts.values()} == {backend, frontend}
    assert state.outcome is None, "the root incident goes on"

    # The edge's neighbour is the frontend, whose incident closed into the root's: followed there.
    further = await open_incident(stack, edge)
    result = await stack.handle(further).result()
    assert result.outcome == Outcome.CORRELATED and result.joined == root, result
    state = await stack.wait_for(root, lambda s: len(s.alerts) == 3)
    assert {a.service for a in state.alerts.values()} == {backend, frontend, edge}

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


async def test_a_settling_neighbour_is_joined_only_if_it_comes_first_and_other_clusters_never_join(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    """A storm's incidents settle at about the same moment. Each may join a neighbour that is
    still settling only if that one comes first in a strict order (its service is lower in the
    dependencies, then it opened first), so they collapse towards the dependency and two never
    join each other (both would close, with no one left holding the alerts)."""
    frontend, backend, caller, callee, client, server = (unique_service() for _ in range(6))
    topology = tmp_path / "topology.yaml"
    services = {
        frontend: {"depends_on": [backend]},
        backend: {"kind": "service"},
        caller: {"depends_on": [callee]},
        callee: {"kind": "service"},
        client: {"depends_on": [server]},
        server: {"kind": "service"},
    }
    topology.write_text(yaml.safe_dump({"services": services}))
    stack = await make_stack(topology_file=topology)

    # The backend's incident opens first and settles slowly; the frontend's opens after it and
    # settles at once: it joins the backend's, which is still settling.
    first = await start_incident(
        stack, alertmanager_alert("KubePodCrashLooping", backend), max_signals_per_run=1000, settle_seconds=20
    )
    later = await open_incident(stack, frontend)
    result = await stack.handle(later).result()
    assert result.outcome == Outcome.CORRELATED and first.id in result.summary, result
    state = await stack.wait_for(first.id, lambda s: len(s.alerts) == 2)
    assert state.phase == Phase.SETTLING, "it joined an incident still settling"
    assert {a.service for a in state.alerts.values()} == {backend, frontend}

    # The callee's incident opens first and settles before the caller's, which opened after it:
    # it does not join that one, and goes on alone.
    early = await start_incident(
        stack, alertmanager_alert("KubePodCrashLooping", callee), max_signals_per_run=1000, settle_seconds=5
    )
    late = await start_incident(
        stack, alertmanager_alert("KubePodCrashLooping", caller), max_signals_per_run=1000, settle_seconds=30
    )
    state = await stack.wait_for(early.id, past_settling)
    assert state.outcome is None and state.phase == Phase.AWAITING_APPROVAL, state.outcome
    assert (await stack.state(late.id)).phase == Phase.SETTLING, "the neighbour was still settling"

    # The client's incident opens first and settles first; the server's, which it depends on,
    # opened after it and is still settling: the client joins it all the same (the dependency).
    dependant = await start_incident(
        stack, alertmanager_alert("KubePodCrashLooping", client), max_signals_per_run=1000, settle_seconds=5
    )
    dependency = await start_incident(
        stack, alertmanager_alert("KubePodCrashLooping", server), max_signals_per_run=1000, settle_seconds=30
    )
    result = await dependant.result()
    assert result.outcome == Outcome.CORRELATED and result.joined == dependency.id, result
    assert (await stack.state(dependency.id)).phase == Phase.SETTLING

    # The same caller in another cluster is another failure: no join though the callee's is open.
    other = await open_in_cluster(stack, caller, "eu-2")
    state = await stack.wait_for(other, past_settling)
    assert state.outcome is None and state.phase == Phase.AWAITING_APPROVAL, state.outcome
    for handle in (first, late, dependency):
        await handle.terminate("test done")


async def open_in_cluster(stack: Stack, service: str, cluster: str) -> str:
    alert = alertmanager_alert("KubePodCrashLooping", service, extra_labels={"cluster": cluster})
    response = await stack.post_alertmanager(alertmanager_payload(alert))
    assert response.status_code == 202, response.text
    (incident_id,) = response.json()["incidents"]
    return str(incident_id)
