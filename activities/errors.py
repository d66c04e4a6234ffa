"""Domain errors raised by activities, and the Temporal error types they map to.

    FirebreakError
    ├── CatalogError        unknown action or params that fail the schema (non-retryable)
    ├── PolicyError         a policy file or its data does not load or evaluate (non-retryable)
    ├── CredentialError
    │   ├── VaultUnavailable    Vault did not answer (retryable)
    │   └── CredentialDenied    Vault refused: role or policy missing (non-retryable)
    └── PlaybookError       ansible-runner could not start the playbook (retryable)

Retry policies name these by `type`, so the mapping is the contract with the workflows.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.exceptions import ApplicationError


class FirebreakError(Exception):
    retryable = True

    def to_application_error(self) -> ApplicationError:
        return ApplicationError(str(self), type=type(self).__name__, non_retryable=not self.retryable)


class PolicyError(FirebreakError):
    retryable = False


class CredentialError(FirebreakError):
    pass


class VaultUnavailable(CredentialError):
    retryable = True


class CredentialDenied(CredentialError):
    retryable = False


class PlaybookError(FirebreakError):
    retryable = True


# Notification channels (activities/notify.py): a rejection (other 4xx) is final.
class NotifyError(Exception):
    retryable = True

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def to_application_error(self) -> ApplicationError:
        delay = timedelta(seconds=self.retry_after) if self.retry_after is not None else None
        return ApplicationError(
            str(self), type=type(self).__name__, non_retryable=not self.retryable, next_retry_delay=delay
        )


class NotifyUnavailable(NotifyError):
    retryable = True


class NotifyRejected(NotifyError):
    retryable = False
