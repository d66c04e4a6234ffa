"""Domain errors, and the one place they become Temporal errors.

Every fault an activity lets out is one of these, raised where it happens (an I/O client, an
agent, the memory store, the gate, the catalog) with no Temporal in sight. The activity
turns it into an `ApplicationError` with `to_application_error`; its `type` is the class
name, which retry policies and the workflows name, so the class names are the contract.
Every class below can be imported from here.

    Exception
    ├── CatalogError (models.catalog)         unknown action, params that fail the schema
    │   └── InventoryError (models.inventory) a bad inventory, a target not in it; the
    │                                         activity reports a refused target as CatalogError
    ├── NotAdmitted (policies.admission)      the gate did not admit the run or the answer
    ├── PolicyError (here)                    the policy cannot decide, or the wrong workflow asks
    ├── IntegrationError (integrations.errors)
    │   ├── CredentialError
    │   │   ├── VaultUnavailable              Vault (or its SSH CA) did not answer      retryable
    │   │   └── CredentialDenied              Vault refused: role or policy missing (a token
    │   │                                     or an SSH certificate, integrations.ssh_ca)
    │   ├── PlaybookError                     ansible-runner could not start a playbook retryable
    │   └── NotifyError
    │       ├── NotifyUnavailable             connection, 408/409/425/429, 5xx          retryable, benign
    │       └── NotifyRejected                any other 4xx (e.g. bad credentials)
    ├── AgentError (agents.errors)
    │   ├── LLMError
    │   │   ├── LLMUnavailable                408/409/429/5xx/529, timeouts, connection retryable, benign
    │   │   └── LLMRequestRejected            any other 4xx
    │   └── AgentOutputInvalid                never leaves the reasoner
    └── MemoryStoreError (memory.errors)
        ├── StoreBusy                         another process holds the local folder   retryable
        ├── StoreUnavailable                  the Qdrant server did not answer         retryable
        └── DocumentError, EmbeddingUnavailable, SchemaMismatch, RecordNotFound

The rules, all read off the class:

- `retryable` (a class attribute; absent means no: retrying what a schema, a gate or a policy
  refused cannot help) sets `non_retryable`;
- `retry_after` (seconds, on the instance, when the server said so) becomes `next_retry_delay`;
- `benign` marks expected faults of systems Firebreak degrades around (an LLM or a notify
  channel that is down): `ApplicationErrorCategory.BENIGN`, so the SDK logs them quietly and
  leaves them out of failure metrics. A rejected request is not benign: it means a wrong key
  or a bug, and should be seen.

The Prometheus, trace and log clients raise errors of their own (`PrometheusError`,
`TraceSourceError`, `LogSourceError`) that never leave the telemetry activity: it degrades
its result to `partial` or `unavailable` instead.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from agents.errors import AgentError, AgentOutputInvalid, LLMError, LLMRequestRejected, LLMUnavailable
from integrations.errors import (
    CredentialDenied,
    CredentialError,
    IntegrationError,
    NotifyError,
    NotifyRejected,
    NotifyUnavailable,
    PlaybookError,
    VaultUnavailable,
)
from memory.errors import (
    DocumentError,
    EmbeddingUnavailable,
    MemoryStoreError,
    RecordNotFound,
    SchemaMismatch,
    StoreBusy,
    StoreUnavailable,
)
from models.catalog import CatalogError
from policies.admission import NotAdmitted

# The whole vocabulary, from one import: the activity table names retry policies' error types
# from these classes, so no type is ever a string typed by hand.
__all__ = [
    "DOMAIN_ERRORS",
    "AgentError",
    "AgentOutputInvalid",
    "CatalogError",
    "CredentialDenied",
    "CredentialError",
    "DocumentError",
    "EmbeddingUnavailable",
    "IntegrationError",
    "LLMError",
    "LLMRequestRejected",
    "LLMUnavailable",
    "MemoryStoreError",
    "NotAdmitted",
    "NotifyError",
    "NotifyRejected",
    "NotifyUnavailable",
    "PlaybookError",
    "PolicyError",
    "RecordNotFound",
    "SchemaMismatch",
    "StoreBusy",
    "StoreUnavailable",
    "VaultUnavailable",
    "to_application_error",
]


class PolicyError(Exception):
    """The policy did not decide (a load or evaluation fault), or a workflow asked for another
    incident's decision. Never a silent allow, and never retried."""

    retryable = False


DOMAIN_ERRORS: tuple[type[Exception], ...] = (
    CatalogError,
    NotAdmitted,
    PolicyError,
    IntegrationError,
    AgentError,
    MemoryStoreError,
)
"""What an activity catches and hands to `to_application_error`."""


def to_application_error(exc: Exception) -> ApplicationError:
    """The Temporal error for a domain error: type = class name, retry rules from the class."""
    retry_after = getattr(exc, "retry_after", None)
    return ApplicationError(
        str(exc),
        type=type(exc).__name__,
        non_retryable=not getattr(exc, "retryable", False),
        next_retry_delay=timedelta(seconds=retry_after) if retry_after is not None else None,
        category=ApplicationErrorCategory.BENIGN
        if getattr(exc, "benign", False)
        else ApplicationErrorCategory.UNSPECIFIED,
    )
