"""Fuzz the webhook API from its own OpenAPI document with schemathesis, against real servers.

The API runs as it does in production (`python -m api`, uvicorn) in front of the session's
Temporal dev server, on a task queue no worker polls. Schemathesis generates bodies from the
documented schemas (valid ones and ones that break them) and checks every answer against
the document: status codes, content types, response schemas, no server error. On top:

- a valid payload is accepted (202) and names its incidents; with Temporal up there is no
  reason for any 5xx, so 503 fails the test too;
- every 4xx body is a Problem whose `error` says what is wrong (a 422 names a field).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from schemathesis import Case, GenerationMode
from schemathesis.core.failures import AcceptedNegativeData, FailureGroup
from schemathesis.openapi import from_dict
from temporalio.client import Client

from api.app import create_app
from runtime.settings import PROJECT_ROOT, Settings
from tests.conftest import free_port

pytestmark = pytest.mark.integration

TOKEN = "fuzz-" + secrets.token_hex(8)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXAMPLES = 300  # per operation and mode: 1,200 schema-driven requests, plus 200 raw ones


async def _never() -> Client:
    raise AssertionError("only the schema is read from this app")


SCHEMA = from_dict(
    create_app(
        Settings(_env_file=None, api_token=SecretStr(TOKEN), metrics_enabled=False), _never
    ).openapi()
)
OPERATIONS = {
    "alertmanager": SCHEMA["/alerts/alertmanager"]["POST"],
    "generic": SCHEMA["/alerts/generic"]["POST"],
}
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


def test_openapi_document_resolves_every_reference() -> None:
    """Regression: request bodies referenced `#/$defs/...`, which an OpenAPI document lacks."""
    document = SCHEMA.raw_schema
    refs = set(re.findall(r'"\$ref": "([^"]+)"', json.dumps(document)))
    assert refs, "expected the bodies to reference shared models"
    for ref in refs:
        node: Any = document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        assert isinstance(node, dict) and node, ref
    labels = document["components"]["schemas"]["AlertmanagerAlert"]["properties"]["labels"]
    assert labels["required"] == ["alertname"], "the schema says what the parser requires"


class ApiProcess:
    def __init__(self, url: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.url = url
        self.process = process
        self.log = log
        self.session = requests.Session()
        self.statuses: Counter[int] = Counter()


@pytest.fixture(scope="module")
def api_process(client: Client, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiProcess]:
    port = free_port()
    log = tmp_path_factory.mktemp("fuzz-api") / "api.log"
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "FIREBREAK_API_TOKEN": TOKEN,
        "FIREBREAK_API_PORT": str(port),
        "FIREBREAK_TASK_QUEUE": f"fuzz-{secrets.token_hex(4)}",  # no worker: ingestion only
        "FIREBREAK_SETTLE_SECONDS": "3600",
        "FIREBREAK_METRICS_ENABLED": "false",
        "FIREBREAK_DATA_DIR": str(log.parent),
    }
    for name in ("FIREBREAK_CODEC_KEYS", "TEMPORAL_PROFILE"):
        env.pop(name, None)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "api"], cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the API did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    api = ApiProcess(url, process, log)
    try:
        yield api
    finally:
        api.session.close()
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    print(f"\nfuzzed API answers: {dict(api.statuses)}")


def exercise(api: ApiProcess, case: Case[Any], mode: GenerationMode) -> None:
    response = case.call(base_url=api.url, session=api.session, headers=AUTH, timeout=30)
    api.statuses[response.status_code] += 1
    # The document's own promises: documented status, content type, response schema, no 5xx,
    # schema-valid bodies accepted, schema-violating ones refused.
    try:
        case.validate_response(response)
    except FailureGroup as group:
        # A body over the size limit is refused with 413 before anyone reads it: right, and
        # documented, but not among the codes the negative-data check expects.
        if response.status_code != 413 or not all(
            isinstance(e, AcceptedNegativeData) for e in group.exceptions
        ):
            raise
    assert response.status_code < 500, f"{response.status_code}: {response.text[:500]}"
    body: Any = response.json()
    if response.status_code == 202:
        assert body["accepted"] >= 1 and body["incidents"], body
        assert all(i.startswith("incident-") for i in body["incidents"]), body
        return
    assert 400 <= response.status_code < 500
    error = body.get("error")
    assert isinstance(error, str) and len(error) >= 10, body
    if response.status_code == 422:
        assert body["detail"] or "no alerts" in error, body
        for entry in body["detail"]:
            assert entry["field"] and entry["message"], body
    if mode == GenerationMode.POSITIVE and response.status_code == 422:
        # Valid by the schema but refused by a rule the schema cannot say (every alert needs
        # labels.alertname): the answer must name it.
        assert "alertname" in error or "no usable" in error, body


@FUZZ
@given(case=OPERATIONS["alertmanager"].as_strategy(generation_mode=GenerationMode.POSITIVE))
def test_fuzz_alertmanager_valid(api_process: ApiProcess, case: Case[Any]) -> None:
    exercise(api_process, case, GenerationMode.POSITIVE)


@FUZZ
@given(case=OPERATIONS["alertmanager"].as_strategy(generation_mode=GenerationMode.NEGATIVE))
def test_fuzz_alertmanager_invalid(api_process: ApiProcess, case: Case[Any]) -> None:
    exercise(api_process, case, GenerationMode.NEGATIVE)


@FUZZ
@given(case=OPERATIONS["generic"].as_strategy(generation_mode=GenerationMode.POSITIVE))
def test_fuzz_generic_valid(api_process: ApiProcess, case: Case[Any]) -> None:
    exercise(api_process, case, GenerationMode.POSITIVE)


@FUZZ
@given(case=OPERATIONS["generic"].as_strategy(generation_mode=GenerationMode.NEGATIVE))
def test_fuzz_generic_invalid(api_process: ApiProcess, case: Case[Any]) -> None:
    exercise(api_process, case, GenerationMode.NEGATIVE)


@settings(max_examples=200, deadline=None)
@given(
    body=st.binary(max_size=300),
    content_type=st.sampled_from(["application/json", "text/plain", "application/json; charset=utf-8", ""]),
    path=st.sampled_from(sorted(OPERATIONS)),
)
def test_fuzz_raw_bodies(api_process: ApiProcess, body: bytes, content_type: str, path: str) -> None:
    """Bytes that are not JSON at all, under any content type: a 4xx that says why."""
    headers = {**AUTH, **({"Content-Type": content_type} if content_type else {})}
    response = api_process.session.post(f"{api_process.url}/alerts/{path}", data=body, headers=headers)
    api_process.statuses[response.status_code] += 1
    assert 400 <= response.status_code < 500 or response.status_code == 202, response.text
    if response.status_code != 202:
        assert len(response.json()["error"]) >= 10, response.text
