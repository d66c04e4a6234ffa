"""The Qdrant connection: local mode in a folder, or a server, and the collections' shape.

Local mode is the real Qdrant engine inside this process, persisted to a folder, and only
one process may hold the folder at a time. So a local store opens the folder for each
operation and closes it right after: the worker, `firebreak kb ingest` and
`firebreak feedback` take turns, waiting up to `lock_timeout` for each other. A server
(`url`) has no such limit; its client is kept open.

Every collection has the same two vector slots: `lexical` (sparse BM25, IDF applied by
Qdrant) and `dense` (MiniLM, 384-d cosine). A point may lack `dense`: it is then found by
its words only. A collection whose slots differ is refused, never silently recreated.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import sqlite3
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from qdrant_client import QdrantClient
from qdrant_client import models as qm
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from memory.dense import MODEL_DIM
from memory.errors import SchemaMismatch, StoreBusy, StoreUnavailable
from memory.sparse import SparseVec

logger = logging.getLogger(__name__)

SPARSE = "lexical"
DENSE = "dense"
_LOCAL_LOCKS: dict[Path, threading.Lock] = {}
_LOCAL_LOCKS_GUARD = threading.Lock()


def _lock_is_free(lock_file: Path) -> bool:
    """Whether qdrant-client could take the folder's lock now (it locks with portalocker too)."""
    if not lock_file.exists():
        return True
    import portalocker  # as in qdrant-client: importing it checks for writable directories

    with lock_file.open("r+") as handle:
        try:
            portalocker.lock(handle, portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING)
        except portalocker.exceptions.LockException:
            return False
        portalocker.unlock(handle)
        return True


def sparse_vector(vec: SparseVec) -> qm.SparseVector:
    return qm.SparseVector(indices=vec.indices, values=vec.values)


@dataclass(frozen=True)
class StoreConfig:
    path: Path | None = None  # local mode
    url: str | None = None  # a server; wins over path
    api_key: str | None = None
    lock_timeout: float = 30.0

    def describe(self) -> str:
        return self.url if self.url else f"local:{self.path}"


class QdrantStore:
    def __init__(self, config: StoreConfig) -> None:
        if config.url is None and config.path is None:
            raise ValueError("a Qdrant store needs a url or a local path")
        self.config = config
        self._server: QdrantClient | None = None
        self._ready: set[str] = set()

    @property
    def local(self) -> bool:
        return self.config.url is None

    @contextlib.contextmanager
    def client(self) -> Iterator[QdrantClient]:
        """A client for one operation; in local mode it holds the folder until the block ends."""
        if not self.local:
            if self._server is None:
                self._server = QdrantClient(url=self.config.url, api_key=self.config.api_key, timeout=30)
            try:
                yield self._server
            except (ResponseHandlingException, ConnectionError, TimeoutError) as exc:
                raise StoreUnavailable(f"Qdrant at {self.config.url}: {exc}") from exc
            return
        assert self.config.path is not None
        path = self.config.path.resolve()
        with _LOCAL_LOCKS_GUARD:
            thread_lock = _LOCAL_LOCKS.setdefault(path, threading.Lock())
        # Threads of this process queue here; other processes are waited for below.
        if not thread_lock.acquire(timeout=self.config.lock_timeout):
            raise StoreBusy(f"{path} stayed busy in this process for {self.config.lock_timeout:g}s")
        try:
            client = self._open_local(path)
            try:
                yield client
            except (OSError, sqlite3.Error) as exc:  # the folder went read-only or full under us
                raise StoreUnavailable(f"local Qdrant folder {path}: {exc}") from exc
            finally:
                client.close()
        finally:
            thread_lock.release()

    def _open_local(self, path: Path) -> QdrantClient:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file in the way, no permission, a read-only mount
            raise StoreUnavailable(
                f"local Qdrant folder {path} cannot be created: {exc.strerror or exc}"
            ) from exc
        deadline = time.monotonic() + self.config.lock_timeout
        delay = 0.05
        while True:
            # Probe the lock first: qdrant-client leaks the lock file's handle when it finds the
            # folder taken, and a waiting worker would otherwise leak one per attempt.
            try:
                free = _lock_is_free(path / ".lock")
            except OSError as exc:
                raise StoreUnavailable(f"local Qdrant folder {path} is not usable: {exc}") from exc
            if free:
                try:
                    return QdrantClient(path=str(path))
                except (OSError, sqlite3.Error) as exc:
                    raise StoreUnavailable(f"local Qdrant folder {path} is not usable: {exc}") from exc
                except RuntimeError as exc:
                    if "already accessed" not in str(exc):
                        raise
                # Lost a race for the lock: close the handle the failed client left behind.
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ResourceWarning)
                    gc.collect()
            if time.monotonic() >= deadline:
                raise StoreBusy(
                    f"{path} is held by another process (a worker or `firebreak kb ingest`?) "
                    f"for more than {self.config.lock_timeout:g}s; local mode admits one at a time, "
                    "use a Qdrant server (FIREBREAK_QDRANT_URL) for concurrent access"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def ensure_collection(self, client: QdrantClient, name: str, keyword_fields: tuple[str, ...]) -> None:
        """Create the collection if missing; refuse one whose vectors do not fit."""
        if name in self._ready and not self.local:
            return
        try:
            exists = client.collection_exists(name)
        except UnexpectedResponse as exc:
            raise StoreUnavailable(f"Qdrant {self.config.describe()}: {exc}") from exc
        if not exists:
            client.create_collection(
                name,
                vectors_config={DENSE: qm.VectorParams(size=MODEL_DIM, distance=qm.Distance.COSINE)},
                sparse_vectors_config={SPARSE: qm.SparseVectorParams(modifier=qm.Modifier.IDF)},
            )
            if not self.local:  # local mode has no payload indexes (and warns about them)
                for field_name in keyword_fields:
                    client.create_payload_index(name, field_name, qm.PayloadSchemaType.KEYWORD)
            logger.info("created collection %s in %s", name, self.config.describe())
        else:
            params = client.get_collection(name).config.params
            vectors = params.vectors if isinstance(params.vectors, dict) else {}
            dense = vectors.get(DENSE)
            sparse = (params.sparse_vectors or {}).get(SPARSE)
            if (
                dense is None
                or dense.size != MODEL_DIM
                or sparse is None
                or sparse.modifier != qm.Modifier.IDF
            ):
                raise SchemaMismatch(
                    f"collection {name} in {self.config.describe()} does not have Firebreak's vectors "
                    f"({DENSE}: {MODEL_DIM}-d cosine, {SPARSE}: sparse with IDF); "
                    "use another collection name or delete it"
                )
        self._ready.add(name)
