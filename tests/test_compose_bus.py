"""docker-compose.yml carries the bus: a NATS JetStream broker and the consumer that reads it."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.test_compose import REQUIRED_ENV, port_mapping, run_config


def test_compose_runs_the_broker_and_the_consumer(tmp_path: Path) -> None:
    result = run_config(tmp_path, REQUIRED_ENV)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]

    nats = services["nats"]
    assert nats["image"].startswith("nats:")
    assert "--jetstream" in nats["command"] and "--store_dir" in nats["command"]
    # JetStream's store is a named volume: what is unacked survives a broker restart.
    assert "nats-data:/data" in yaml.safe_dump(nats["volumes"]), nats["volumes"]
    assert [port_mapping(p) for p in nats["ports"]] == [("127.0.0.1", "4222", "4222")]
    assert "healthcheck" in nats

    consumer = services["firebreak-consumer"]
    assert consumer["command"] == ["python", "-m", "consumer"]
    assert consumer["environment"]["FIREBREAK_BUS_URL"] == "nats://nats:4222"
    assert consumer["environment"]["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert consumer["depends_on"]["nats"]["condition"] == "service_healthy"
    assert consumer["depends_on"]["temporal-setup"]["condition"] == "service_completed_successfully"
    # It holds no Vault or webhook credentials: it only signals Temporal.
    dumped = yaml.safe_dump(consumer)
    for secret in (
        "OPENBAO_ROOT_TOKEN",
        "FIREBREAK_VAULT_TOKEN",
        "FIREBREAK_API_TOKEN",
        "test-api-token",
        "test-admission-key",
        "test-approval-key",
    ):
        assert secret not in dumped, secret
