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
