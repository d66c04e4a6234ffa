"""The webhook API: auth, validation, and what it answers when Temporal is away."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from api.app import ConfigurationError, create_app
from models.constants import SEARCH_ATTRIBUTES
from runtime.settings import Settings
from runtime.temporal import connect
from tests.conftest import free_port, require_binary
from tests.payloads import alertmanager_alert, alertmanager_payload

pytestmark = pytest.mark.integration

TOKEN = "api-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class CountingFactory:
    """Hands out the real client and counts how often the API asked for Temporal."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.calls = 0

    async def __call__(self) -> Client:
        self.calls += 1
        return self.client


def api_settings(**overrides: Any) -> Settings:
    return Settings(_env_file=None, api_token=SecretStr(TOKEN), **overrides)


@pytest.fixture
async def api(client: Client) -> AsyncIterator[tuple[httpx.AsyncClient, CountingFactory]]:
    factory = CountingFactory(client)
    app = create_app(api_settings(api_max_body_bytes=64_000, task_queue="api-tests-no-worker"), factory)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        yield http, factory


def valid_payload() -> dict[str, Any]:
    return alertmanager_payload(alertmanager_alert("InstanceDown", "api-tests-svc"))


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda p: p.pop("alerts"), "alerts"),
        (lambda p: p.update(alerts=[]), "alerts"),
        (lambda p: p.update(version="3"), "version"),
        (lambda p: p["alerts"][0].update(startsAt="yesterday"), "alerts.0.startsAt"),
        (lambda p: p["alerts"][0].update(status="burning"), "alerts.0.status"),
        (lambda p: p["alerts"][0]["labels"].pop("alertname"), "alerts.0.labels"),
        (lambda p: p["alerts"][0].update(labels="not-a-dict"), "alerts.0.labels"),
        (lambda p: p["alerts"][0]["labels"].update(team=7), "alerts.0.labels.team"),
        (lambda p: p.update(groupKey=None), "groupKey"),
    ],
)
async def test_bad_alertmanager_payload_names_the_field(
    api: tuple[httpx.AsyncClient, CountingFactory], mutate: Any, field: str
) -> None:
    http, factory = api
    payload = valid_payload()
    mutate(payload)
    response = await http.post("/alerts/alertmanager", json=payload, headers=AUTH)
    assert response.status_code == 422, response.text
    body = response.json()
    assert field in [d["field"] for d in body["detail"]], body
    assert field in body["error"]
    assert factory.calls == 0, "a bad payload never reaches Temporal"


async def test_bad_generic_payload_names_the_field(
    api: tuple[httpx.AsyncClient, CountingFactory],
) -> None:
    http, factory = api
    response = await http.post(
        "/alerts/generic", json={"name": "DiskFull", "service": "db", "sevrity": "P1"}, headers=AUTH
    )
    assert response.status_code == 422
    assert "sevrity" in response.json()["error"]
    response = await http.post("/alerts/generic", json=[], headers=AUTH)
    assert response.status_code == 422
    assert factory.calls == 0


async def test_transport_level_bad_input(api: tuple[httpx.AsyncClient, CountingFactory]) -> None:
    http, factory = api
    body = json.dumps(valid_payload())
    wrong_type = await http.post(
        "/alerts/alertmanager", content=body, headers={**AUTH, "Content-Type": "text/plain"}
    )
    assert wrong_type.status_code == 415 and "application/json" in wrong_type.json()["error"]
    not_json = await http.post(
        "/alerts/alertmanager",
        content=b"{nope",
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["error"]
    huge = await http.post(
        "/alerts/alertmanager",
        content=b'{"x": "' + b"a" * 70_000 + b'"}',
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert huge.status_code == 413 and "64000" in huge.json()["error"]

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"a" * 1000

    streamed = await http.post(
        "/alerts/alertmanager",
        content=chunks(),
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert streamed.status_code == 413, "a body without Content-Length is still bounded"
    assert factory.calls == 0


async def test_bearer_token_required(api: tuple[httpx.AsyncClient, CountingFactory]) -> None:
    http, factory = api
    missing = await http.post("/alerts/alertmanager", json=valid_payload())
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    wrong = await http.post(
        "/alerts/alertmanager", json=valid_payload(), headers={"Authorization": "Bearer nope"}
    )
    assert wrong.status_code == 401
    assert factory.calls == 0


def test_api_refuses_to_start_without_a_token() -> None:
    async def never() -> Client:
        raise AssertionError("not called")

    with pytest.raises(ConfigurationError, match="FIREBREAK_API_TOKEN"):
        create_app(Settings(_env_file=None), never)


async def test_generic_alert_accepted(api: tuple[httpx.AsyncClient, CountingFactory]) -> None:
    http, _ = api
    response = await http.post(
        "/alerts/generic",
        json={
            "name": "DiskSpaceLow",
            "service": "api-tests-db",
            "severity": "warning",
            "summary": "disk 91% full",
        },
        headers=AUTH,
    )
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 1, "incidents": ["incident-api-tests-db"]}


async def test_temporal_down_answers_503_and_health_says_so() -> None:
    """Accepted while the server is up; 503 with Retry-After once it is gone."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=require_binary("temporal"),
        data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTES,
    )
    target = env.client.service_client.config.target_host
    app = create_app(api_settings(task_queue="api-tests-outage"), lambda: connect(target))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        assert (await http.get("/healthz")).json() == {"status": "ok", "temporal": "reachable"}
        ok = await http.post("/alerts/alertmanager", json=valid_payload(), headers=AUTH)
        assert ok.status_code == 202
        await env.shutdown()
        down = await http.post("/alerts/alertmanager", json=valid_payload(), headers=AUTH)
        assert down.status_code == 503, down.text
        assert down.headers["retry-after"].isdigit()
        assert "Temporal is unavailable" in down.json()["error"]
        health = await http.get("/healthz")
        assert health.status_code == 503 and health.json()["status"] == "degraded"


async def test_temporal_never_reachable_answers_503() -> None:
    port = free_port()  # nothing listens here
    app = create_app(api_settings(), lambda: connect(f"127.0.0.1:{port}"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        response = await http.post("/alerts/alertmanager", json=valid_payload(), headers=AUTH)
        assert response.status_code == 503
        assert (await http.get("/healthz")).status_code == 503
