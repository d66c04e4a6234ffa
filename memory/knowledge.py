"""The knowledge base: runbooks and post-mortems as chunks in Qdrant, ingested idempotently.

Each chunk's point id is derived from `<document id>#<chunk>`, and every point carries its
document's content hash, so ingest can tell, per document, unchanged (nothing written),
changed (its chunks rewritten, surplus chunks deleted) and gone (every chunk deleted).
"Gone" is judged within the folder being ingested: ingesting one file never deletes others.
A file that does not parse is reported and skipped, and its previous version, if any, stays.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient
from qdrant_client import models as qm

from memory.dense import DenseEmbedder
from memory.documents import KnowledgeDoc, discover, parse_document
from memory.errors import DocumentError
from memory.sparse import SPARSE_VERSION, encode_document, encode_query
from memory.store import DENSE, SPARSE, QdrantStore, sparse_vector
from models.memory import DocKind, FilterMode, Passage
from runtime.settings import PROJECT_ROOT

logger = logging.getLogger(__name__)

_NAMESPACE = uuid.UUID("5b0f3d1e-8c4a-4e7e-9a43-1f0d2b7c9e61")
KEYWORD_FIELDS = ("doc_id", "kind", "alerts", "services", "actions")
# Called as work advances, counted in chunks: (done, total, what is happening).
ProgressHook = Callable[[int, int, str], None]
EMBED_BATCH = 64


def point_id(chunk_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, chunk_id))


def display_path(path: Path) -> str:
    """Relative to the repository when inside it, so a moved checkout keeps its documents."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return resolved.as_posix()


def _resolve_stored(path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else PROJECT_ROOT / p


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    skipped: list[DocumentError] = field(default_factory=list)
    chunks_written: int = 0
    chunks_deleted: int = 0
    points: int = 0  # in the collection afterwards
    dense: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.deleted)


@dataclass
class _Stored:
    content_hash: str
    dense_model: str
    sparse_version: str
    path: str
    point_ids: set[str] = field(default_factory=set)


