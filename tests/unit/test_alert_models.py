"""Alert models: webhook payloads in, one validated `Alert` shape out."""

from __future__ import annotations

import copy
import random
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from models.alert import (
    MAX_ALERTS_PER_PAYLOAD,
    MAX_LABEL_VALUE,
    MAX_LABELS,
    Alert,
    AlertmanagerPayload,
    AlertStatus,
    GenericAlert,
    Severity,
    fingerprint_of,
    slug,
)

KEY_SHAPE = re.compile(r"^[a-z0-9._-]+$")
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


# --- Realistic Alertmanager v4 payloads ------------------------------------------------------


def node_filesystem_alert(**overrides: Any) -> dict[str, Any]:
    """What node-exporter's mixin sends when a filesystem will fill within hours."""
    alert: dict[str, Any] = {
        "status": "firing",
        "labels": {
            "alertname": "NodeFilesystemSpaceFillingUp",
            "device": "/dev/nvme0n1p1",
            "fstype": "ext4",
            "instance": "10.0.3.17:9100",
            "job": "node",
            "mountpoint": "/var",
            "severity": "warning",
        },
        "annotations": {
            "summary": "Filesystem is predicted to run out of space within the next 24 hours.",
            "description": "Filesystem on /dev/nvme0n1p1 at 10.0.3.17:9100 has only 14.2% "
            "available space left and is filling up.",
            "runbook_url": "https://runbooks.prometheus-operator.dev/runbooks/node/"
            "nodefilesystemspacefillingup",
        },
        # Go's RFC 3339 with nanoseconds, as Alertmanager really sends it.
        "startsAt": "2026-11-21T10:14:38.672486657Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus-0:9090/graph?g0.expr=node_filesystem_avail_bytes",
        "fingerprint": "a1b2c3d4e5f60718",
    }
    alert.update(overrides)
    return alert


def crashloop_alert(**overrides: Any) -> dict[str, Any]:
    """kube-prometheus' KubePodCrashLooping, without a fingerprint (older senders)."""
    alert: dict[str, Any] = {
        "status": "firing",
        "labels": {
            "alertname": "KubePodCrashLooping",
            "cluster": "prod-eu-1",
            "namespace": "payments",
            "pod": "checkout-7d9f8b6c5-x2k4q",
            "container": "checkout",
            "app": "checkout",
            "severity": "critical",
        },
        "annotations": {
            "description": "Pod payments/checkout-7d9f8b6c5-x2k4q (checkout) is in waiting "
            "state (reason: CrashLoopBackOff).",
        },
        "startsAt": "2026-11-21T10:00:00+02:00",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus-k8s-0:9090/graph?g0.expr=kube_pod_container_status",
    }
    alert.update(overrides)
    return alert


def payload(*alerts: dict[str, Any], status: str = "firing") -> dict[str, Any]:
    labels = alerts[0].get("labels") if alerts else None
    first = labels.get("alertname", "x") if isinstance(labels, dict) else "x"
    return {
        "receiver": "firebreak",
        "status": status,
        "alerts": list(alerts),
        "groupLabels": {"alertname": first},
        "commonLabels": {"alertname": first},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager-0:9093",
        "version": "4",
        "groupKey": f'{{}}/{{severity=~"warning|critical"}}:{{alertname="{first}"}}',
        "truncatedAlerts": 0,
    }


def parse(raw: dict[str, Any]) -> list[Alert]:
    return AlertmanagerPayload.model_validate(raw).to_alerts()


def error_locs(exc: pytest.ExceptionInfo[ValidationError]) -> list[tuple[int | str, ...]]:
    return [tuple(err["loc"]) for err in exc.value.errors()]


