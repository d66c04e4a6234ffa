"""Errors of the agents and their reasoners, and the Temporal error types they map to.

    AgentError
    ├── LLMError
    │   ├── LLMUnavailable       408/409/429/5xx/529, timeouts, connection faults (retryable,
    │   │                        honouring the server's retry-after)
    │   └── LLMRequestRejected   any other 4xx: retrying the same request cannot help
    └── AgentOutputInvalid       an answer that fails validation (repaired once, then escalated;
                                 never leaves the reasoner)

The activity turns LLMError into an `ApplicationError` whose `type` is the class name, so
retry policies and the workflow's rules-only fallback can name them.
"""

from __future__ import annotations


class AgentError(Exception):
    retryable = False


class LLMError(AgentError):
    """The LLM could not be asked. Messages never contain the request, headers or key."""


class LLMUnavailable(LLMError):
    retryable = True

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LLMRequestRejected(LLMError):
    retryable = False


class AgentOutputInvalid(AgentError):
    """An LLM answer that does not validate; the message is what the repair request says."""
