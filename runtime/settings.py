"""The one typed settings object: `FIREBREAK_*` environment variables and `.env`.

Defaults run the embedded stack on loopback. Workflows never read settings (that would
break determinism): the API passes what a workflow needs in its input, and activities
receive their clients built from these settings.

The Temporal connection itself follows the SDK's envconfig (`TEMPORAL_ADDRESS`,
`TEMPORAL_NAMESPACE`, profiles in `temporal.toml`) so that the `temporal` CLI and
Firebreak always agree on where the server is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.constants import TASK_QUEUE
from models.rca import LEAD_IN_SECONDS

# The directory that holds Firebreak's packages: a checkout, or site-packages once installed.
# Resources inside packages (policies/*.rego, agents/rules.yaml) are found from here either way.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# A checkout keeps its operator files (playbooks/, knowledge/) and its state (data/) beside the code.
IN_CHECKOUT = (PROJECT_ROOT / "pyproject.toml").is_file()


def default_data_dir() -> Path:
    """data/ in a checkout; installed, the user's state dir ($XDG_STATE_HOME/firebreak)."""
    if IN_CHECKOUT:
        return PROJECT_ROOT / "data"
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "firebreak"


def operator_dir(name: str) -> Path:
    """An operator directory (playbooks/, knowledge/): the checkout's, else the working directory's."""
    return (PROJECT_ROOT if IN_CHECKOUT else Path.cwd()) / name


# Check-mode previews (integrations/previews.py); the defaults live here, the one place both the
# settings and the previews' own defaults read them. 2 cores: 2 Ansible previews at once leave
# room for ingestion and for real runs, which never wait for a preview slot.
PREVIEW_MAX_CONCURRENT_RUNS = 2
PREVIEW_GATHER_SECONDS = 0.25
PREVIEW_MAX_BATCH_HOSTS = 50
PREVIEW_MAX_FORKS = 10

# JetStream stream/consumer names and subject tokens: no dots, wildcards or whitespace in names.
_STREAM_NAME = r"^[A-Za-z0-9_-]{1,64}$"
_SUBJECT_PREFIX = r"^[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,7}$"

