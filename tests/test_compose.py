"""docker-compose.yml: valid for Compose, and the scaled-out shape DESIGN.md describes.

`docker-compose config` (Debian's docker-compose 1.29, installed by
scripts/install-system-deps.sh) validates the file without a Docker engine. A missing
binary fails the test: CI must never silently skip this.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from models.constants import SEARCH_ATTRIBUTES
from runtime.settings import PROJECT_ROOT

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
REQUIRED_ENV = {
    "FIREBREAK_API_TOKEN": "test-api-token",
    "OPENBAO_ROOT_TOKEN": "test-root",
    "FIREBREAK_ADMISSION_KEY": "test-admission-key",
    "FIREBREAK_APPROVAL_KEY": "test-approval-key",
}


def docker_compose() -> str:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose not found: run scripts/install-system-deps.sh (or `make test`)")
    return binary


def run_config(tmp_path: Path, extra_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    # An empty --env-file, so a developer's .env cannot change the outcome.
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    env = {k: v for k, v in os.environ.items() if k not in REQUIRED_ENV} | extra_env
    return subprocess.run(
        [docker_compose(), "--env-file", str(env_file), "-f", str(COMPOSE_FILE), "config", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def port_mapping(port: str | dict[str, Any]) -> tuple[str, str, str]:
    """(host ip, published, target) from either of Compose's port syntaxes."""
    if isinstance(port, dict):
        return str(port.get("host_ip", "")), str(port["published"]), str(port["target"])
    parts = port.split("/")[0].rsplit(":", 2)
    ip, published, target = ["", *parts] if len(parts) == 2 else parts
    return ip, published, target


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_compose_config_is_valid(tmp_path: Path) -> None:
    result = run_config(tmp_path, REQUIRED_ENV, "-q")
    assert result.returncode == 0, result.stderr


def test_compose_refuses_to_run_without_secrets(tmp_path: Path) -> None:
    for missing in REQUIRED_ENV:
        env = {k: v for k, v in REQUIRED_ENV.items() if k != missing}
        result = run_config(tmp_path, env, "-q")
        assert result.returncode != 0
        assert f"set {missing}" in result.stderr, result.stderr


def test_compose_resolves_ports_and_dependencies(tmp_path: Path) -> None:
    result = run_config(tmp_path, REQUIRED_ENV)
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)["services"]
    assert resolved["firebreak-api"]["environment"]["FIREBREAK_API_TOKEN"] == "test-api-token"
    # The gate's keys: the admission key to the workers only, the approval key to both.
    worker_env = resolved["firebreak-worker"]["environment"]
    api_env = resolved["firebreak-api"]["environment"]
    assert worker_env["FIREBREAK_ADMISSION_KEY"] == "test-admission-key"
    assert "FIREBREAK_ADMISSION_KEY" not in api_env
    assert worker_env["FIREBREAK_APPROVAL_KEY"] == api_env["FIREBREAK_APPROVAL_KEY"] == "test-approval-key"
    published = {
        (name, *port_mapping(port)) for name, service in resolved.items() for port in service.get("ports", [])
    }
    assert ("temporal-ui", "127.0.0.1", "8233", "8080") in published
    assert ("temporal", "127.0.0.1", "7233", "7233") in published
    assert ("firebreak-api", "127.0.0.1", "8000", "8000") in published
    assert ("openbao", "127.0.0.1", "8200", "8200") in published
    # Only loopback is published, and the database not at all.
    assert {ip for _, ip, _, _ in published} == {"127.0.0.1"}
    assert "postgresql" not in {name for name, *_ in published}


def test_compose_has_the_scaled_out_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in (
        "postgresql",
        "temporal",
        "temporal-ui",
        "openbao",
        "firebreak-worker",
        "firebreak-memory-worker",
        "firebreak-api",
    ):
        assert name in services, name
    assert services["temporal"]["image"].startswith("temporalio/server:")
    assert services["temporal"]["environment"]["DB"] == "postgres12"
    assert services["temporal-ui"]["image"].startswith("temporalio/ui:")
    assert services["openbao"]["image"].startswith("openbao/openbao:")
    assert "-dev" in services["openbao"]["command"]
    for name in (
        "postgresql",
        "temporal",
        "openbao",
        "firebreak-worker",
        "firebreak-memory-worker",
        "firebreak-api",
    ):
        assert "healthcheck" in services[name], name
    for name in ("firebreak-worker", "firebreak-api"):
        service = services[name]
        assert service["build"] == "."
        assert service["environment"]["TEMPORAL_ADDRESS"] == "temporal:7233"
        assert service["environment"]["FIREBREAK_VAULT_ADDR"] == "http://openbao:8200"
        assert service["depends_on"]["temporal-setup"]["condition"] == ("service_completed_successfully")
    worker = services["firebreak-worker"]
    assert "worker.py --role incident" in " ".join(worker["command"])
    # The memory worker: its own queue and volume, and no Vault token or gate key at all.
    memory = services["firebreak-memory-worker"]
    assert memory["command"] == ["python", "worker.py", "--role", "memory"]
    assert memory["volumes"] == ["firebreak-memory-data:/var/lib/firebreak"]
    assert "memory_task_queue" in "\n".join(memory["healthcheck"]["test"])
    for secret in ("worker-token", "FIREBREAK_VAULT_TOKEN", "ADMISSION_KEY", "APPROVAL_KEY"):
        assert secret not in yaml.safe_dump(memory), secret
    assert services["firebreak-api"]["command"] == ["python", "-m", "api"]
    # The root token reaches only OpenBao and the one-shot bootstrap, never the worker/API.
    for name in ("firebreak-worker", "firebreak-memory-worker", "firebreak-api"):
        assert "OPENBAO_ROOT_TOKEN" not in yaml.safe_dump(services[name]), name


def test_compose_registers_firebreaks_search_attributes(compose: dict[str, Any]) -> None:
    script = "\n".join(compose["services"]["temporal-setup"]["command"])
    for key in SEARCH_ATTRIBUTES:
        assert key.name in script, key.name
    assert "--type Keyword" in script


def test_dockerfile_builds_both_roles() -> None:
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    assert "\nFROM python:3.11-slim\n" in dockerfile
    assert "pip install ." in dockerfile
    assert 'CMD ["python", "worker.py"]' in dockerfile
    ignored = (PROJECT_ROOT / ".dockerignore").read_text().split()
    for path in (".venv", "data", ".env", ".git"):
        assert path in ignored, path
