"""The worker's own OpenBao/Vault connection, shared by the token minter and the SSH CA."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import hvac
from pydantic import SecretStr

VAULT_TIMEOUT_SECONDS = 10


class WorkerVault:
    """Holds the worker's (narrow) token; every call opens its own client and closes it."""

    def __init__(self, addr: str, worker_token: SecretStr) -> None:
        self._addr = addr
        self._token = worker_token

    @contextmanager
    def _client(self) -> Iterator[hvac.Client]:
        """A client whose HTTP session is closed after the call, so no socket outlives it."""
        client = hvac.Client(
            url=self._addr, token=self._token.get_secret_value(), timeout=VAULT_TIMEOUT_SECONDS
        )
        try:
            yield client
        finally:
            client.adapter.close()