class KnowledgeBase:
    def __init__(self, store: QdrantStore, collection: str, embedder: DenseEmbedder | None) -> None:
        self.store = store
        self.collection = collection
        self.embedder = embedder

    # --- ingest ----------------------------------------------------------------------------

    def ingest(
        self,
        root: Path,
        known_actions: Iterable[str] | None = None,
        progress: ProgressHook | None = None,
    ) -> IngestReport:
        if not root.exists():
            raise FileNotFoundError(f"{root}: no such file or folder")
        actions = set(known_actions) if known_actions is not None else None
        files = discover(root)
        report = IngestReport(dense=self.embedder is not None)
        docs: dict[str, KnowledgeDoc] = {}
        by_path: dict[Path, str] = {}
        malformed: set[Path] = set()
        for path in files:
            try:
                doc = parse_document(path, actions)
                if doc.id in docs:
                    raise DocumentError(path, f"id {doc.id!r} is already used by {docs[doc.id].path}")
            except DocumentError as exc:
                logger.warning("skipped %s", exc)
                report.skipped.append(exc)
                malformed.add(path.resolve())
                continue
            docs[doc.id] = doc
            by_path[path.resolve()] = doc.id
        model = self.embedder.name if self.embedder else ""
        scope = root.resolve()
        total = sum(len(d.chunks) for d in docs.values())
        done = 0
        with self.store.client() as client:
            self.store.ensure_collection(client, self.collection, KEYWORD_FIELDS)
            stored = self._stored(client)
            changed: list[KnowledgeDoc] = []
            for doc in docs.values():
                before = stored.get(doc.id)
                if (
                    before is not None
                    and before.content_hash == doc.content_hash
                    and before.dense_model == model
                    and before.sparse_version == SPARSE_VERSION
                    and before.path == display_path(doc.path)
                    and before.point_ids == {point_id(c.id) for c in doc.chunks}
                ):
                    report.unchanged.append(doc.id)
                    done += len(doc.chunks)
                else:
                    changed.append(doc)
            if progress:
                progress(done, total, "unchanged documents checked")
            # One embedding pass over every changed chunk: the model is several times faster
            # on full batches than on a document's handful of chunks.
            texts = [c.indexed_text for doc in changed for c in doc.chunks]
            dense: list[list[float] | None] = [None] * len(texts)
            if self.embedder is not None:
                for start in range(0, len(texts), EMBED_BATCH):
                    batch = texts[start : start + EMBED_BATCH]
                    dense[start : start + len(batch)] = self.embedder.embed(batch)
                    if progress:
                        progress(done + start + len(batch), total, "embedding")
            offset = 0
            for doc in changed:
                before = stored.get(doc.id)
                vectors = dense[offset : offset + len(doc.chunks)]
                offset += len(doc.chunks)
                self._write(client, doc, model, vectors)
                report.chunks_written += len(doc.chunks)
                surplus = sorted(before.point_ids - {point_id(c.id) for c in doc.chunks}) if before else []
                if surplus:
                    client.delete(self.collection, points_selector=qm.PointIdsList(points=list(surplus)))
                    report.chunks_deleted += len(surplus)
                (report.updated if before else report.added).append(doc.id)
                done += len(doc.chunks)
                if progress:
                    progress(done, total, str(doc.path))
            for doc_id, before in sorted(stored.items()):
                if doc_id in docs:
                    continue
                location = _resolve_stored(before.path).resolve()
                in_scope = location == scope or scope in location.parents
                # Gone: its file vanished or now holds another document. A broken file keeps its old chunks.
                if in_scope and location not in malformed and by_path.get(location) != doc_id:
                    client.delete(
                        self.collection,
                        points_selector=qm.FilterSelector(filter=_match("doc_id", [doc_id])),
                    )
                    report.deleted.append(doc_id)
                    report.chunks_deleted += len(before.point_ids)
            report.points = client.count(self.collection, exact=True).count
        return report

    def _stored(self, client: QdrantClient) -> dict[str, _Stored]:
        stored: dict[str, _Stored] = {}
        offset: Any = None
        while True:
            points, offset = client.scroll(
                self.collection,
                limit=512,
                offset=offset,
                with_payload=["doc_id", "content_hash", "dense_model", "sparse_version", "path"],
                with_vectors=False,
            )
            for p in points:
                payload = p.payload or {}
                entry = stored.setdefault(
                    str(payload.get("doc_id")),
                    _Stored(
                        content_hash=str(payload.get("content_hash")),
                        dense_model=str(payload.get("dense_model", "")),
                        sparse_version=str(payload.get("sparse_version", "")),
                        path=str(payload.get("path", "")),
                    ),
                )
                if entry.content_hash != payload.get("content_hash"):
                    entry.content_hash = "mixed"  # a half-written document: rewrite it
                entry.point_ids.add(str(p.id))
            if offset is None:
                return stored

    def _write(
        self, client: QdrantClient, doc: KnowledgeDoc, model: str, dense: list[list[float] | None]
    ) -> None:
        points = []
        for chunk, vector in zip(doc.chunks, dense, strict=True):
            vectors: dict[str, Any] = {SPARSE: sparse_vector(encode_document(chunk.indexed_text))}
            if vector is not None:
                vectors[DENSE] = vector
            points.append(
                qm.PointStruct(
                    id=point_id(chunk.id),
                    vector=vectors,
                    payload={
                        "doc_id": doc.id,
                        "chunk": chunk.index,
                        "chunks": len(doc.chunks),
                        "kind": doc.kind,
                        "title": doc.title,
                        "section": chunk.section,
                        "path": display_path(doc.path),
                        "text": chunk.text,
                        "actions": doc.meta.actions,
                        "services": doc.meta.services,
                        "alerts": doc.meta.alerts,
                        "tags": doc.meta.tags,
                        "content_hash": doc.content_hash,
                        "dense_model": model,
                        "sparse_version": SPARSE_VERSION,
                    },
                )
            )
        client.upsert(self.collection, points=points, wait=True)

    # --- search ----------------------------------------------------------------------------

    def search(
        self,
        text: str,
        *,
        alert_names: Iterable[str] = (),
        services: Iterable[str] = (),
        limit: int = 5,
        filter: FilterMode = "boost",
        kinds: Iterable[DocKind] = (),
        mode: str = "auto",
        dense_vector: list[float] | None = None,
    ) -> list[Passage]:
        """Best passage per document, best documents first.

        mode: auto (hybrid when dense is on), sparse, dense or hybrid (the benchmark compares them).
        dense_vector: the query's embedding when the caller already has it.
        """
        alerts, svcs = list(alert_names), list(services)
        query_text = "\n".join([text, " ".join(alerts), " ".join(svcs)]).strip()
        wanted_kinds: list[str] = list(kinds)
        with self.store.client() as client:
            self.store.ensure_collection(client, self.collection, KEYWORD_FIELDS)
            points = search_points(
                client,
                self.collection,
                query_text,
                embedder=self.embedder,
                names={"alerts": alerts, "services": svcs},
                limit=max(limit * 6, 30),
                filter=filter,
                mode=mode,
                must=_match("kind", wanted_kinds) if wanted_kinds else None,
                dense_vector=dense_vector,
            )
        passages: dict[str, Passage] = {}
        for p in points:
            payload = p.payload or {}
            doc_id = str(payload["doc_id"])
            if doc_id in passages:
                continue
            passages[doc_id] = Passage(
                id=f"{doc_id}#{payload['chunk']}",
                doc_id=doc_id,
                kind=payload["kind"],
                title=str(payload["title"]),
                section=str(payload["section"]),
                path=str(payload["path"]),
                text=str(payload["text"]),
                actions=list(payload.get("actions") or []),
                services=list(payload.get("services") or []),
                alerts=list(payload.get("alerts") or []),
                score=float(p.score),
            )
            if len(passages) >= limit:
                break
        return list(passages.values())

    def count(self) -> int:
        with self.store.client() as client:
            self.store.ensure_collection(client, self.collection, KEYWORD_FIELDS)
            return client.count(self.collection, exact=True).count


