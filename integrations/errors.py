"""Errors of the I/O clients that an activity lets through to its workflow.

    IntegrationError
    ├── CredentialError
    │   ├── VaultUnavailable     Vault did not answer (retryable); also its SSH CA (ssh_ca.py)
    │   └── CredentialDenied     Vault refused: role or policy missing (non-retryable); also
    │                            an SSH certificate it will not sign
    ├── PlaybookError            ansible-runner could not start the playbook (retryable)
    └── NotifyError
        ├── NotifyUnavailable    connection errors, 408/409/425/429, 5xx (retryable, honouring
        │                        `Retry-After`; an expected fault, so benign)
        └── NotifyRejected       any other 4xx, e.g. bad credentials (non-retryable)

No Temporal here: `activities.errors.to_application_error` turns each into the
`ApplicationError` whose `type` is the class name. The Prometheus, trace and log clients
have errors of their own that never leave their activity (it degrades its result instead).
"""

from __future__ import annotations

from typing import ClassVar


class IntegrationError(Exception):
    """An outside system failed or refused. Messages never contain a secret or a secret URL."""

    retryable: ClassVar[bool] = True
    benign: ClassVar[bool] = False

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CredentialError(IntegrationError):
    pass


class VaultUnavailable(CredentialError):
    retryable = True


class CredentialDenied(CredentialError):
    retryable = False


class PlaybookError(IntegrationError):
    retryable = True


class NotifyError(IntegrationError):
    pass


class NotifyUnavailable(NotifyError):
    retryable = True
    benign = True


class NotifyRejected(NotifyError):
    retryable = False
