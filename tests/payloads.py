"""Realistic webhook payloads for tests."""

from __future__ import annotations

from typing import Any


def alertmanager_alert(
    alertname: str,
    service: str,
    *,
    status: str = "firing",
    severity: str = "critical",
    fingerprint: str | None = None,
    summary: str = "Pod is restarting repeatedly",
    extra_labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {
            "alertname": alertname,
            "service": service,
            "severity": severity,
            "namespace": "prod",
            "pod": f"{service}-7d9f8b6c5-x2k4q",
            **(extra_labels or {}),
        },
        "annotations": {
            "summary": summary,
            "description": f"{service} restarted 5 times in the last 10 minutes.",
            "runbook_url": "https://runbooks.example.com/service-down",
        },
        "startsAt": "2026-11-21T10:00:00.000Z",
        "endsAt": "2026-11-21T10:30:00.000Z" if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example.com/graph?g0.expr=up%3D%3D0",
        "fingerprint": fingerprint or f"{alertname}-{service}".lower()[:60],
    }


def alertmanager_payload(*alerts: dict[str, Any], status: str | None = None) -> dict[str, Any]:
    first = alerts[0]
    return {
        "version": "4",
        "groupKey": '{{}}:{{alertname="{}"}}'.format(first["labels"]["alertname"]),
        "truncatedAlerts": 0,
        "status": status or first["status"],
        "receiver": "firebreak",
        "groupLabels": {"alertname": first["labels"]["alertname"]},
        "commonLabels": {"alertname": first["labels"]["alertname"], "namespace": "prod"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example.com",
        "alerts": list(alerts),
    }