class TestAlertmanagerPayload:
    def test_firing_alert(self) -> None:
        [alert] = parse(payload(node_filesystem_alert()))

        assert alert.source == "alertmanager"
        assert alert.status is AlertStatus.FIRING
        assert alert.name == "NodeFilesystemSpaceFillingUp"
        assert alert.fingerprint == "a1b2c3d4e5f60718"
        # No workload label, and job "node" is the exporter: the host it watches is the target.
        assert alert.service == "10.0.3.17"
        assert alert.severity is Severity.P3
        assert alert.labels["mountpoint"] == "/var"
        assert alert.summary.startswith("Filesystem is predicted")
        assert alert.starts_at == datetime(2026, 11, 21, 10, 14, 38, 672486, tzinfo=UTC)
        assert alert.starts_at.tzinfo is not None
        assert alert.ends_at is None  # 0001-01-01 is Alertmanager's "not ended"
        assert alert.generator_url is not None
        assert alert.generator_url.startswith("http://prometheus-0:9090/")

    def test_resolved_alert_keeps_its_end(self) -> None:
        raw = node_filesystem_alert(status="resolved", endsAt="2026-11-21T11:02:00.5Z")
        [alert] = parse(payload(raw, status="resolved"))

        assert alert.status is AlertStatus.RESOLVED
        assert alert.ends_at == datetime(2026, 11, 21, 11, 2, 0, 500000, tzinfo=UTC)

    def test_offsets_are_kept_as_instants(self) -> None:
        [alert] = parse(payload(crashloop_alert()))
        assert alert.starts_at == datetime(2026, 11, 21, 8, 0, tzinfo=UTC)

    def test_naive_timestamps_are_taken_as_utc(self) -> None:
        [alert] = parse(payload(crashloop_alert(startsAt="2026-11-21T08:00:00")))
        assert alert.starts_at == datetime(2026, 11, 21, 8, 0, tzinfo=UTC)

    def test_multiple_alerts_in_order(self) -> None:
        raw = payload(
            crashloop_alert(),
            node_filesystem_alert(),
            crashloop_alert(
                status="resolved",
                labels={**crashloop_alert()["labels"], "pod": "checkout-7d9f8b6c5-9zz1a"},
                endsAt="2026-11-21T10:05:00Z",
            ),
        )
        alerts = parse(raw)

        assert [a.name for a in alerts] == [
            "KubePodCrashLooping",
            "NodeFilesystemSpaceFillingUp",
            "KubePodCrashLooping",
        ]
        assert [a.status for a in alerts] == ["firing", "firing", "resolved"]
        # Two pods of one deployment are two alerts, not one.
        assert alerts[0].fingerprint != alerts[2].fingerprint

    def test_missing_fingerprint_is_computed_and_stable(self) -> None:
        firing = crashloop_alert()
        # The same alert resolving: label order differs, status and times differ.
        resolved = crashloop_alert(
            status="resolved",
            labels=dict(reversed(list(firing["labels"].items()))),
            endsAt="2026-11-21T10:20:00Z",
        )
        [first] = parse(payload(firing))
        [again] = parse(payload(copy.deepcopy(firing)))
        [closing] = parse(payload(resolved, status="resolved"))

        assert re.fullmatch(r"[0-9a-f]{32}", first.fingerprint)
        assert first.fingerprint == again.fingerprint == closing.fingerprint
        assert first.fingerprint == fingerprint_of("KubePodCrashLooping", firing["labels"])

    def test_unknown_fields_are_ignored(self) -> None:
        raw = payload(crashloop_alert(silencedBy=[]))
        raw["newField"] = {"from": "a future Alertmanager"}
        assert len(parse(raw)) == 1

    @pytest.mark.parametrize(
        ("labels", "service"),
        [
            ({"service": "checkout", "app": "web", "job": "api", "instance": "h:1"}, "checkout"),
            ({"app": "web", "job": "api", "instance": "h:1"}, "web"),
            ({"job": "api", "instance": "h:1"}, "api"),
            ({"instance": "10.0.0.5:8080"}, "10.0.0.5"),
            ({"service": "", "app": "web"}, "web"),  # empty labels do not count
            ({}, "InstanceDown"),  # nothing names a service: the alert does
        ],
    )
    def test_service_label_precedence(self, labels: dict[str, str], service: str) -> None:
        raw = crashloop_alert(labels={"alertname": "InstanceDown", **labels})
        [alert] = parse(payload(raw))
        assert alert.service == service

    @pytest.mark.parametrize(
        ("label", "severity"),
        [
            ("critical", Severity.P1),
            ("warning", Severity.P3),
            ("unknown", Severity.P3),
            ("P2", Severity.P2),
            ("p2", Severity.P2),
            (" Critical ", Severity.P1),
            ("info", Severity.P4),
            (None, Severity.P3),
        ],
    )
    def test_severity_label_mapping(self, label: str | None, severity: Severity) -> None:
        labels = {"alertname": "HighErrorRate", "service": "checkout"}
        if label is not None:
            labels["severity"] = label
        [alert] = parse(payload(crashloop_alert(labels=labels)))
        assert alert.severity is severity


