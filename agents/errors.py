"""Errors of the agents and their reasoners, and the Temporal error types they map to.

    AgentError
    ├── LLMError
    │   ├── LLMUnavailable       408/409/429/5xx/529, timeouts, connection faults (retryable,
    │   │                        honouring the server's retry-after; an expected fault: benign)
    │   └── LLMRequestRejected   any other 4xx: retrying the same request cannot help
    └── AgentOutputInvalid       an answer that fails validation (repaired once, then escalated;
                                 never leaves the reasoner)

`activities.errors.to_application_error` turns an LLMError into an `ApplicationError` whose
`type` is the class name, so retry policies and the workflow's rules-only fallback can name them.
"""

from __future__ import annotations

from typing import ClassVar


class AgentError(Exception):
    retryable: ClassVar[bool] = False
    benign: ClassVar[bool] = False


class LLMError(AgentError):
    """The LLM could not be asked. Messages never contain the request, headers or key."""


class LLMUnavailable(LLMError):
    retryable = True
    benign = True  # the workflow degrades to rules: an outage is expected, not a failure

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LLMRequestRejected(LLMError):
    retryable = False


class AgentOutputInvalid(AgentError):
    """An LLM answer that does not validate; the message is what the repair request says."""
