"""Errors of the memory package, and whether retrying can help.

    MemoryStoreError
    ├── DocumentError          a knowledge file does not parse (its path is in the message)
    ├── StoreBusy              local mode: another process holds the storage folder (retryable)
    ├── StoreUnavailable       the Qdrant server did not answer (retryable)
    ├── EmbeddingUnavailable   dense embeddings were required but cannot load
    ├── SchemaMismatch         a collection's vectors do not fit this version or model
    └── RecordNotFound         no memory of that incident

`activities.errors.to_application_error` maps each to a Temporal error `type` of the same name.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar


class MemoryStoreError(Exception):
    retryable: ClassVar[bool] = False


class DocumentError(MemoryStoreError):
    def __init__(self, path: Path | str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = str(path)
        self.reason = message


class StoreBusy(MemoryStoreError):
    retryable = True


class StoreUnavailable(MemoryStoreError):
    retryable = True


class EmbeddingUnavailable(MemoryStoreError):
    pass


class SchemaMismatch(MemoryStoreError):
    pass


class RecordNotFound(MemoryStoreError):
    pass