def _match(key: str, values: list[str]) -> qm.Filter:
    return qm.Filter(must=[qm.FieldCondition(key=key, match=qm.MatchAny(any=values))])


def name_filter(names: dict[str, list[str]]) -> qm.Filter | None:
    """Points naming any of these (e.g. alerts X or Y, or service Z)."""
    should: list[qm.Condition] = [
        qm.FieldCondition(key=key, match=qm.MatchAny(any=values)) for key, values in names.items() if values
    ]
    return qm.Filter(should=should) if should else None


def search_points(
    client: QdrantClient,
    collection: str,
    text: str,
    *,
    embedder: DenseEmbedder | None,
    names: dict[str, list[str]],
    limit: int,
    filter: FilterMode,
    mode: str = "auto",
    must: qm.Filter | None = None,
    dense_vector: list[float] | None = None,
) -> list[qm.ScoredPoint]:
    """Sparse, dense, or both fused by reciprocal rank; `boost` adds the name-filtered lists to the fusion."""
    if mode == "auto":
        mode = "hybrid" if embedder is not None else "sparse"
    if mode in ("dense", "hybrid") and embedder is None:
        raise ValueError(f"mode {mode} needs dense embeddings, which are off")
    names_only = name_filter(names) if filter != "off" else None
    base = _and(must, names_only if filter == "require" else None)
    queries: list[tuple[str, Any]] = []
    if mode in ("sparse", "hybrid"):
        queries.append((SPARSE, sparse_vector(encode_query(text))))
    if mode in ("dense", "hybrid"):
        assert embedder is not None
        queries.append((DENSE, dense_vector if dense_vector is not None else embedder.embed([text])[0]))
    prefetch = [qm.Prefetch(query=q, using=using, limit=limit, filter=base) for using, q in queries]
    if filter == "boost" and names_only is not None:
        boosted = _and(must, names_only)
        prefetch += [qm.Prefetch(query=q, using=using, limit=limit, filter=boosted) for using, q in queries]
    if len(prefetch) == 1:
        using, q = queries[0]
        return client.query_points(
            collection, query=q, using=using, limit=limit, query_filter=base, with_payload=True
        ).points
    return client.query_points(
        collection,
        prefetch=prefetch,
        query=qm.FusionQuery(fusion=qm.Fusion.RRF),
        limit=limit,
        with_payload=True,
    ).points


def _and(a: qm.Filter | None, b: qm.Filter | None) -> qm.Filter | None:
    if a is None or b is None:
        return a or b
    return qm.Filter(must=[a, b])
