"""The demo alert: what Alertmanager POSTs when the checkout service crash-loops.

`make demo`, the dev-stack test and the docs all send this payload, so it is built here
once. Firing and resolved payloads carry the same labels and fingerprint, exactly as
Alertmanager would send them for one alert, so the resolved one closes the same incident.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any, Literal

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
