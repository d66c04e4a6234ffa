"""Fuzz the webhook payload parsers: any JSON in, either clear errors or alerts Temporal can carry.

About 2,500 generated payloads, from arbitrary JSON to near-valid Alertmanager and
generic bodies with hostile strings, odd dates and wrong types. For each one the parser
either refuses it with a ValidationError whose API rendering names a field and says what
is wrong, or returns alerts whose incident key is safe for a workflow id and which survive
the trip through the Temporal data converter unchanged. Nothing else may escape.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from temporalio.contrib.pydantic import pydantic_data_converter

from api.app import invalid
from ingest.parsing import parse_generic
from models.alert import Alert, AlertBatch, AlertmanagerPayload
from models.constants import incident_workflow_id

KEY_SHAPE = re.compile(r"^[a-z0-9._-]{1,121}$")
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
FUZZ = settings(
    max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)

# Strings a webhook may carry: any unicode (no lone surrogates: JSON decoders reject or the
# parser refuses them, see test_lone_surrogates_are_refused), control characters, blanks.
texts = st.text(max_size=40) | st.sampled_from(["", " ", "\x00", "-", "..", "ü", "名前", "a" * 300])
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts
any_json = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=20,
)


@st.composite
def timestamps(draw: st.DrawFn) -> Any:
    """RFC 3339 the way senders write it, and things that are not."""
    moment = draw(
        st.datetimes(
            min_value=datetime(1, 1, 2),
            max_value=datetime(9999, 12, 30),
            timezones=st.sampled_from([None, UTC]),
        )
    )
    offset = draw(st.integers(min_value=-14 * 60, max_value=14 * 60))
    aware = moment.replace(tzinfo=timezone(timedelta(minutes=offset)))
    return draw(
        st.sampled_from(
            [
                moment.isoformat(),
                aware.isoformat(),
                moment.strftime("%Y-%m-%dT%H:%M:%S") + ".123456789Z",
                "0001-01-01T00:00:00Z",
            ]
        )
        | any_json
    )


labels = st.dictionaries(texts, texts | any_json, max_size=6)


@st.composite
def alertmanager_alerts(draw: st.DrawFn) -> dict[str, Any]:
    alert: dict[str, Any] = {
        "status": draw(st.sampled_from(["firing", "resolved"]) | any_json),
        "labels": {"alertname": draw(texts), **draw(labels)} if draw(st.booleans()) else draw(any_json),
        "annotations": draw(labels),
        "startsAt": draw(timestamps()),
        "endsAt": draw(timestamps()),
        "generatorURL": draw(texts | any_json),
        "fingerprint": draw(st.none() | texts | any_json),
    }
    for key in draw(st.lists(st.sampled_from(sorted(alert)), max_size=2)):
        alert.pop(key, None)
    return alert


@st.composite
def alertmanager_payloads(draw: st.DrawFn) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "version": draw(st.just("4") | any_json),
        "groupKey": draw(texts | any_json),
        "status": draw(st.sampled_from(["firing", "resolved"]) | any_json),
        "receiver": draw(texts),
        "groupLabels": draw(labels),
        "commonLabels": draw(labels),
        "commonAnnotations": draw(labels),
        "externalURL": draw(texts),
        "truncatedAlerts": draw(st.integers(min_value=-2, max_value=5) | any_json),
        "alerts": draw(st.lists(alertmanager_alerts(), max_size=5) | any_json),
    }
    for key in draw(st.lists(st.sampled_from(sorted(payload)), max_size=2)):
        payload.pop(key, None)
    payload.update(draw(st.dictionaries(texts, any_json, max_size=2)))  # unknown keys
    return payload


@st.composite
def generic_alerts(draw: st.DrawFn) -> Any:
    fields = {
        "name": texts | any_json,
        "service": texts | any_json,
        "status": st.sampled_from(["firing", "resolved"]) | any_json,
        "severity": st.sampled_from(["critical", "warning", "P1", "page", ""]) | texts | any_json,
        "summary": texts,
        "description": texts,
        "labels": labels,
        "annotations": labels,
        "fingerprint": st.none() | texts,
        "starts_at": timestamps(),
        "ends_at": timestamps(),
        "generator_url": texts,
        "unexpected": any_json,
    }
    chosen = draw(st.lists(st.sampled_from(sorted(fields)), unique=True, min_size=1))
    body = {key: draw(fields[key]) for key in chosen}
    return draw(st.just(body) | st.lists(st.just(body), max_size=3))


def assert_clear_refusal(exc: ValidationError) -> None:
    """The API's 422 names at least one field, and every entry says what is wrong."""
    body = json.loads(bytes(invalid(exc).body))
    assert body["error"].startswith("invalid payload: ") and len(body["error"]) > len("invalid payload: ")
    assert body["detail"], body
    for entry in body["detail"]:
        assert entry["field"] and entry["message"], entry


