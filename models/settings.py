"""The one typed settings object: `FIREBREAK_*` environment variables and `.env`.

Defaults run the embedded stack on loopback. Workflows never read settings (that would
break determinism): the API passes what a workflow needs in its input, and activities
receive their clients built from these settings.

The Temporal connection itself follows the SDK's envconfig (`TEMPORAL_ADDRESS`,
`TEMPORAL_NAMESPACE`, profiles in `temporal.toml`) so that the `temporal` CLI and
Firebreak always agree on where the server is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.constants import TASK_QUEUE

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FIREBREAK_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    data_dir: Path = Field(default=PROJECT_ROOT / "data", description="state of the dev stack")

    # Temporal task queue the API starts incidents on and the worker polls
    task_queue: str = TASK_QUEUE

    # Ingress API
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_token: SecretStr | None = Field(
        default=None, description="bearer token for the webhook API; required unless disabled"
    )
    api_auth_disabled: bool = Field(
        default=False, description="accept webhooks without a token (never in production)"
    )
    api_max_body_bytes: int = 1_048_576

    # Temporal UI (the dev stack starts it with the server)
    temporal_ui_port: int = 8233

    # Incident timings, passed to each new incident's workflow input
    settle_seconds: float = 30.0
    approval_timeout_seconds: float = 3600.0
    verify_window_seconds: float = 300.0

    # Vault / OpenBao
    vault_addr: str = "http://127.0.0.1:8200"
    vault_token: SecretStr | None = Field(
        default=None, description="the worker's own token; it may only mint action tokens"
    )
    vault_root_token: SecretStr | None = Field(
        default=None, description="used once by `firebreak vault-bootstrap`, never by the worker"
    )

    # Where the catalog, policies and rules live
    playbooks_dir: Path = PROJECT_ROOT / "playbooks"
    policies_dir: Path = PROJECT_ROOT / "policies"
    rules_file: Path = PROJECT_ROOT / "agents" / "rules.yaml"

    # Remediation
    ansible_runtime_dir: Path | None = Field(
        default=None, description="private scratch for ansible-runner (default: tmpfs if any)"
    )
    target_state_dir: Path | None = Field(
        default=None,
        description="where the bundled demo playbooks keep the state of local demo targets",
    )

    def resolved_target_state_dir(self) -> Path:
        return self.target_state_dir or self.data_dir / "targets"

    # Memory: runbooks, post-mortems and past incidents in Qdrant
    qdrant_url: str | None = Field(
        default=None, description="a Qdrant server or cluster; unset: local mode in qdrant_path"
    )
    qdrant_api_key: SecretStr | None = Field(default=None, description="for a Qdrant server that needs one")
    qdrant_path: Path | None = Field(
        default=None, description="local-mode storage folder (default: $FIREBREAK_DATA_DIR/qdrant)"
    )
    knowledge_dir: Path = PROJECT_ROOT / "knowledge"
    knowledge_collection: str = "firebreak_knowledge"
    incidents_collection: str = "firebreak_incidents"
    embeddings: Literal["auto", "dense", "sparse"] = Field(
        default="auto",
        description="auto: dense+sparse hybrid when the dense extra is installed; dense: require it; "
        "sparse: BM25 only",
    )

    # Telemetry for diagnosis (activities/telemetry.py) and the dependency topology (rca/)
    prometheus_url: str = Field(default="http://127.0.0.1:9090", description="Prometheus HTTP API base URL")
    prometheus_timeout_seconds: float = Field(default=10.0, gt=0, le=120, description="per HTTP request")
    prometheus_service_label: str = Field(default="service", description="the label that names a service")
    prometheus_queries: dict[str, str] = Field(
        default_factory=dict,
        description="metric name (<kind>_<stat>) -> PromQL using $services and $window; "
        "empty: the built-in set in activities/telemetry.py",
    )
    prometheus_rate_window: str = Field(default="5m", description="range for rate() in the built-in queries")
    telemetry_normal_seconds: float = Field(
        default=3600.0, gt=0, description="how much history before an incident counts as normal"
    )
    topology_file: Path | None = Field(
        default=None, description="CMDB export (YAML) of services and their dependencies"
    )

    def resolved_qdrant_path(self) -> Path:
        return self.qdrant_path or self.data_dir / "qdrant"