# What a worker process serves (worker.py): both task queues, or one of them.
WorkerRole = Literal["all", "incident", "memory"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FIREBREAK_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    data_dir: Path = Field(default_factory=default_data_dir, description="state of the dev stack")

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
    api_access_log: bool = Field(default=False, description="uvicorn's per-request log lines")
    # What a webhook's 202 waits for: Temporal signalled the incident ("temporal"), or the body
    # stored on the alert bus, which the consumer delivers from ("bus": needs FIREBREAK_BUS_URL).
    api_ack: Literal["temporal", "bus"] = "temporal"
    # Slow or stalled clients (api/server.py): a connection must finish its request headers,
    # and then its body, within these; otherwise 408 and the connection is closed.
    api_head_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    api_body_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    # Storm handling (ingest/coalescer.py): alerts per incident within the delay share one RPC
    ingest_max_delay_ms: float = Field(default=20.0, ge=0, le=1000)
    ingest_max_batch: int = Field(default=500, ge=1, le=5000)
    ingest_max_pending: int = Field(default=50_000, ge=1, description="then 429 + Retry-After")

    # Message bus ingress (consumer/, `firebreak consume`): NATS JetStream. Unset: no consumer.
    bus_url: str | None = Field(
        default=None, pattern=r"^(nats|tls)://\S+$", description="e.g. nats://127.0.0.1:4222"
    )
    bus_token: SecretStr | None = Field(default=None, description="NATS auth token, if the server wants one")
    bus_stream: str = Field(default="FIREBREAK_ALERTS", pattern=_STREAM_NAME)
    bus_subject_prefix: str = Field(
        default="firebreak.alerts", pattern=_SUBJECT_PREFIX, description="<prefix>.alertmanager | .generic"
    )
    bus_dead_letter_stream: str = Field(default="FIREBREAK_ALERTS_DEAD", pattern=_STREAM_NAME)
    bus_dead_letter_prefix: str = Field(default="firebreak.dead", pattern=_SUBJECT_PREFIX)
    bus_durable: str = Field(default="firebreak-ingest", pattern=_STREAM_NAME, description="consumer name")
    bus_max_in_flight: int = Field(
        default=1000, ge=1, le=50_000, description="unacked messages (JetStream max_ack_pending)"
    )
    bus_ack_wait_seconds: float = Field(
        default=30.0, ge=1, le=3600, description="unacked this long (a dead consumer): redelivered"
    )
    bus_retry_delay_seconds: float = Field(
        default=2.0, gt=0, le=600, description="redelivery delay when Temporal did not take a message"
    )
    bus_metrics_port: int = Field(default=9465, ge=0, le=65535, description="the consumer's /metrics port")
    bus_max_backlog: int = Field(
        default=100_000, ge=1, description="messages waiting for the consumer; past it the API answers 429"
    )
    # `make dev` starts its own NATS (JetStream) on loopback when FIREBREAK_BUS_URL is unset.
    dev_bus_port: int = Field(default=4222, ge=1, le=65535)

    # Temporal UI (the dev stack starts it with the server)
    temporal_ui_port: int = 8233

    # Payload encryption (runtime/codec.py) and the codec server the UI decodes through
    codec_keys: SecretStr | None = Field(
        default=None, description="id:base64key[,id:base64key...]; first encrypts, all decrypt"
    )
    codec_keys_file: Path | None = Field(
        default=None,
        description="codec keys file used when FIREBREAK_CODEC_KEYS is unset (default: data_dir/codec.keys)",
    )
    codec_server_host: str = "127.0.0.1"
    codec_server_port: int = 8081
    codec_server_token: SecretStr | None = None

    # Incident timings, passed to each new incident's workflow input
    settle_seconds: float = 30.0
    approval_timeout_seconds: float = 3600.0
    verify_window_seconds: float = 300.0

    # Worker sizing (worker.py). An open incident waiting on approval costs its cached
    # workflow state; evicted ones are replayed from history on their next task.
    worker_max_concurrent_activities: int = Field(default=100, ge=1, description="activity slots")
    worker_max_concurrent_workflow_tasks: int = Field(
        default=100, ge=2, description="workflow task slots (at least 2 with a cache)"
    )
    # An incident spends most of its life waiting for a human, and a cached one costs ~170 KB
    # (bench/bench_worker_rss.py); an evicted one is replayed from history when it wakes (an
    # approval, an alert), ~0.1-0.2 s for a 118-event incident. 250 bounds what 1,000 open
    # incidents cost the worker.
    worker_max_cached_workflows: int = Field(
        default=250, ge=0, description="workflows kept in memory; 0 replays every task"
    )
    # The memory activities (retrieval, episodic memory, track records) have their own task
    # queue, <task_queue>-memory, so the embedding model (torch, ~600 MB) can live in its own
    # process. `python worker.py --role ...` overrides this.
    worker_role: WorkerRole = Field(
        default="all",
        description="all: both queues in one process; incident: the workflows and every activity "
        "but memory's (no embedding model); memory: the memory activities only",
    )

    # Vault / OpenBao
    vault_addr: str = "http://127.0.0.1:8200"
    vault_token: SecretStr | None = Field(
        default=None, description="the worker's own token; it may only mint action tokens"
    )
    vault_root_token: SecretStr | None = Field(
        default=None, description="used once by `firebreak vault-bootstrap`, never by the worker"
    )

    # The gate (policies/seals.py). The admission key is the worker's alone: it seals policy
    # decisions, attested approvals and admissions. The approval key signs approval codes
    # (API) and checks them (worker). Unset: read from (or created in) data_dir, 0600.
    admission_key: SecretStr | None = Field(
        default=None, description="url-safe base64, >= 32 bytes; every worker of a deployment shares it"
    )
    approval_key: SecretStr | None = Field(
        default=None, description="url-safe base64, >= 32 bytes; the API and the workers share it"
    )
    approval_auth: Literal["code", "roster"] = Field(
        default="code",
        description="code: an approver needs an approval code issued to them by the API after "
        "authenticating; roster: a typed name from the policy's roster is enough (dev stack only)",
    )
    approver_tokens_file: Path | None = Field(
        default=None,
        description="YAML {person: sha256 hex of their personal API token} for approval codes",
    )
    approval_code_ttl_seconds: float = Field(default=900.0, gt=0, le=86_400)

    # Where the catalog, policies and rules live
    playbooks_dir: Path = Field(default_factory=lambda: operator_dir("playbooks"))
    policies_dir: Path = PROJECT_ROOT / "policies"
    # The worker decides in a child process of its own (policies/evaluator.py: regopy leaks
    # or breaks other C++ libraries in a shared process), replaced after this many decisions.
    policy_decisions_per_process: int = Field(
        default=1000, ge=1, description="policy decisions before the evaluator process is replaced"
    )
    rules_file: Path = PROJECT_ROOT / "agents" / "rules.yaml"

    # Remediation
    ansible_runtime_dir: Path | None = Field(
        default=None, description="private scratch for ansible-runner (default: tmpfs if any)"
    )
    target_state_dir: Path | None = Field(
        default=None,
        description="where the bundled demo playbooks keep the state of local demo targets",
    )
    inventory_file: Path | None = Field(
        default=None,
        description="hosts to remediate over SSH with OpenBao-signed certificates (README); "
        "unset: the bundled playbooks act on local demo targets",
    )
    # Real runs and rollbacks (and SSH dry runs) at once per worker: the rest wait for a slot,
    # heartbeating and holding no credential, so a storm of approvals does not start dozens of
    # Ansible processes on one machine nor mint tokens that expire while they queue.
    remediation_max_concurrent_runs: int = Field(
        default=4, ge=1, le=64, description="real Ansible runs at once per worker"
    )
    # Check-mode previews (approval previews, shadow mode) in a storm: same-playbook previews
    # arriving within the gather window share one Ansible run, and at most this many check-mode
    # Ansible runs go at once per worker; real runs and rollbacks are never held back by them.
    preview_max_concurrent_runs: int = Field(
        default=PREVIEW_MAX_CONCURRENT_RUNS,
        ge=1,
        le=64,
        description="check-mode Ansible runs at once per worker",
    )
    preview_gather_seconds: float = Field(
        default=PREVIEW_GATHER_SECONDS,
        ge=0,
        le=10,
        description="how long a preview waits for others of the same playbook to share its run",
    )
    preview_max_batch_hosts: int = Field(
        default=PREVIEW_MAX_BATCH_HOSTS,
        ge=1,
        le=1000,
        description="previews per shared run; full: runs at once",
    )
    preview_max_forks: int = Field(
        default=PREVIEW_MAX_FORKS,
        ge=1,
        le=200,
        description="Ansible forks of a shared run (capped by its size)",
    )

    # Agents' LLM (Claude). Without a key every decision is made by the rules.
    anthropic_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("FIREBREAK_ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY"),
        description="enables Claude for what the rules cannot decide (ANTHROPIC_API_KEY also works)",
    )
    llm_enabled: bool = Field(default=True, description="kill switch: false keeps every decision on rules")
    llm_model: str = "claude-sonnet-4-5"
    llm_base_url: str | None = Field(default=None, description="Messages API base URL (default: Anthropic's)")
    llm_timeout_seconds: float = Field(
        default=30.0, gt=0, le=35, description="per request; an agent activity allows a call and its repair"
    )
    llm_max_tokens: int = Field(default=1024, ge=256, le=8192)
    llm_confidence_threshold: float = Field(
        default=0.6, ge=0.0, le=1.0, description="rules below this confidence route to the LLM"
    )
    # Prices in USD per million tokens, for the cost recorded per call and per incident.
    llm_price_input_per_mtok: float = Field(default=3.0, ge=0)
    llm_price_output_per_mtok: float = Field(default=15.0, ge=0)
    llm_price_cache_write_per_mtok: float = Field(default=3.75, ge=0)
    llm_price_cache_read_per_mtok: float = Field(default=0.30, ge=0)
    # Budgets: beyond them, decisions stay on rules and say so.
    llm_incident_token_cap: int = Field(default=200_000, ge=0)
    llm_incident_cost_cap_usd: float = Field(default=1.0, ge=0)
    llm_global_requests_per_minute: int = Field(default=60, ge=0, description="per worker process")
    llm_global_spend_cap_usd: float = Field(default=25.0, ge=0, description="per worker process and window")
    llm_global_spend_window_seconds: float = Field(default=86_400.0, gt=0)
    # Redaction before anything reaches the LLM (secrets and keys always).
    llm_redact_emails: bool = True
    llm_redact_ips: bool = False

    def resolved_codec_keys(self) -> SecretStr | None:
        """Keys from FIREBREAK_CODEC_KEYS, else from the keys file (the dev stack writes one)."""
        if self.codec_keys is not None:
            return self.codec_keys
        path = self.codec_keys_file or self.data_dir / "codec.keys"
        if path.is_file():
            text = path.read_text().strip()
            return SecretStr(text) if text else None
        return None

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
    knowledge_dir: Path = Field(default_factory=lambda: operator_dir("knowledge"))
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
        description="metric name (<kind>_<stat>, or an exporter's such as ResponseTimeP99(ms), read word by "
        "word) -> PromQL using $services and $window; empty: the built-in set in integrations/prometheus.py",
    )
    prometheus_rate_window: str = Field(default="5m", description="range for rate() in the built-in queries")
    telemetry_normal_seconds: float = Field(
        default=3600.0, gt=0, description="how much history before an incident counts as normal"
    )
    telemetry_normal_gap_seconds: float = Field(
        default=300.0, ge=0, description="left out between the normal period and the incident window"
    )
    telemetry_lead_in_seconds: float = Field(
        default=LEAD_IN_SECONDS,
        ge=0,
        le=3600,
        description="how long before the first alert's start the incident window opens: Prometheus "
        "fires an alert once its condition has held for the rule's `for:`, so the fault began earlier",
    )
    topology_file: Path | None = Field(
        default=None, description="CMDB export (YAML) of services and their dependencies"
    )
    # Correlation at settle (activities/correlation.py): with a topology, a settled incident
    # hands its alerts to an open incident of a service this many dependency edges away.
    correlation_hops: int = Field(
        default=1, ge=0, le=3, description="dependency edges between correlated services (0: off)"
    )
    correlation_window_seconds: float = Field(
        default=900.0, gt=0, description="how recently the other incident must have opened"
    )
    # Traces and logs for diagnosis (integrations/traces.py, integrations/logs.py); empty: not used
    trace_source: Literal["", "jaeger", "tempo"] = Field(default="", description="trace store to query")
    trace_url: str = Field(default="", description="Jaeger query or Tempo HTTP API base URL")
    log_source: Literal["", "loki", "opensearch"] = Field(default="", description="log store to query")
    log_url: str = Field(default="", description="Loki or Elasticsearch/OpenSearch base URL")
    log_index: str = Field(default="logs-*", description="Elasticsearch/OpenSearch index pattern")
    log_service_label: str = Field(
        default="service", description="Loki stream label / Elasticsearch field that names a service"
    )
    signals_timeout_seconds: float = Field(default=10.0, gt=0, le=120, description="per trace/log request")
    signals_normal_seconds: float = Field(
        default=900.0, gt=0, description="how much normal-period history to fetch traces and logs for"
    )

    # Telemetry out (runtime/tracing.py, runtime/metrics.py): traces and Prometheus metrics
    otel_exporter: Literal["none", "console", "otlp"] = Field(
        default="none", description="where spans go: nowhere, stdout, or an OTLP/HTTP collector"
    )
    otel_endpoint: str = Field(
        default="http://127.0.0.1:4318/v1/traces", description="OTLP/HTTP traces endpoint (otlp exporter)"
    )
    otel_headers: SecretStr | None = Field(
        default=None, description="k=v[,k=v] headers for the collector, e.g. its auth token"
    )
    otel_service_name: str = Field(default="firebreak", description="service.name; -worker/-api appended")
    metrics_enabled: bool = Field(default=True, description="Prometheus /metrics on the worker and the API")
    metrics_host: str = Field(default="127.0.0.1", description="where the worker's /metrics listens")
    metrics_token: SecretStr | None = Field(
        default=None,
        description="bearer token the API's /metrics requires (Prometheus: authorization.credentials); "
        "unset: /metrics is open, as on a private scrape network. Not the webhook token: a scraper "
        "must not be able to open incidents",
    )
    worker_metrics_port: int = Field(default=9464, ge=0, le=65535, description="the worker's /metrics port")
    memory_worker_metrics_port: int = Field(
        default=9466, ge=0, le=65535, description="/metrics of a worker with FIREBREAK_WORKER_ROLE=memory"
    )
    temporal_metrics_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="loopback port of the Temporal SDK's own Prometheus listener, re-exported on "
        "/metrics (0: a free port)",
    )
    metrics_incident_refresh_seconds: float = Field(
        default=15.0, ge=0, description="how often the API counts incidents by phase/outcome (0: never)"
    )

    # Notifications and ITSM (integrations/notify.py); each channel is off until configured
    notify_ui_url: str | None = Field(
        default=None, description="Temporal UI base URL for links (default: loopback UI port)"
    )
    notify_timeout_seconds: float = Field(default=10.0, gt=0, le=60, description="per HTTP request")
    notify_slack_webhook_url: SecretStr | None = Field(
        default=None, description="Slack-compatible incoming webhook (the URL is the credential)"
    )
    notify_jira_url: str | None = Field(
        default=None, description="Jira base URL, e.g. https://x.atlassian.net"
    )
    notify_jira_user: str | None = None
    notify_jira_api_token: SecretStr | None = None
    notify_jira_project: str = "OPS"
    notify_jira_issue_type: str = "Task"
    notify_servicenow_url: str | None = Field(default=None, description="ServiceNow instance base URL")
    notify_servicenow_user: str | None = None
    notify_servicenow_password: SecretStr | None = None
    notify_servicenow_assignment_group: str | None = None

    def resolved_qdrant_path(self) -> Path:
        return self.qdrant_path or self.data_dir / "qdrant"
