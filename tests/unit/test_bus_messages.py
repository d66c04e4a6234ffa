"""The bus validates exactly as the webhook does, and refuses bad settings naming them."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from temporalio.client import Client

from api.app import create_app
from consumer.messages import Decoded, Rejected, decode, header_safe, source_of
from ingest.bus import ConfigurationError, check_settings, redacted
from runtime.settings import Settings
from tests.conftest import require_binary
from tests.payloads import alertmanager_alert, alertmanager_payload

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
PREFIX = "firebreak.alerts"


def _without_alertname() -> dict[str, Any]:
    payload = alertmanager_payload(alertmanager_alert("X", "checkout"))
    del payload["alerts"][0]["labels"]["alertname"]
    return payload


def _unix_time() -> dict[str, Any]:
    payload = alertmanager_payload(alertmanager_alert("X", "checkout"))
    payload["alerts"][0]["startsAt"] = 1_700_000_000
    return payload


INVALID: list[tuple[str, Any]] = [
    ("alertmanager", _without_alertname()),
    ("alertmanager", _unix_time()),
    ("alertmanager", {"version": "3", "alerts": []}),
    ("generic", {"name": "A", "service": "checkout", "sql": "drop"}),
    ("generic", []),
    ("generic", [{"name": "A", "service": "x"}, {"name": "", "service": "x"}]),
    ("generic", {"name": "A", "service": "x", "starts_at": "yesterday"}),
]


async def _no_temporal() -> Client:
    raise AssertionError("an invalid payload must never reach Temporal")


@pytest.mark.parametrize(("source", "body"), INVALID)
async def test_bus_refuses_with_the_webhooks_own_words(source: str, body: Any) -> None:
    app = create_app(Settings(_env_file=None, api_auth_disabled=True), _no_temporal)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        response = await http.post(f"/alerts/{source}", json=body)
    assert response.status_code == 422, response.text
    result = decode(
        f"{PREFIX}.{source}", json.dumps(body).encode(), prefix=PREFIX, max_bytes=1 << 20, now=NOW
    )
    assert isinstance(result, Rejected)
    assert result.reason == response.json()["error"]


def test_valid_messages_decode_to_the_webhooks_alerts() -> None:
    body = alertmanager_payload(
        alertmanager_alert("A", "checkout", fingerprint="f1"), alertmanager_alert("B", "checkout")
    )
    result = decode(
        f"{PREFIX}.alertmanager.team-a", json.dumps(body).encode(), prefix=PREFIX, max_bytes=1 << 20, now=NOW
    )
    assert isinstance(result, Decoded) and result.source == "alertmanager"
    assert len(result.alerts) == 2 and result.alerts[0].fingerprint == "f1"
    assert {a.incident_key() for a in result.alerts} == {"prod-checkout"}
    generic = decode(
        f"{PREFIX}.generic",
        b'{"name": "HighLatency", "service": "cart"}',
        prefix=PREFIX,
        max_bytes=100,
        now=NOW,
    )
    assert isinstance(generic, Decoded)
    # No starts_at: the time the bus stored the message, not when it was consumed.
    assert generic.alerts[0].starts_at == NOW


@pytest.mark.parametrize(
    ("subject", "data", "reason"),
    [
        (f"{PREFIX}.pagerduty", b"{}", "subject: 'firebreak.alerts.pagerduty' names no format"),
        (f"{PREFIX}", b"{}", "subject: 'firebreak.alerts' names no format"),
        ("other.generic", b"{}", "subject: 'other.generic' names no format"),
        (f"{PREFIX}.generic", b"x" * 101, "body: larger than 100 bytes (101)"),
        (f"{PREFIX}.generic", b"\xff", "body: not valid JSON"),
        (f"{PREFIX}.generic", b"{", "body: not valid JSON"),
    ],
)
def test_subject_and_body_refusals_name_what_is_wrong(subject: str, data: bytes, reason: str) -> None:
    result = decode(subject, data, prefix=PREFIX, max_bytes=100, now=NOW)
    assert isinstance(result, Rejected) and result.reason.startswith(reason), result


def test_source_of_takes_only_the_first_token() -> None:
    assert source_of(f"{PREFIX}.generic.team-a", PREFIX) == "generic"
    assert source_of(f"{PREFIX}.genericx", PREFIX) is None
    assert source_of("firebreak.alertsx.generic", PREFIX) is None


def test_reason_header_is_one_bounded_line() -> None:
    assert header_safe("a\r\nb\tc" + "x" * 5000) == "a b c" + "x" * 995


def test_bad_bus_settings_are_refused_by_name() -> None:
    with pytest.raises(ValidationError, match="bus_url"):
        Settings(_env_file=None, bus_url="http://broker:4222")
    with pytest.raises(ValidationError, match="bus_stream"):
        Settings(_env_file=None, bus_stream="ALERTS.>")
    with pytest.raises(ValidationError, match="bus_subject_prefix"):
        Settings(_env_file=None, bus_subject_prefix="alerts.*")
    with pytest.raises(ConfigurationError, match="FIREBREAK_BUS_URL is not set"):
        check_settings(Settings(_env_file=None))
    with pytest.raises(ConfigurationError, match="FIREBREAK_BUS_DEAD_LETTER_PREFIX"):
        check_settings(
            Settings(_env_file=None, bus_url="nats://b:4222", bus_dead_letter_prefix="firebreak.alerts.dead")
        )
    with pytest.raises(ConfigurationError, match="FIREBREAK_BUS_DEAD_LETTER_STREAM"):
        check_settings(
            Settings(_env_file=None, bus_url="nats://b:4222", bus_dead_letter_stream="FIREBREAK_ALERTS")
        )
    assert redacted("nats://user:hunter2@broker:4222") == "nats://broker:4222"


def test_cli_refuses_a_bad_url_naming_the_setting() -> None:
    done = subprocess.run(
        [require_binary("firebreak"), "consume", "--url", "http://broker:4222"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done
    assert "invalid setting FIREBREAK_BUS_URL" in done.stderr