class TestIncidentKey:
    def test_cluster_and_namespace_scope_the_key(self) -> None:
        [alert] = parse(payload(crashloop_alert()))
        assert alert.incident_key() == "prod-eu-1-payments-checkout"

    def test_without_cluster_or_namespace_the_service_is_the_key(self) -> None:
        [alert] = parse(payload(node_filesystem_alert()))
        assert alert.incident_key() == "10.0.3.17"

    def test_namespace_only(self) -> None:
        labels = {"alertname": "HighErrorRate", "namespace": "shop", "service": "cart"}
        [alert] = parse(payload(crashloop_alert(labels=labels)))
        assert alert.incident_key() == "shop-cart"

    def test_key_is_slug_safe(self) -> None:
        labels = {
            "alertname": "HighErrorRate",
            "cluster": "GKE/Europe West 1",
            "namespace": "Shop_Prod",
            "service": "Checkout API (v2)!",
        }
        [alert] = parse(payload(crashloop_alert(labels=labels)))
        key = alert.incident_key()
        assert KEY_SHAPE.fullmatch(key)
        assert key == "gke-europe-west-1-shop_prod-checkout-api-v2"

    def test_huge_label_values_give_bounded_distinct_keys(self) -> None:
        def key_for(tail: str) -> str:
            labels = {
                "alertname": "HighErrorRate",
                "cluster": "c" * (MAX_LABEL_VALUE - 1) + tail,
                "namespace": "n" * MAX_LABEL_VALUE,
                "service": "checkout",
            }
            [alert] = parse(payload(crashloop_alert(labels=labels)))
            return alert.incident_key()

        first, second = key_for("a"), key_for("b")
        for key in (first, second):
            assert KEY_SHAPE.fullmatch(key)
            assert len(key) <= 120
        # Truncation must not merge incidents that differ only past the cut.
        assert first != second

    def test_service_with_no_ascii_still_has_a_key(self) -> None:
        labels = {"alertname": "HighErrorRate", "service": "支付", "severity": "critical"}
        [alert] = parse(payload(crashloop_alert(labels=labels)))
        key = alert.incident_key()
        assert KEY_SHAPE.fullmatch(key)
        assert len(key) <= 120


class TestBadAlertmanagerPayloads:
    @staticmethod
    def refused(raw: dict[str, Any]) -> list[tuple[int | str, ...]]:
        with pytest.raises(ValidationError) as exc:
            AlertmanagerPayload.model_validate(raw)
        return error_locs(exc)

    def test_wrong_version(self) -> None:
        raw = payload(crashloop_alert())
        raw["version"] = "3"
        assert self.refused(raw) == [("version",)]

    def test_missing_alerts(self) -> None:
        raw = payload(crashloop_alert())
        del raw["alerts"]
        assert self.refused(raw) == [("alerts",)]

    def test_empty_alerts(self) -> None:
        assert self.refused(payload()) == [("alerts",)]

    def test_too_many_alerts(self) -> None:
        raw = payload(*[crashloop_alert() for _ in range(MAX_ALERTS_PER_PAYLOAD + 1)])
        assert self.refused(raw) == [("alerts",)]

    def test_alert_without_alertname(self) -> None:
        raw = crashloop_alert()
        del raw["labels"]["alertname"]
        assert self.refused(payload(node_filesystem_alert(), raw)) == [("alerts", 1, "labels")]

    def test_alert_with_empty_alertname(self) -> None:
        raw = crashloop_alert(labels={**crashloop_alert()["labels"], "alertname": ""})
        assert self.refused(payload(raw)) == [("alerts", 0, "labels")]

    def test_start_is_not_a_date(self) -> None:
        raw = payload(crashloop_alert(startsAt="five minutes ago"))
        assert self.refused(raw) == [("alerts", 0, "startsAt")]

    def test_missing_start(self) -> None:
        raw = crashloop_alert()
        del raw["startsAt"]
        assert self.refused(payload(raw)) == [("alerts", 0, "startsAt")]

    def test_unknown_status(self) -> None:
        raw = payload(crashloop_alert(status="pending"))
        assert self.refused(raw) == [("alerts", 0, "status")]

    def test_labels_not_a_mapping(self) -> None:
        raw = payload(crashloop_alert(labels=["alertname=KubePodCrashLooping"]))
        assert self.refused(raw) == [("alerts", 0, "labels")]

    def test_label_value_not_a_string(self) -> None:
        raw = crashloop_alert()
        raw["labels"]["replicas"] = 3
        assert self.refused(payload(raw)) == [("alerts", 0, "labels", "replicas")]

    def test_too_many_labels(self) -> None:
        raw = crashloop_alert()
        raw["labels"].update({f"label_{i}": "x" for i in range(MAX_LABELS)})
        assert self.refused(payload(raw)) == [("alerts", 0, "labels")]

    def test_oversized_label_value(self) -> None:
        raw = crashloop_alert()
        raw["labels"]["pod"] = "p" * (MAX_LABEL_VALUE + 1)
        assert self.refused(payload(raw)) == [("alerts", 0, "labels", "pod")]

    def test_oversized_annotation_value(self) -> None:
        raw = crashloop_alert()
        raw["annotations"]["description"] = "d" * 10_000
        assert self.refused(payload(raw)) == [("alerts", 0, "annotations", "description")]

    @pytest.mark.parametrize("value", [-1, False, True, "3", 1.5])
    def test_truncated_alerts_not_a_count(self, value: object) -> None:
        # Found by the negative API fuzzing: `false` was read as 0 and the payload accepted.
        raw = payload(crashloop_alert())
        raw["truncatedAlerts"] = value
        assert self.refused(raw) == [("truncatedAlerts",)]

    def test_truncated_alerts_as_json_schema_counts_integers(self) -> None:
        raw = payload(crashloop_alert())
        raw["truncatedAlerts"] = 35.0  # an integer to JSON Schema, and to the API's schema
        assert AlertmanagerPayload.model_validate(raw).truncated_alerts == 35

    @pytest.mark.parametrize("label", ["alertname", "service"])
    def test_a_payload_that_validates_converts(self, label: str) -> None:
        raw = crashloop_alert()
        raw["labels"][label] = "x" * 300
        try:
            parsed = AlertmanagerPayload.model_validate(payload(raw))
        except ValidationError as exc:
            assert all(err["loc"][:3] == ("alerts", 0, "labels") for err in exc.errors())
        else:
            assert len(parsed.to_alerts()) == 1

    def test_every_error_is_reported_at_once(self) -> None:
        bad_start = crashloop_alert(startsAt="soon")
        no_name = crashloop_alert()
        del no_name["labels"]["alertname"]
        raw = payload(bad_start, no_name)
        raw["version"] = "5"
        assert sorted(map(str, self.refused(raw))) == sorted(
            map(str, [("version",), ("alerts", 0, "startsAt"), ("alerts", 1, "labels")])
        )


