"""The demo: the alert Alertmanager POSTs when the checkout service crash-loops, and the
follower that sends it and narrates the incident it opens (`make demo`).

`make demo`, the dev-stack test and the docs all send this payload, so it is built here
once. Firing and resolved payloads carry the same labels and fingerprint, exactly as
Alertmanager would send them for one alert, so the resolved one closes the same incident.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TextIO

import httpx
from pydantic import SecretStr
from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.service import RPCError

from models.constants import INCIDENT_WORKFLOW_ID_PREFIX, QUERY_STATE, SIGNAL_APPROVE
from models.incident import IncidentState, Phase

if TYPE_CHECKING:
    from devstack.processes import Endpoints

DEMO_SERVICE = "checkout"
DEMO_ALERTNAME = "KubePodCrashLooping"
DEMO_RECEIVER = "firebreak"

# Alertmanager's "no end time" (Go's zero time).
_ZERO_TIME = "0001-01-01T00:00:00Z"


def demo_labels(service: str = DEMO_SERVICE) -> dict[str, str]:
    return {
        "alertname": DEMO_ALERTNAME,
        "severity": "critical",
        "service": service,
        "namespace": "shop",
        "cluster": "demo",
        "pod": f"{service}-7d9f8b6c5d-x2x9q",
        "container": service,
        "job": "kube-state-metrics",
    }


def demo_fingerprint(labels: dict[str, str]) -> str:
    """A stable 16-hex-digit fingerprint of the label set, the shape Alertmanager uses."""
    canonical = json.dumps(labels, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def demo_payload(
    status: Literal["firing", "resolved"] = "firing",
    *,
    service: str = DEMO_SERVICE,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
) -> dict[str, Any]:
    """An Alertmanager webhook (version 4) body for the demo alert.

    Pass the same `starts_at` for the firing and the resolved payload of one alert; a
    resolved payload gets `endsAt` (now, unless given).
    """
    now = datetime.now(UTC)
    starts = starts_at or now
    labels = demo_labels(service)
    ends = _rfc3339(ends_at or now) if status == "resolved" else _ZERO_TIME
    annotations = {
        "summary": f"Pod shop/{labels['pod']} is crash looping",
        "description": (
            f"Pod shop/{labels['pod']} (container {service}) is in CrashLoopBackOff: "
            "it restarted 5 times in the last 10 minutes."
        ),
        "runbook_url": "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping",
    }
    group_labels = {"alertname": DEMO_ALERTNAME, "service": service}
    return {
        "version": "4",
        "groupKey": '{}/{severity="critical"}:'
        + "{"
        + ", ".join(f'{k}="{v}"' for k, v in sorted(group_labels.items()))
        + "}",
        "truncatedAlerts": 0,
        "status": status,
        "receiver": DEMO_RECEIVER,
        "groupLabels": group_labels,
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": "http://alertmanager.demo.svc:9093",
        "alerts": [
            {
                "status": status,
                "labels": labels,
                "annotations": annotations,
                "startsAt": _rfc3339(starts),
                "endsAt": ends,
                "generatorURL": (
                    "http://prometheus.demo.svc:9090/graph?g0.expr="
                    "max_over_time%28kube_pod_container_status_waiting_reason%7B"
                    "reason%3D%22CrashLoopBackOff%22%7D%5B5m%5D%29+%3E%3D+1&g0.tab=1"
                ),
                "fingerprint": demo_fingerprint(labels),
            }
        ],
    }


# --- the follower ----------------------------------------------------------------------------


async def follow_demo(
    client: Client, ep: Endpoints, api_token: SecretStr, say: Callable[[str], None]
) -> None:
    """Send the demo alert, then follow the incident; resolve the alert once verifying."""
    starts_at = datetime.now(UTC)
    headers = {"Authorization": f"Bearer {api_token.get_secret_value()}"}
    async with httpx.AsyncClient(base_url=ep.api_url, headers=headers, timeout=15) as http:
        response = await http.post("/alerts/alertmanager", json=demo_payload("firing", starts_at=starts_at))
        if response.status_code != 202:
            say(f"demo: the API answered {response.status_code}: {response.text}")
            return
        incident_id = response.json()["incidents"][0]
        key = incident_id.removeprefix(INCIDENT_WORKFLOW_ID_PREFIX)
        url = ep.workflow_url(client.namespace, incident_id)
        say(
            f"demo: sent {demo_payload()['alerts'][0]['labels']['alertname']} (critical) for "
            f"service checkout; incident {incident_id}\n"
            f"demo: watch it in the Temporal UI: {url}"
        )
        handle = client.get_workflow_handle(incident_id)
        phase: Phase | None = None
        resolved_sent = False
        while True:
            try:
                state = await handle.query(QUERY_STATE, result_type=IncidentState)
            except (WorkflowQueryFailedError, RPCError):
                await asyncio.sleep(1)
                continue
            if state.phase != phase:
                phase = state.phase
                say(f"demo: {incident_id} is now {phase.value}")
                if phase == Phase.AWAITING_APPROVAL:
                    say(_approval_help(state, key, url))
            if state.phase == Phase.VERIFYING and not resolved_sent:
                # What Alertmanager sends once the restarted service is healthy again.
                response = await http.post(
                    "/alerts/alertmanager",
                    json=demo_payload("resolved", starts_at=starts_at),
                )
                resolved_sent = True
                say(
                    "demo: the service recovered; sent the resolved alert "
                    f"(API answered {response.status_code})"
                )
            if state.phase == Phase.CLOSED:
                outcome = state.outcome.value if state.outcome else "unknown"
                why = "; ".join(state.decisions[-1].reasons) if state.decisions else ""
                say(
                    f"demo: {incident_id} closed: {outcome} ({why})\n"
                    f"demo: the audit trail is the workflow history: {url} "
                    f"(or `firebreak audit {key}`)"
                )
                return
            await asyncio.sleep(1)


def _approval_help(state: IncidentState, key: str, url: str) -> str:
    signal_data = json.dumps(
        {"by": "your-name", "reason": "demo: restart looks right", "plan_hash": state.plan_hash}
    )
    reasons = "; ".join(state.policy.reasons) if state.policy else "policy requires it"
    return (
        f"demo: waiting for a human ({reasons}).\n"
        f"  Approve in the UI: {url}\n"
        f"    More Actions -> Send a Signal -> {SIGNAL_APPROVE}, with data (also shown in the\n"
        f"    workflow's current details):\n"
        f"    {signal_data}\n"
        f"  or from a shell:\n"
        f"    firebreak approve {key} --by your-name --reason 'restart looks right'"
    )


def report_demo(task: asyncio.Task[None], err: TextIO) -> None:
    if task.cancelled():
        return
    if (exc := task.exception()) is not None:
        print(f"demo: stopped following the incident: {type(exc).__name__}: {exc}", file=err)