def assert_carriable(alerts: list[Alert]) -> None:
    """What the API would send: safe workflow ids, and a batch the data converter round-trips."""
    assert alerts
    for alert in alerts:
        key = alert.incident_key()
        assert KEY_SHAPE.match(key), key
        assert len(incident_workflow_id(key)) <= 1000
        assert 1 <= len(alert.fingerprint) <= 128 and alert.service
    batch = AlertBatch(alerts=alerts, received_at=NOW)
    converter = pydantic_data_converter.payload_converter
    (decoded,) = converter.from_payloads(converter.to_payloads([batch]), [AlertBatch])
    assert decoded == batch


def check_alertmanager(raw: Any) -> None:
    try:
        alerts = AlertmanagerPayload.model_validate(raw).to_alerts()
    except ValidationError as exc:
        assert_clear_refusal(exc)
        return
    assert_carriable(alerts)


def check_generic(raw: Any) -> None:
    try:
        alerts = parse_generic(raw, NOW)
    except ValidationError as exc:
        assert_clear_refusal(exc)
        return
    except ValueError as exc:  # valid JSON shape, nothing usable (an empty list)
        assert str(exc)
        return
    assert_carriable(alerts)


@FUZZ
@given(any_json)
def test_any_json_as_alertmanager(raw: Any) -> None:
    check_alertmanager(raw)


@FUZZ
@given(alertmanager_payloads())
def test_near_valid_alertmanager_payloads(raw: dict[str, Any]) -> None:
    check_alertmanager(raw)


@FUZZ
@given(any_json)
def test_any_json_as_generic(raw: Any) -> None:
    check_generic(raw)


@FUZZ
@given(generic_alerts())
def test_near_valid_generic_alerts(raw: Any) -> None:
    check_generic(raw)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "name": st.text(min_size=1, max_size=256).filter(str.strip),
                "service": st.text(min_size=1, max_size=256),
                "labels": st.dictionaries(
                    st.text(min_size=1, max_size=128), st.text(max_size=64), max_size=5
                ),
            }
        ),
        min_size=1,
        max_size=5,
    )
)
def test_valid_generic_alerts_always_parse(raw: list[dict[str, Any]]) -> None:
    """Anything the documented schema allows is accepted (so a valid sender is never refused)."""
    assert_carriable(parse_generic(raw, NOW))


def test_lone_surrogates_are_refused() -> None:
    """JSON can spell a lone surrogate (\\ud800); it could not be re-encoded for Temporal."""
    raw = json.loads('{"name": "x\\ud800", "service": "svc", "labels": {"k\\udfff": "v"}}')
    with pytest.raises(ValidationError) as refused:
        parse_generic(raw, NOW)
    assert_clear_refusal(refused.value)
    fields = {".".join(str(p) for p in e["loc"]) for e in refused.value.errors()}
    assert "name" in fields and any(f.startswith("labels.k") for f in fields), fields


def test_generic_errors_name_the_field_not_the_union() -> None:
    """One object or a list: the error names `name` / `1.service`, not pydantic's union branches."""
    with pytest.raises(ValidationError) as one:
        parse_generic({"service": "db"}, NOW)
    body = json.loads(bytes(invalid(one.value).body))
    assert [d["field"] for d in body["detail"]] == ["name"], body
    assert body["error"] == "invalid payload: name: Field required"
    with pytest.raises(ValidationError) as many:
        parse_generic([{"name": "a", "service": "db"}, {"name": "b"}], NOW)
    body = json.loads(bytes(invalid(many.value).body))
    assert [d["field"] for d in body["detail"]] == ["1.service"], body


@pytest.mark.parametrize("value", [0, 0.0, 1700000000, "1700000000", "2026-11-21", True, "yesterday"])
def test_timestamps_must_be_rfc3339_strings(value: Any) -> None:
    """Regression (schemathesis): numbers were read as Unix time though the schema says date-time."""
    with pytest.raises(ValidationError) as refused:
        parse_generic({"name": "DiskFull", "service": "db", "starts_at": value}, NOW)
    assert "RFC 3339" in json.loads(bytes(invalid(refused.value).body))["error"]
    alert = dict(
        status="firing", labels={"alertname": "A"}, startsAt="2026-11-21T10:00:00Z", endsAt=value
    )
    with pytest.raises(ValidationError):
        AlertmanagerPayload.model_validate(
            {"version": "4", "groupKey": "g", "status": "firing", "receiver": "r", "alerts": [alert]}
        )
    for ok in ("2026-11-21T10:00:00Z", "2026-11-21T10:00:00.672486657+02:00", "2026-11-21 10:00:00"):
        (parsed,) = parse_generic({"name": "DiskFull", "service": "db", "starts_at": ok}, NOW)
        assert parsed.starts_at.tzinfo is not None