# --- Generic alerts --------------------------------------------------------------------------


class TestGenericAlert:
    def test_defaults(self) -> None:
        alert = GenericAlert.model_validate({"name": "HighErrorRate", "service": "checkout"})
        converted = alert.to_alert(NOW)

        assert converted.source == "generic"
        assert converted.status is AlertStatus.FIRING
        assert converted.severity is Severity.P3
        assert converted.starts_at == NOW
        assert converted.ends_at is None
        assert converted.labels == {"alertname": "HighErrorRate", "service": "checkout"}
        assert converted.annotations == {}
        assert converted.summary == "HighErrorRate"
        assert converted.incident_key() == "checkout"
        assert re.fullmatch(r"[0-9a-f]{32}", converted.fingerprint)
        # Same alert sent again later: same fingerprint, so it deduplicates.
        later = alert.to_alert(NOW + timedelta(minutes=5))
        assert later.fingerprint == converted.fingerprint

    def test_explicit_fields_win(self) -> None:
        alert = GenericAlert.model_validate(
            {
                "name": "DiskSpaceLow",
                "service": "ledger-db",
                "status": "resolved",
                "fingerprint": "ci-check-42",
                "starts_at": "2026-11-21T09:00:00",
                "ends_at": "2026-11-21T09:30:00Z",
                "labels": {"team": "storage"},
                "generator_url": "https://grafana.example.com/alerting/grafana/abc/view",
            }
        ).to_alert(NOW)

        assert alert.status is AlertStatus.RESOLVED
        assert alert.fingerprint == "ci-check-42"
        assert alert.starts_at == datetime(2026, 11, 21, 9, 0, tzinfo=UTC)  # naive -> UTC
        assert alert.ends_at == datetime(2026, 11, 21, 9, 30, tzinfo=UTC)
        assert alert.labels["team"] == "storage"
        assert alert.labels["alertname"] == "DiskSpaceLow"

    def test_extra_fields_are_forbidden(self) -> None:
        with pytest.raises(ValidationError) as exc:
            GenericAlert.model_validate(
                {"name": "HighErrorRate", "service": "checkout", "sevrity": "critical"}
            )
        assert error_locs(exc) == [("sevrity",)]
        assert exc.value.errors()[0]["type"] == "extra_forbidden"

    @pytest.mark.parametrize("missing", ["name", "service"])
    def test_name_and_service_are_required(self, missing: str) -> None:
        body = {"name": "HighErrorRate", "service": "checkout"}
        del body[missing]
        with pytest.raises(ValidationError) as exc:
            GenericAlert.model_validate(body)
        assert error_locs(exc) == [(missing,)]

    def test_bad_start_names_the_field(self) -> None:
        with pytest.raises(ValidationError) as exc:
            GenericAlert.model_validate(
                {"name": "HighErrorRate", "service": "checkout", "starts_at": "not a date"}
            )
        assert error_locs(exc) == [("starts_at",)]

    @pytest.mark.parametrize(
        ("severity", "expected"),
        [
            ("critical", Severity.P1),
            ("warning", Severity.P3),
            ("unknown", Severity.P3),
            ("P2", Severity.P2),
            ("low", Severity.P4),
        ],
    )
    def test_severity_mapping(self, severity: str, expected: Severity) -> None:
        alert = GenericAlert(name="HighLatency", service="search", severity=severity)
        converted = alert.to_alert(NOW)
        assert converted.severity is expected
        assert converted.labels["severity"] == severity

    def test_severity_from_labels_when_not_given(self) -> None:
        alert = GenericAlert(name="HighLatency", service="search", labels={"severity": "critical"})
        assert alert.to_alert(NOW).severity is Severity.P1

    def test_summary_and_description_become_annotations(self) -> None:
        alert = GenericAlert(
            name="HighErrorRate",
            service="checkout",
            summary="5xx rate above 5% for 10 minutes",
            description="checkout returns 502 on /api/cart since the 10:02 deploy.",
            annotations={"runbook_url": "https://runbooks.example.com/errors"},
        ).to_alert(NOW)

        assert alert.annotations == {
            "summary": "5xx rate above 5% for 10 minutes",
            "description": "checkout returns 502 on /api/cart since the 10:02 deploy.",
            "runbook_url": "https://runbooks.example.com/errors",
        }
        assert alert.summary == "5xx rate above 5% for 10 minutes"

    def test_description_is_the_summary_when_there_is_no_summary(self) -> None:
        alert = GenericAlert(name="HighErrorRate", service="checkout", description="502s")
        assert alert.to_alert(NOW).summary == "502s"

    def test_different_names_are_different_alerts(self) -> None:
        labels = {"alertname": "from-grafana"}
        first = GenericAlert(name="HighErrorRate", service="checkout", labels=labels)
        second = GenericAlert(name="HighLatency", service="checkout", labels=labels)
        assert first.to_alert(NOW).fingerprint != second.to_alert(NOW).fingerprint


# --- Properties ------------------------------------------------------------------------------

label_names = st.text(min_size=1, max_size=128)
label_values = st.text(max_size=MAX_LABEL_VALUE)
label_sets = st.dictionaries(label_names, label_values, max_size=MAX_LABELS)


@settings(max_examples=200, database=None, deadline=None)
@given(name=st.text(min_size=1, max_size=256), labels=label_sets, seed=st.integers())
def test_fingerprint_is_deterministic_and_order_independent(
    name: str, labels: dict[str, str], seed: int
) -> None:
    items = list(labels.items())
    random.Random(seed).shuffle(items)
    shuffled = dict(items)

    fingerprint = fingerprint_of(name, labels)
    assert fingerprint == fingerprint_of(name, dict(labels))
    assert fingerprint == fingerprint_of(name, shuffled)
    assert re.fullmatch(r"[0-9a-f]{32}", fingerprint)


@settings(max_examples=300, database=None, deadline=None)
@given(text=st.text(max_size=2 * MAX_LABEL_VALUE))
def test_slug_is_key_safe_or_refuses(text: str) -> None:
    try:
        key = slug(text)
    except ValueError:
        assert text == "", f"slug refused {text!r}: every non-empty name needs a key"
        return
    assert KEY_SHAPE.fullmatch(key)
    assert len(key) <= 120
    assert slug(text) == key


@settings(max_examples=100, database=None, deadline=None)
@given(labels=label_sets, extra=label_sets)
def test_labels_within_limits_always_parse(labels: dict[str, str], extra: dict[str, str]) -> None:
    kept = [(k, v) for k, v in labels.items() if k not in ("alertname", "service")]
    merged = {**dict(kept[: MAX_LABELS - 2]), "alertname": "HighErrorRate", "service": "checkout"}
    raw = crashloop_alert(labels=merged, annotations=extra)
    [alert] = parse(payload(raw))
    assert alert.labels == merged
    assert alert.fingerprint == fingerprint_of("HighErrorRate", merged)
